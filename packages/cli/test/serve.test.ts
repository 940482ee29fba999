// End to end with the real engine (@nbdts/server) and real NBD clients (libnbd's nbdinfo).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { BIN, FIXTURE, collect, runCommand, runNbdts, startNbdts, waitFor } from './helpers.ts';

const started: ChildProcess[] = [];
afterEach(() => {
  for (const c of started.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function start(args: string[], opts: Parameters<typeof startNbdts>[1] = {}): ChildProcess {
  const c = startNbdts(args, opts);
  started.push(c);
  return c;
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'nbdts-cli-'));
  dirs.push(d);
  return d;
}

async function nbdinfoJson(uri: string): Promise<{ exports: Array<Record<string, unknown>> }> {
  const r = await runCommand('nbdinfo', ['--json', uri]);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as { exports: Array<Record<string, unknown>> };
}

describe('serving with the real engine', () => {
  it('-U SOCK -P PIDFILE: nbdinfo sees the export; SIGTERM exits 0 and removes the socket', async () => {
    const dir = tmp();
    const sock = join(dir, 'sock');
    const pidfile = join(dir, 'pid');
    const child = start(['-U', sock, '-P', pidfile, FIXTURE, '1M', 'label=x']);
    const done = collect(child);
    const pid = await waitFor(() => existsSync(pidfile) && readFileSync(pidfile, 'utf8'), 'pidfile');
    expect(pid).toBe(`${child.pid}\n`);
    const info = await nbdinfoJson(`nbd+unix:///?socket=${sock}`);
    expect(info.exports[0]).toMatchObject({ 'export-size': 1048576, is_read_only: false });
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`nbd+unix:///?socket=${sock}\n`);
    expect(existsSync(sock)).toBe(false);
  });

  it('nbdinfo -- [ nbdts PLUGIN ] (socket activation), with and without -s', async () => {
    for (const single of [['-s'], []]) {
      const r = await runCommand('nbdinfo', [
        '--size',
        '--',
        '[',
        process.execPath,
        BIN,
        ...single,
        FIXTURE,
        '1M',
        ']',
      ]);
      expect(r.stdout).toBe('1048576\n');
    }
  });

  it('-s serves one connection on a stdin socket and exits', async () => {
    const dir = tmp();
    const path = join(dir, 'front');
    const server = createServer((conn: Socket) => {
      const child = start(['-s', FIXTURE, '2M'], { stdio: [conn, conn, 'pipe'] });
      conn.destroy(); // the child has its own copy of the descriptor
      void collect(child).then((r) => exited.resolve(r.code));
    });
    const exited = deferred<number | null>();
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const info = await nbdinfoJson(`nbd+unix:///?socket=${path}`);
      expect(info.exports[0]).toMatchObject({ 'export-size': 2097152 });
      expect(await exited.promise).toBe(0);
    } finally {
      server.close();
    }
  });

  it('-s serves over stdin/stdout pipes too', async () => {
    const dir = tmp();
    const path = join(dir, 'front');
    const exited = deferred<number | null>();
    const server = createServer((conn: Socket) => {
      const child = start(['-s', FIXTURE, '3M'], { stdio: ['pipe', 'pipe', 'pipe'] });
      conn.pipe(child.stdin!);
      child.stdout!.pipe(conn);
      void collect(child).then((r) => exited.resolve(r.code));
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      const info = await nbdinfoJson(`nbd+unix:///?socket=${path}`);
      expect(info.exports[0]).toMatchObject({ 'export-size': 3145728 });
      expect(await exited.promise).toBe(0);
    } finally {
      server.close();
    }
  });

  it('--run: captive mode with $uri, -r, exit status, private socket removed', async () => {
    const r = await runNbdts(['-r', FIXTURE, '2M', '--run', 'nbdinfo --json "$uri"; echo "$unixsocket"; exit 5']);
    expect(r.code).toBe(5);
    const sock = r.stdout.trimEnd().split('\n').pop()!;
    const info = JSON.parse(r.stdout.slice(0, r.stdout.lastIndexOf(sock))) as {
      exports: Array<Record<string, unknown>>;
    };
    expect(info.exports[0]).toMatchObject({ 'export-size': 2097152, is_read_only: true });
    expect(sock).toMatch(/\/nbdts-\w+\/socket$/);
    expect(existsSync(join(sock, '..'))).toBe(false);
  });

  it('-U - with --print-uri: private socket, URI on stdout, cleaned up after SIGINT', async () => {
    const child = start(['-U', '-', '--print-uri', FIXTURE, '1M']);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const done = collect(child);
    const uri = await waitFor(() => out.includes('\n') && out.trim(), 'URI on stdout');
    const sock = /socket=(.*)$/.exec(uri)![1]!;
    expect(existsSync(sock)).toBe(true);
    expect((await nbdinfoJson(uri)).exports[0]).toMatchObject({ 'export-size': 1048576 });
    child.kill('SIGINT');
    expect((await done).code).toBe(0);
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(join(sock, '..'))).toBe(false);
  });

  it('-p 0 picks a TCP port; a second server on that port fails with one line', async () => {
    const child = start(['-p', '0', '-i', '127.0.0.1', FIXTURE, '1M']);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const done = collect(child);
    const uri = await waitFor(() => out.includes('\n') && out.trim(), 'URI on stdout');
    const port = Number(/^nbd:\/\/127\.0\.0\.1:(\d+)$/.exec(uri)![1]);
    expect((await nbdinfoJson(uri)).exports[0]).toMatchObject({ 'export-size': 1048576 });
    const second = await runNbdts(['-p', String(port), '-i', '127.0.0.1', FIXTURE, '1M']);
    expect(second.code).toBe(1);
    expect(
      second.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('nbdts:')),
    ).toEqual([`nbdts: cannot listen on 127.0.0.1 port ${port}: address already in use`]);
    child.kill('SIGTERM');
    expect((await done).code).toBe(0);
  });

  it('--exit-with-parent: exits once its parent is gone', async () => {
    const dir = tmp();
    const pidfile = join(dir, 'pid');
    // sh starts nbdts in the background and exits once nbdts is listening.
    const sh = await runCommand('sh', [
      '-c',
      `"${process.execPath}" "${BIN}" --exit-with-parent -U ${join(dir, 'sock')} -P ${pidfile} "${FIXTURE}" 1M >/dev/null 2>&1 &
       while [ ! -s ${pidfile} ]; do sleep 0.1; done`,
    ]);
    expect(sh.code).toBe(0);
    const pid = Number(readFileSync(pidfile, 'utf8'));
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      await waitFor(() => !alive(), 'nbdts to exit after its parent', 10_000);
    } finally {
      if (alive()) process.kill(pid, 'SIGKILL');
    }
  });

  it('a second signal exits at once with status 1', async () => {
    const dir = tmp();
    const pidfile = join(dir, 'pid');
    const child = start(['-U', join(dir, 'sock'), '-P', pidfile, FIXTURE, '1M', 'slow-unload=yes']);
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const done = collect(child);
    await waitFor(() => existsSync(pidfile), 'pidfile');
    child.kill('SIGTERM');
    await waitFor(() => err.includes('fixture: slow unload'), 'unload to start');
    const t0 = Date.now();
    child.kill('SIGTERM');
    expect((await done).code).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
