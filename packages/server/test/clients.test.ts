/** The engine against real NBD clients: nbdinfo, nbdsh, qemu-io, nbdcopy. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NBDSH_TRYIT } from '@nbdts/testkit';
import { start, run, nbdsh, type Running } from './helpers.ts';

const MiB = 1024 * 1024;

describe('nbdinfo', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start({ size: 64 * MiB, description: 'test disk', exports: ['', 'second'] });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('reports size, flags, block size, description and contexts', async () => {
    const r = await run('nbdinfo', ['--json', s.uri]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as { protocol: string; structured: boolean; exports: Record<string, unknown>[] };
    expect(info.protocol).toBe('newstyle-fixed');
    expect(info.structured).toBe(true);
    const e = info.exports[0]!;
    expect(e['export-size']).toBe(64 * MiB);
    expect(e.description).toBe('test disk');
    expect(e.contexts).toEqual(['base:allocation']);
    expect(e.is_read_only).toBe(false);
    expect(e.can_flush).toBe(true);
    expect(e.can_fua).toBe(true);
    expect(e.can_trim).toBe(true);
    expect(e.can_zero).toBe(true);
    expect(e.can_fast_zero).toBe(true);
    expect(e.can_df).toBe(true);
    expect(e.can_multi_conn).toBe(true);
    expect(e.can_cache).toBe(true);
    expect(e.block_size_minimum).toBe(1);
    expect(e.block_size_preferred).toBe(4096);
    expect(e.block_size_maximum).toBe(32 * MiB);
  });

  it('lists exports', async () => {
    const r = await run('nbdinfo', ['--list', '--json', s.uri]);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as { exports: { 'export-name': string; description?: string }[] };
    expect(info.exports.map((e) => e['export-name'])).toEqual(['', 'second']);
    expect(info.exports[1]!.description).toBe('export second');
  });

  it('refuses an unknown export name', async () => {
    const r = await run('nbdinfo', [`nbd+unix:///nosuch?socket=${s.path}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown|not available|export/i);
  });

  it('maps allocation after writes', async () => {
    const w = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x55 1M 1M', s.uri]);
    expect(w.code, w.stderr).toBe(0);
    const r = await run('nbdinfo', ['--map', '--json', s.uri]);
    expect(r.code, r.stderr).toBe(0);
    const map = JSON.parse(r.stdout) as { offset: number; length: number; type: number }[];
    expect(map).toEqual([
      { offset: 0, length: MiB, type: 3, description: 'hole,zero' },
      { offset: MiB, length: MiB, type: 0, description: 'data' },
      { offset: 2 * MiB, length: 62 * MiB, type: 3, description: 'hole,zero' },
    ]);
  });
});

describe('read-only export', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start({ size: 8 * MiB }, { readonly: true });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('advertises read-only and no write features', async () => {
    const r = await run('nbdinfo', ['--json', s.uri]);
    expect(r.code, r.stderr).toBe(0);
    const e = (JSON.parse(r.stdout) as { exports: Record<string, unknown>[] }).exports[0]!;
    expect(e.is_read_only).toBe(true);
    expect(e.can_trim).toBe(false);
    expect(e.can_zero).toBe(false);
    expect(e.can_fua).toBe(false);
  });

  it('fails writes, trims and zeroes with EPERM', async () => {
    const r = await nbdsh(
      s.uri,
      `
for name, fn in [('pwrite', lambda: h.pwrite(b'x' * 512, 0)),
                 ('trim', lambda: h.trim(512, 0)),
                 ('zero', lambda: h.zero(512, 0))]:
    try:
        fn()
        print(name, 'ok')
    except nbd.Error as e:
        print(name, errno.errorcode.get(e.errno, e.errno))
`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['pwrite EPERM', 'trim EPERM', 'zero EPERM']);
  });
});

describe('nbdsh negative cases', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start({ size: 40 * MiB });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('returns the spec error codes and keeps serving', async () => {
    const r = await nbdsh(
      s.uri,
      `${NBDSH_TRYIT}
size = h.get_size()
print('read past end', tryit(lambda: h.pread(512, size)))
print('read across end', tryit(lambda: h.pread(1024, size - 512)))
print('write past end', tryit(lambda: h.pwrite(b'a' * 512, size)))
print('zero past end', tryit(lambda: h.zero(512, size)))
print('trim past end', tryit(lambda: h.trim(512, size)))
print('cache past end', tryit(lambda: h.cache(512, size)))
print('zero-length read', tryit(lambda: h.pread(0, 0)))
print('huge offset', tryit(lambda: h.pread(512, 2**64 - 256)))
print('flush', tryit(lambda: h.flush()))
print('unknown flag', tryit(lambda: h.pread(512, 0, flags=1 << 7)))
print('no_hole on read', tryit(lambda: h.pread(512, 0, flags=nbd.CMD_FLAG_NO_HOLE)))
print('read too large', tryit(lambda: h.pread(33 * 1024 * 1024, 0)))
big = b'\x5a' * (32 * 1024 * 1024)
h.pwrite(big, 0)
print('32 MiB round trip', h.pread(32 * 1024 * 1024, 0) == big)
h.pwrite(b'z' * 4096, 4096)
print('still serving', h.pread(4096, 4096) == b'z' * 4096)
`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'read past end EINVAL',
      'read across end EINVAL',
      'write past end ENOSPC',
      'zero past end ENOSPC',
      'trim past end EINVAL',
      'cache past end EINVAL',
      'zero-length read EINVAL',
      'huge offset EINVAL',
      'flush ok',
      'unknown flag EINVAL',
      'no_hole on read EINVAL',
      'read too large EINVAL',
      '32 MiB round trip True',
      'still serving True',
    ]);
  });

  it('answers block status with REQ_ONE and clips at the end', async () => {
    const r = await nbdsh(
      s.uri,
      `
base = 34 * 1024 * 1024
h.pwrite(b'd' * 65536, base + 65536)
seen = []
def cb(meta, offset, entries, err):
    seen.append((meta, offset - base if offset >= base else offset, list(entries)))
    return 0
h.block_status(4 * 65536, base, cb)
h.block_status(4 * 65536, base, cb, flags=nbd.CMD_FLAG_REQ_ONE)
h.block_status(1000, h.get_size() - 1000, cb)
for s in seen: print(s)
`,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      "('base:allocation', 0, [65536, 3, 65536, 0, 131072, 3])",
      "('base:allocation', 0, [65536, 3])",
      "('base:allocation', 6290456, [1000, 3])", // size - 1000 - base
    ]);
  });
});

describe('qemu-io', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start({ size: 16 * MiB, async: true });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('writes, reads back, zeroes, discards and flushes', async () => {
    const r = await run('qemu-io', [
      '-f',
      'raw',
      '-c',
      'write -P 0xab 0 2M',
      '-c',
      'read -P 0xab 0 2M',
      '-c',
      'write -z 512k 512k',
      '-c',
      'read -P 0 512k 512k',
      '-c',
      'read -P 0xab 1M 1M',
      '-c',
      'write -P 0xcd -f 3M 64k',
      '-c',
      'read -P 0xcd 3M 64k',
      '-c',
      'discard 0 64k',
      '-c',
      'flush',
      '-c',
      'aio_write -P 0x11 4M 64k',
      '-c',
      'aio_write -P 0x22 5M 64k',
      '-c',
      'aio_flush',
      '-c',
      'read -P 0x11 4M 64k',
      '-c',
      'read -P 0x22 5M 64k',
      s.uri,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/Pattern verification failed|error|failed/i);
    expect((r.stdout.match(/^read /gm) ?? []).length).toBe(6);
  });

  it('fails a verification that should fail (the test can fail)', async () => {
    const r = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x99 0 64k', s.uri]);
    expect(r.stdout + r.stderr).toMatch(/Pattern verification failed/);
  });
});

describe('nbdcopy', () => {
  let s: Running;
  beforeAll(async () => {
    s = await start({ size: 32 * MiB, zeroCopy: true });
  });
  afterAll(async () => {
    await s.stop();
  });

  it('copies an image in and out unchanged', async () => {
    const { mkdtemp, writeFile, readFile, rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { randomBytes } = await import('node:crypto');
    const dir = await mkdtemp(join(tmpdir(), 'nbdts-copy-'));
    try {
      const src = join(dir, 'src.img');
      const dst = join(dir, 'dst.img');
      const data = Buffer.alloc(32 * MiB);
      randomBytes(8 * MiB).copy(data, 4 * MiB);
      randomBytes(1 * MiB).copy(data, 20 * MiB);
      await writeFile(src, data);
      let r = await run('nbdcopy', [src, s.uri]);
      expect(r.code, r.stderr).toBe(0);
      r = await run('nbdcopy', [s.uri, dst]);
      expect(r.code, r.stderr).toBe(0);
      expect((await readFile(dst)).equals(data)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('serveStream', () => {
  it('serves one client on stdin/stdout and resolves when it disconnects', async () => {
    const { fileURLToPath } = await import('node:url');
    const script = fileURLToPath(new URL('./serve-stdio.ts', import.meta.url));
    const cmd = JSON.stringify([process.execPath, script]);
    const r = await run('nbdsh', [
      '-c',
      `
h.connect_command(${cmd})
h.pwrite(b'stdio!', 4096)
print(h.get_size(), bytes(h.pread(6, 4096)).decode())
h.shutdown()
`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('1048576 stdio!');
    expect(r.stderr).toContain('serveStream resolved');
  });
});

describe('TCP', () => {
  it('listens on all addresses with port 0 and serves IPv4 and IPv6 clients', async () => {
    const pino = (await import('pino')).default;
    const { createServer } = await import('../src/index.ts');
    const { memPlugin } = await import('./mem-plugin.ts');
    const server = createServer({ plugin: memPlugin({ size: MiB }).plugin, logger: pino({ level: 'silent' }) });
    try {
      const addrs = await server.listenTcp(undefined, 0);
      expect(addrs.length).toBeGreaterThan(0);
      const port = addrs[0]!.port;
      expect(port).toBeGreaterThan(0);
      const v4 = await run('nbdinfo', ['--size', `nbd://127.0.0.1:${port}`]);
      expect(v4.code, v4.stderr).toBe(0);
      expect(v4.stdout.trim()).toBe(String(MiB));
      const v6 = await run('nbdinfo', ['--size', `nbd://[::1]:${port}`]);
      if (!/Address family|Cannot assign|unreachable/i.test(v6.stderr)) {
        expect(v6.code, v6.stderr).toBe(0);
      }
    } finally {
      await server.shutdown();
    }
  });
});

describe('listenUnix', () => {
  it('replaces a stale socket but refuses a live one or a regular file', async () => {
    const { mkdtemp, writeFile, rm, stat } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const pino = (await import('pino')).default;
    const { createServer } = await import('../src/index.ts');
    const { memPlugin } = await import('./mem-plugin.ts');
    const dir = await mkdtemp(join(tmpdir(), 'nbdts-unix-'));
    const mk = () => createServer({ plugin: memPlugin({ size: MiB }).plugin, logger: pino({ level: 'silent' }) });
    try {
      // A stale socket: bound by a server whose process "died" without unlinking.
      const stalePath = join(dir, 'stale.sock');
      const { spawnSync } = await import('node:child_process');
      spawnSync(process.execPath, [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ]);
      expect((await stat(stalePath)).isSocket()).toBe(true);
      const a = mk();
      await a.listenUnix(stalePath);
      expect((await run('nbdinfo', ['--size', `nbd+unix:///?socket=${stalePath}`])).stdout.trim()).toBe(String(MiB));
      // The same path while a is live: refused.
      const b = mk();
      await expect(b.listenUnix(stalePath)).rejects.toThrow(/another server/);
      await a.shutdown();
      // A regular file is never removed.
      const file = join(dir, 'file');
      await writeFile(file, 'keep me');
      await expect(mk().listenUnix(file)).rejects.toThrow(/not a socket/);
      expect((await stat(file)).isFile()).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
