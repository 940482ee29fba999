// Process life cycle: captive mode (--run), pidfile, bad configuration, and
// graceful shutdown on SIGTERM with a client still connected.
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  nbdshOk,
  requireTool,
  run,
  runCaptive,
  serverCommand,
  serverKind,
  sha256File,
  sparseFile,
  spawnBackground,
  startServer,
  systemFirstPath,
  tempDir,
  waitFor,
  writeRandomFile,
  nbdtsBin,
  type TempDir,
} from '@nbdts/testkit';

const MiB = 1 << 20;
let dir: TempDir;
beforeAll(() => {
  requireTool('nbdcopy');
  requireTool('nbdsh');
  dir = tempDir();
});
afterAll(() => dir?.cleanup());

describe('captive mode (--run)', () => {
  it('runs the command with $uri and exits with its status 0', async () => {
    const r = await runCaptive('nbdcopy "$uri" out.img', ['memory', 'size=64M'], { cwd: dir.path });
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(dir.join('out.img')).size).toBe(64 * MiB);
  });

  it('writes then reads back through $uri', async () => {
    writeRandomFile(dir.join('in.img'), 16 * MiB);
    const r = await runCaptive('nbdcopy in.img "$uri" && nbdcopy "$uri" back.img', ['memory', 'size=16M'], {
      cwd: dir.path,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await sha256File(dir.join('back.img'))).toBe(await sha256File(dir.join('in.img')));
  });

  it("exits with the command's non-zero status", async () => {
    const r = await runCaptive('exit 3', ['memory', 'size=1M'], { cwd: dir.path });
    expect(r.code).toBe(3);
  });
});

describe('start-up', () => {
  it('-P writes the server pid once it is listening', async () => {
    const srv = await startServer(['memory', 'size=1M'], { pidfile: true });
    try {
      expect(Number(readFileSync(srv.pidfile!, 'utf8').trim())).toBe(srv.pid);
      const out = await nbdshOk('print(h.get_size())', srv.uri);
      expect(out.trim()).toBe(String(MiB));
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });

  it.skipIf(serverKind() !== 'nbdts')('-p 0 listens on a free TCP port and prints its URI (nbdts only)', async () => {
    const srv = spawnBackground(process.execPath, [
      nbdtsBin,
      '-p',
      '0',
      '-i',
      '127.0.0.1',
      '--exit-with-parent',
      'memory',
      'size=1M',
    ]);
    try {
      await waitFor(
        'the URI on stdout',
        () => {
          if (srv.gone) throw new Error(`nbdts exited: ${srv.stderr()}`);
          return /nbd:\/\/127\.0\.0\.1:\d+/.test(srv.stdout());
        },
        30_000,
      );
      const uri = /nbd:\/\/127\.0\.0\.1:\d+\/?/.exec(srv.stdout())![0];
      expect(uri).not.toMatch(/:0\/?$/);
      const out = await nbdshOk('h.pwrite(b"tcp!" * 1024, 0)\nprint(h.get_size(), h.pread(4, 0).decode())', uri);
      expect(out.trim()).toBe(`${MiB} tcp!`);
    } finally {
      expect(await srv.stop('SIGTERM')).toBe(0);
    }
  });

  it('a bad parameter fails at start-up with a message naming it', async () => {
    const [cmd, ...args] = serverCommand(['-U', dir.join('bad.sock'), 'memory', 'size=banana']);
    const r = await run(cmd!, args, { timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toMatch(/size/i);
    expect(r.stderr).toMatch(/banana/);
  });

  it('an unknown plugin fails at start-up', async () => {
    const [cmd, ...args] = serverCommand(['-U', dir.join('bad2.sock'), 'no-such-plugin-xyz']);
    const r = await run(cmd!, args, { timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no-such-plugin-xyz/);
  });
});

describe('graceful shutdown: file plugin', () => {
  it('SIGTERM with a connected client and unflushed writes: data is on disk after restart', async () => {
    const backing = dir.join('term.img');
    sparseFile(backing, 64 * MiB);
    const srv = await startServer(['file', `file=${backing}`]);
    // A client writes 8 MiB (no flush, no FUA), says so, then stays connected for 10 s.
    // nbdts closes connections on SIGTERM; nbdkit (the reference) waits for the client to leave.
    const client = spawnBackground(
      requireTool('nbdsh'),
      [
        '-u',
        srv.uri,
        '-c',
        [
          'import sys, time',
          'for i in range(8):',
          `    h.pwrite(bytes([0x40 + i]) * ${MiB}, ${MiB} * i * 3)`,
          'print("written", flush=True)',
          'time.sleep(10)',
        ].join('\n'),
      ],
      { env: { PATH: systemFirstPath() } },
    );
    try {
      await waitFor('the client to finish writing', () => {
        if (client.gone) throw new Error(`client exited early: ${client.stderr()}`);
        return client.stdout().includes('written');
      });
      const t0 = Date.now();
      expect(await srv.stop('SIGTERM', 20_000), `server stderr:\n${srv.stderr()}`).toBe(0);
      if (serverKind() === 'nbdts')
        expect(Date.now() - t0, 'nbdts should not wait for idle clients').toBeLessThan(8000);
    } finally {
      await client.stop('SIGKILL');
      await srv.stop('SIGKILL');
    }

    const file = readFileSync(backing);
    for (let i = 0; i < 8; i++) {
      const at = MiB * i * 3;
      expect(file.subarray(at, at + MiB).equals(Buffer.alloc(MiB, 0x40 + i)), `block ${i} in the file`).toBe(true);
    }
    const again = await startServer(['file', `file=${backing}`]);
    try {
      const out = await nbdshOk(
        `print(all(h.pread(${MiB}, ${MiB} * i * 3) == bytes([0x40 + i]) * ${MiB} for i in range(8)))`,
        again.uri,
      );
      expect(out.trim()).toBe('True');
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });

  it('after flush, data survives SIGKILL of the server', async () => {
    const backing = dir.join('kill.img');
    sparseFile(backing, 16 * MiB);
    const srv = await startServer(['file', `file=${backing}`]);
    try {
      await nbdshOk(
        `h.pwrite(b"\\x5e" * ${4 * MiB}, ${MiB})\nh.pwrite(b"\\x5f" * 4096, 0, nbd.CMD_FLAG_FUA)\nh.flush()`,
        srv.uri,
      );
    } finally {
      await srv.kill9();
    }
    const file = readFileSync(backing);
    expect(file.subarray(MiB, 5 * MiB).equals(Buffer.alloc(4 * MiB, 0x5e))).toBe(true);
    expect(file.subarray(0, 4096).equals(Buffer.alloc(4096, 0x5f))).toBe(true);
  });

  it('SIGINT also shuts down cleanly', async () => {
    const srv = await startServer(['memory', 'size=1M']);
    expect(await srv.stop('SIGINT')).toBe(0);
  });
});
