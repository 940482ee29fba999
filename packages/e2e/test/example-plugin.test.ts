// The example plugin (examples/ramdisk-plugin), loaded by path as a user would:
// `nbdts ./examples/ramdisk-plugin/src/index.ts size=... pattern=...`.
// nbdts-only: nbdkit cannot load a TypeScript plugin, so with
// NBDTS_E2E_SERVER=nbdkit this file is skipped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NBDSH_TRYIT,
  nbdinfoJson,
  nbdshOk,
  requireTool,
  runOk,
  serverKind,
  sha256File,
  startServer,
  tempDir,
  writeRandomFile,
  type ServerProcess,
  type TempDir,
} from '@nbdts/testkit';

const MiB = 1 << 20;
const PLUGIN = './examples/ramdisk-plugin/src/index.ts';

describe.skipIf(serverKind() !== 'nbdts')('example ramdisk plugin loaded by path', () => {
  let dir: TempDir;
  let srv: ServerProcess;
  beforeAll(async () => {
    requireTool('nbdcopy');
    dir = tempDir();
    srv = await startServer([PLUGIN, 'size=8M', 'pattern=hello']);
  });
  afterAll(async () => {
    await srv?.stop();
    dir?.cleanup();
  });

  it('serves the configured size, filled with the pattern', async () => {
    const info = await nbdinfoJson(srv.uri);
    expect(info.exports[0]!['export-size']).toBe(8 * MiB);
    const out = await nbdshOk('print(h.pread(20, 0).decode(), h.pread(5, 8 * 1024 * 1024 - 5).decode())', srv.uri);
    // 8 MiB is not a multiple of 5: the last 5 bytes are a rotation of "hello".
    expect(out.trim()).toBe(
      `hellohellohellohello ${'hello'.repeat(Math.ceil((8 * MiB) / 5)).slice(8 * MiB - 5, 8 * MiB)}`,
    );
  });

  it('nbdcopy round trip', async () => {
    writeRandomFile(dir.join('src.img'), 8 * MiB);
    await runOk('nbdcopy', ['--flush', dir.join('src.img'), srv.uri]);
    await runOk('nbdcopy', [srv.uri, dir.join('out.img')]);
    expect(await sha256File(dir.join('out.img'))).toBe(await sha256File(dir.join('src.img')));
  });

  it('shared=false gives each connection its own disk', async () => {
    const priv = await startServer([PLUGIN, 'size=1M', 'shared=false']);
    try {
      const first = await nbdshOk('h.pwrite(b"mine" * 1024, 0)\nprint(h.pread(4, 0).hex())', priv.uri);
      expect(first.trim()).toBe(Buffer.from('mine').toString('hex'));
      const second = await nbdshOk('print(h.pread(4, 0).hex())', priv.uri);
      expect(second.trim()).toBe('00000000');
    } finally {
      expect(await priv.stop()).toBe(0);
    }
  });

  it('a bad parameter is reported in one line', async () => {
    await expect(startServer([PLUGIN, 'size=lots'])).rejects.toThrow(/size/);
  });
});

describe.skipIf(serverKind() !== 'nbdts')('example read-only filter over the memory plugin', () => {
  const FILTER = '--filter=./examples/read-only-filter/src/index.ts';

  it('ro-mode=refuse advertises a read-only export; reads still work', async () => {
    const srv = await startServer([FILTER, 'memory', 'size=4M']);
    try {
      const e = (await nbdinfoJson(srv.uri)).exports[0]!;
      expect(e.is_read_only).toBe(true);
      expect(e['export-size']).toBe(4 * MiB);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });

  it('ro-mode=fail ro-after=2: two writes pass, then writes, zeroes and trims fail with ro-error', async () => {
    const srv = await startServer([FILTER, 'memory', 'size=4M', 'ro-mode=fail', 'ro-after=2', 'ro-error=ENOSPC']);
    try {
      const out = await nbdshOk(
        `${NBDSH_TRYIT}
print(h.is_read_only(),
      tryit(lambda: h.pwrite(b"1" * 4096, 0)), tryit(lambda: h.pwrite(b"2" * 4096, 4096)),
      tryit(lambda: h.pwrite(b"3" * 4096, 8192)), tryit(lambda: h.zero(4096, 0)), tryit(lambda: h.trim(4096, 0)),
      h.pread(8192, 0) == b"1" * 4096 + b"2" * 4096, h.pread(4096, 8192) == bytes(4096))
`,
        srv.uri,
      );
      expect(out.trim()).toBe('False ok ok ENOSPC ENOSPC ENOSPC True True');
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });
});
