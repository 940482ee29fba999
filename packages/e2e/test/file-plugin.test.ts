// The file plugin seen from outside: odd sizes, -r leaves the file untouched,
// trim punches holes in the backing file, extents follow the file's holes,
// FUA/flush reach the file.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  nbdinfoJson,
  nbdinfoMap,
  nbdsh,
  nbdshOk,
  requireTool,
  sha256File,
  sparseFile,
  startServer,
  tempDir,
  writeRandomFile,
  type TempDir,
} from '@nbdts/testkit';

const MiB = 1 << 20;
let dir: TempDir;
beforeAll(() => {
  requireTool('nbdsh');
  requireTool('nbdinfo');
  dir = tempDir();
});
afterAll(() => dir?.cleanup());

describe('file plugin', () => {
  it('serves a file whose size is not a multiple of 512, to the last byte', async () => {
    const p = dir.join('odd.img');
    writeRandomFile(p, 1_000_003);
    const srv = await startServer(['file', `file=${p}`]);
    try {
      expect((await nbdinfoJson(srv.uri)).exports[0]!['export-size']).toBe(1_000_003);
      const out = await nbdshOk(
        [
          'h.set_strict_mode(0)',
          'h.pwrite(b"END", 1000000)',
          'print(h.pread(3, 1000000).decode())',
          'try:\n    h.pwrite(b"X" * 4, 1000000)\n    print("no error")\nexcept nbd.Error as e:\n    print(e.errnum == errno.ENOSPC)',
        ]
          .join('\n')
          .replace(/^/, 'import errno\n'),
        srv.uri,
      );
      expect(out.trim().split('\n')).toEqual(['END', 'True']);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    const bytes = readFileSync(p);
    expect(bytes.length).toBe(1_000_003);
    expect(bytes.subarray(1_000_000).toString()).toBe('END');
  });

  it('-r refuses writes and leaves the file byte-for-byte unchanged', async () => {
    const p = dir.join('ro.img');
    writeRandomFile(p, 4 * MiB);
    const before = await sha256File(p);
    const mtime = statSync(p).mtimeMs;
    const srv = await startServer(['-r', 'file', `file=${p}`]);
    try {
      expect((await nbdinfoJson(srv.uri)).exports[0]!.is_read_only).toBe(true);
      const r = await nbdsh('h.set_strict_mode(0)\nh.pwrite(b"x" * 4096, 0)', srv.uri);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/EPERM|not permitted|read-only/i);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    expect(await sha256File(p)).toBe(before);
    expect(statSync(p).mtimeMs).toBe(mtime);
  });

  it('trim punches a hole in the backing file; extents show it', async () => {
    const p = dir.join('trim.img');
    sparseFile(p, 16 * MiB);
    const srv = await startServer(['file', `file=${p}`]);
    try {
      await nbdshOk(`h.pwrite(b"\\xee" * ${8 * MiB}, 0, nbd.CMD_FLAG_FUA)\nh.flush()`, srv.uri);
      const full = statSync(p).blocks;
      expect(full * 512).toBeGreaterThanOrEqual(8 * MiB);
      await nbdshOk(`h.trim(${4 * MiB}, ${2 * MiB})\nh.flush()`, srv.uri);
      const after = statSync(p).blocks;
      expect((full - after) * 512, 'space freed by trim').toBeGreaterThanOrEqual(3 * MiB);
      const map = await nbdinfoMap(srv.uri);
      const typeAt = (off: number) => map.find((x) => x.offset <= off && off < x.offset + x.length)!.type;
      expect(typeAt(0)).toBe(0);
      expect(typeAt(3 * MiB)).toBe(3);
      expect(typeAt(6 * MiB + 4096)).toBe(0);
      expect(typeAt(12 * MiB)).toBe(3);
      const out = await nbdshOk(
        `print(h.pread(${4 * MiB}, ${2 * MiB}) == bytes(${4 * MiB}), h.pread(4096, ${7 * MiB}) == b"\\xee" * 4096)`,
        srv.uri,
      );
      expect(out.trim()).toBe('True True');
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });

  it('a file replaced between servers is served fresh (size read at start)', async () => {
    const p = dir.join('grow.img');
    writeFileSync(p, Buffer.alloc(MiB, 1));
    let srv = await startServer(['file', `file=${p}`]);
    expect((await nbdinfoJson(srv.uri)).exports[0]!['export-size']).toBe(MiB);
    expect(await srv.stop()).toBe(0);
    writeFileSync(p, Buffer.alloc(3 * MiB, 2));
    srv = await startServer(['file', `file=${p}`]);
    try {
      expect((await nbdinfoJson(srv.uri)).exports[0]!['export-size']).toBe(3 * MiB);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });
});
