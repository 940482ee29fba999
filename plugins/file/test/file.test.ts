import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, ExtentType, Flag, NbdError } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import { ensureAddon } from '@nbdts/testkit';
import fileDefault, { createFilePlugin, loadNative, type FileHandle, type FileOps } from '../src/index.ts';

// The addon is built on demand so these tests cover it; on a machine that
// cannot build it, the native tests are skipped and the fallback tests still run.
const native = ensureAddon('@nbdts/plugin-file', loadNative, 'native file tests');
const MiB = 2 ** 20;

let dir: string;
const logs: string[] = [];
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdts-file-'));
  const keep = (msg: string) => {
    logs.push(msg);
  };
  setPluginLogger({ debug: keep, info: keep, warn: keep, error: keep, debugEnabled: true });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A sparse temp file of `size` bytes. */
function tempFile(size: number): string {
  const p = path.join(dir, `disk${n++}.img`);
  fs.writeFileSync(p, '');
  fs.truncateSync(p, size);
  return p;
}

async function openFile(
  file: string,
  opts: { native?: FileOps | null; readonly?: boolean; params?: Record<string, string> } = {},
) {
  const plugin = createFilePlugin({ native: opts.native === undefined ? native : opts.native });
  const config = await plugin.config!.parseAsync({ file, ...opts.params });
  await plugin.getReady!(config, { readonly: false });
  const h = await plugin.open('', opts.readonly ?? false);
  return { plugin, h };
}

async function readBack(plugin: ReturnType<typeof createFilePlugin>, h: FileHandle, count: number, offset: number) {
  const buf = Buffer.alloc(count, 0xee);
  await plugin.pread!(h, buf, offset, 0);
  return buf;
}

const blocks = (p: string) => fs.statSync(p).blocks;
const TMPFS_MAGIC = 0x01021994;
const isTmpfs = (p: string) => {
  try {
    return fs.statfsSync(p).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
};

describe('file plugin', () => {
  it('default export is the file plugin with file as magic key', () => {
    expect(fileDefault.name).toBe('file');
    expect(fileDefault.magicConfigKey).toBe('file');
    expect(fileDefault.config!.safeParse({ file: '' }).success).toBe(false);
  });

  it('refuses a missing file or a directory with a clear message', async () => {
    const plugin = createFilePlugin({ native });
    const ready = async (file: string) => plugin.getReady!(plugin.config!.parse({ file }), { readonly: false });
    await expect(ready(path.join(dir, 'nope.img'))).rejects.toThrow(ConfigError);
    await expect(ready(path.join(dir, 'nope.img'))).rejects.toThrow(
      /does not exist; create it first, e.g. truncate -s/,
    );
    await expect(ready(dir)).rejects.toThrow(/not a regular file/);
  });

  it('round-trips data, with FUA and flush', async () => {
    const file = tempFile(4 * MiB);
    const { plugin, h } = await openFile(file);
    expect(await plugin.getSize(h)).toBe(4 * MiB);
    expect(plugin.canWrite!(h)).toBe(true);
    expect(plugin.canFua!(h)).toBe('native');
    expect(plugin.canMultiConn!(h)).toBe(true);
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    await plugin.pwrite!(h, data, 123_457, Flag.FUA);
    await plugin.flush!(h, 0);
    // Buffer.equals, not toEqual: vitest compares buffers byte by byte, slowly.
    expect((await readBack(plugin, h, data.length, 123_457)).equals(data)).toBe(true);
    expect(
      fs
        .readFileSync(file)
        .subarray(123_457, 123_457 + data.length)
        .equals(data),
    ).toBe(true);
    expect(await readBack(plugin, h, 100, 0)).toEqual(Buffer.alloc(100)); // holes read as zeros
    await plugin.close!(h);
  });

  it('reports a file that shrank under it as EIO instead of returning garbage', async () => {
    const file = tempFile(MiB);
    const { plugin, h } = await openFile(file);
    fs.truncateSync(file, 1000);
    await expect(readBack(plugin, h, 4096, 0)).rejects.toMatchObject({ errno: 'EIO' });
  });

  it('serves a file it may not write read-only, saying so', async () => {
    const file = tempFile(MiB);
    fs.chmodSync(file, 0o444);
    let result: { canWrite: boolean; size: number; log: string };
    if (process.getuid?.() !== 0) {
      logs.length = 0;
      const { plugin, h } = await openFile(file);
      result = { canWrite: await plugin.canWrite!(h), size: Number(await plugin.getSize(h)), log: logs.join('\n') };
    } else {
      // Root may open any file for writing, so run the plugin as 'nobody'.
      fs.chmodSync(dir, 0o755);
      const script = `
        import { createFilePlugin } from ${JSON.stringify(path.resolve(import.meta.dirname, '../src/index.ts'))};
        const p = createFilePlugin();
        await p.getReady(p.config.parse({ file: ${JSON.stringify(file)} }));
        const h = await p.open('', false);
        console.log(JSON.stringify({ canWrite: await p.canWrite(h), size: await p.getSize(h) }));`;
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        uid: 65534,
        gid: 65534,
        cwd: path.resolve(import.meta.dirname, '../../..'),
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(child.status, child.stderr).toBe(0);
      result = { ...(JSON.parse(child.stdout) as { canWrite: boolean; size: number }), log: child.stderr };
    }
    expect(result.canWrite).toBe(false);
    expect(result.size).toBe(MiB);
    expect(result.log).toMatch(/is not writable \(EACCES\); serving it read-only/);
  });

  it('a read-only open cannot write', async () => {
    const file = tempFile(MiB);
    const { plugin, h } = await openFile(file, { readonly: true });
    expect(plugin.canWrite!(h)).toBe(false);
    await expect(plugin.pwrite!(h, Buffer.alloc(512, 1), 0, 0)).rejects.toMatchObject({ code: 'EBADF' });
    expect(fs.readFileSync(file).every((b) => b === 0)).toBe(true);
  });

  describe.runIf(native !== null)('with the native helpers', () => {
    it('trim punches a hole: st_blocks shrinks and the range reads zeros', async () => {
      const file = tempFile(4 * MiB);
      const { plugin, h } = await openFile(file);
      await plugin.pwrite!(h, Buffer.alloc(2 * MiB, 0x11), 0, 0);
      await plugin.flush!(h, 0);
      const before = blocks(file);
      await plugin.trim!(h, MiB, MiB / 2, Flag.FUA);
      expect(blocks(file)).toBeLessThanOrEqual(before - MiB / 512 + 8);
      expect((await readBack(plugin, h, MiB, MiB / 2)).every((b) => b === 0)).toBe(true);
      expect((await readBack(plugin, h, MiB / 2, 0)).every((b) => b === 0x11)).toBe(true);
      expect(fs.statSync(file).size).toBe(4 * MiB); // KEEP_SIZE
    });

    it('extents follow SEEK_DATA/SEEK_HOLE', async () => {
      const file = tempFile(16 * MiB);
      const { plugin, h } = await openFile(file);
      expect(plugin.canExtents).toBeUndefined(); // derived by the engine from extents
      await plugin.pwrite!(h, Buffer.alloc(64 * 1024, 7), 4 * MiB, 0);
      await plugin.pwrite!(h, Buffer.alloc(64 * 1024, 7), 16 * MiB - 64 * 1024, 0);
      expect(await plugin.extents!(h, 16 * MiB, 0, 0)).toEqual([
        { offset: 0, length: 4 * MiB, type: ExtentType.SPARSE },
        { offset: 4 * MiB, length: 64 * 1024, type: ExtentType.DATA },
        { offset: 4 * MiB + 64 * 1024, length: 12 * MiB - 128 * 1024, type: ExtentType.SPARSE },
        { offset: 16 * MiB - 64 * 1024, length: 64 * 1024, type: ExtentType.DATA },
      ]);
      // From the middle of a hole, clipped to the request, and REQ_ONE.
      expect(await plugin.extents!(h, MiB, MiB, 0)).toEqual([{ offset: MiB, length: MiB, type: ExtentType.SPARSE }]);
      expect(await plugin.extents!(h, 8 * MiB, 4 * MiB + 4096, Flag.REQ_ONE)).toEqual([
        { offset: 4 * MiB + 4096, length: 60 * 1024, type: ExtentType.DATA },
      ]);
    });

    it('zero with MAY_TRIM punches; without it keeps the blocks allocated', async () => {
      const file = tempFile(4 * MiB);
      const { plugin, h } = await openFile(file);
      expect(plugin.canZero!(h)).toBe('native');
      await plugin.pwrite!(h, Buffer.alloc(4 * MiB, 0x22), 0, 0);
      await plugin.flush!(h, 0);
      const full = blocks(file);

      await plugin.zero!(h, MiB, 0, Flag.FAST_ZERO); // ZERO_RANGE on ext4/xfs
      expect(blocks(file)).toBeGreaterThan(full - 64);
      expect((await readBack(plugin, h, MiB, 0)).every((b) => b === 0)).toBe(true);

      await plugin.zero!(h, MiB, 2 * MiB, Flag.MAY_TRIM | Flag.FUA);
      expect(blocks(file)).toBeLessThan(full - MiB / 512 + 64);
      expect((await readBack(plugin, h, MiB, 2 * MiB)).every((b) => b === 0)).toBe(true);
      expect((await readBack(plugin, h, MiB, MiB)).every((b) => b === 0x22)).toBe(true);
      expect((await readBack(plugin, h, MiB, 3 * MiB)).every((b) => b === 0x22)).toBe(true);
    });

    it('zero falls back to writing zeros where the filesystem cannot, and FAST_ZERO fails fast', async () => {
      const enotsup = () => Promise.reject(Object.assign(new Error('not supported'), { code: 'EOPNOTSUPP' }));
      const calls: string[] = [];
      const limited: FileOps = {
        ...native!,
        punchHole: (...a) => {
          calls.push('punch');
          return enotsup();
          void a;
        },
        zeroRange: (...a) => {
          calls.push('zeroRange');
          return enotsup();
          void a;
        },
      };
      const file = tempFile(MiB);
      const { plugin, h } = await openFile(file, { native: limited });
      await plugin.pwrite!(h, Buffer.alloc(MiB, 0x33), 0, 0);
      await expect(plugin.zero!(h, 4096, 0, Flag.FAST_ZERO)).rejects.toMatchObject({ errno: 'ENOTSUP' });
      await expect(plugin.zero!(h, 4096, 0, Flag.FAST_ZERO)).rejects.toBeInstanceOf(NbdError);
      await plugin.zero!(h, 10_000, 5, Flag.MAY_TRIM);
      const back = await readBack(plugin, h, 10_010, 0);
      expect(back.subarray(5, 10_005).every((b) => b === 0)).toBe(true);
      expect(back[4]).toBe(0x33);
      expect(back[10_005]).toBe(0x33);
      await plugin.trim!(h, 4096, 0, 0); // advisory: succeeds doing nothing
      // Unsupported is remembered: each helper was tried once only.
      expect(calls).toEqual(['zeroRange', 'punch']);
    });

    it.runIf(isTmpfs('/dev/shm'))('zero on tmpfs (no ZERO_RANGE) punches and reallocates', async () => {
      const file = path.join('/dev/shm', `nbdts-file-test-${process.pid}.img`);
      fs.writeFileSync(file, Buffer.alloc(MiB, 0x44));
      try {
        const { plugin, h } = await openFile(file);
        const full = blocks(file);
        await plugin.zero!(h, 256 * 1024, 0, Flag.FAST_ZERO); // fast: no zeros written
        expect((await readBack(plugin, h, 256 * 1024, 0)).every((b) => b === 0)).toBe(true);
        expect(blocks(file)).toBe(full); // allocated again after the punch
        expect((await readBack(plugin, h, 4096, 256 * 1024)).every((b) => b === 0x44)).toBe(true);
        await plugin.close!(h);
      } finally {
        fs.rmSync(file, { force: true });
      }
    });

    it('cache asks the kernel to read ahead; fadvise= is applied at open', async () => {
      const file = tempFile(MiB);
      const calls: unknown[][] = [];
      const spy: FileOps = {
        ...native!,
        fadvise: (...a) => {
          calls.push(a);
          native!.fadvise(...a);
        },
      };
      const { plugin, h } = await openFile(file, { native: spy, params: { fadvise: 'random' } });
      await plugin.cache!(h, 4096, 8192, 0);
      expect(calls).toEqual([
        [h.fd, 0, 0, 1],
        [h.fd, 8192, 4096, 3],
      ]);
      expect(plugin.config!.safeParse({ file, fadvise: 'backwards' }).success).toBe(false);
    });

    it('a block device is sized with BLKGETSIZE64 and reported as all data', async () => {
      const dev = '/dev/loop0'; // unattached loop devices exist on most Linux hosts and have size 0
      let fd: number;
      try {
        fd = fs.openSync(dev, 'r');
      } catch {
        return;
      } // not available here
      fs.closeSync(fd);
      const { plugin, h } = await openFile(dev, { readonly: true });
      expect(h.blockDevice).toBe(true);
      const size = await plugin.getSize(h);
      expect(size).toBe(Number(fs.readFileSync('/sys/dev/block/7:0/size', 'utf8')) * 512);
      expect(await plugin.extents!(h, 4096, 0, 0)).toEqual([{ offset: 0, length: 4096, type: ExtentType.DATA }]);
      await plugin.close!(h);
    });
  });

  describe('without the native helpers', () => {
    it('leaves trim, zero and extents to the engine and says how to build them', async () => {
      logs.length = 0;
      const file = tempFile(MiB);
      const { plugin, h } = await openFile(file, { native: null });
      expect(plugin.trim).toBeUndefined();
      expect(plugin.zero).toBeUndefined();
      expect(plugin.extents).toBeUndefined();
      expect(plugin.canZero).toBeUndefined();
      expect(plugin.cache).toBeUndefined();
      expect(logs.join('\n')).toMatch(/npm run build:native -w @nbdts\/plugin-file/);
      await plugin.pwrite!(h, Buffer.from('still works'), 4096, 0);
      expect((await readBack(plugin, h, 11, 4096)).toString()).toBe('still works');
      expect(await plugin.getSize(h)).toBe(MiB);
    });
  });
});
