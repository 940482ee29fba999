import { describe, it, expect, beforeAll } from 'vitest';
import { ExtentType, Flag } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import ramdisk from '../src/index.ts';

// Plugin tests call the callbacks directly, in the order the engine would:
// parse the config, configComplete, getReady, open, then requests.
async function start(params: Record<string, string>) {
  const config = await ramdisk.config!.parseAsync(params);
  await ramdisk.configComplete!(config);
  await ramdisk.getReady!(config, { readonly: false });
  return config;
}

beforeAll(() => {
  const quiet = () => {};
  setPluginLogger({ debug: quiet, info: quiet, warn: quiet, error: quiet, debugEnabled: false });
});

describe('ramdisk example plugin', () => {
  it('parses its parameters', () => {
    expect(ramdisk.config!.parse({ size: '1M' })).toEqual({ size: 2 ** 20, shared: true });
    expect(ramdisk.config!.parse({ size: '4k', pattern: 'ab', shared: 'no' })).toEqual({
      size: 4096,
      pattern: 'ab',
      shared: false,
    });
    expect(ramdisk.config!.safeParse({ size: 'big' }).success).toBe(false);
    expect(ramdisk.config!.safeParse({}).success).toBe(false);
  });

  it('refuses a size it cannot allocate, in one line naming the memory plugin', async () => {
    await expect(start({ size: '1P' })).rejects.toThrow(/use the memory plugin/);
  });

  it('starts filled with the pattern and reads back writes', async () => {
    await start({ size: '64K', pattern: 'hello' });
    const h = await ramdisk.open('', false);
    expect(await ramdisk.getSize(h)).toBe(65536);
    const buf = Buffer.alloc(12);
    await ramdisk.pread!(h, buf, 3, 0);
    expect(buf.toString()).toBe('lohellohello');

    await ramdisk.pwrite!(h, Buffer.from('WORLD'), 5, Flag.FUA);
    await ramdisk.flush!(h, 0);
    await ramdisk.pread!(h, buf, 0, 0);
    expect(buf.toString()).toBe('helloWORLDhe');
  });

  it('shares one disk between connections unless shared=false', async () => {
    await start({ size: '8K' });
    const a = await ramdisk.open('', false);
    const b = await ramdisk.open('', false);
    expect(ramdisk.canMultiConn!(a)).toBe(true);
    await ramdisk.pwrite!(a, Buffer.from('x'), 0, 0);
    const one = Buffer.alloc(1);
    await ramdisk.pread!(b, one, 0, 0);
    expect(one.toString()).toBe('x');

    await start({ size: '8K', shared: 'false' });
    const c = await ramdisk.open('', false);
    const d = await ramdisk.open('', false);
    expect(ramdisk.canMultiConn!(c)).toBe(false);
    await ramdisk.pwrite!(c, Buffer.from('y'), 0, 0);
    await ramdisk.pread!(d, one, 0, 0);
    expect(one[0]).toBe(0);
    await ramdisk.close!(c);
  });

  it('reports zero blocks as ZERO extents and written ones as DATA', async () => {
    await start({ size: '64K' });
    const h = await ramdisk.open('', false);
    await ramdisk.pwrite!(h, Buffer.from('data'), 8192 + 100, 0);
    expect(await ramdisk.extents!(h, 65536, 0, 0)).toEqual([
      { offset: 0, length: 8192, type: ExtentType.ZERO },
      { offset: 8192, length: 4096, type: ExtentType.DATA },
      { offset: 12288, length: 65536 - 12288, type: ExtentType.ZERO },
    ]);
    // Starting mid-block, the first extent starts at the requested offset.
    // A request inside a block looks only at the bytes asked about.
    expect(await ramdisk.extents!(h, 10, 8192 + 50, 0)).toEqual([{ offset: 8242, length: 10, type: ExtentType.ZERO }]);
    expect(await ramdisk.extents!(h, 10, 8192 + 98, 0)).toEqual([{ offset: 8290, length: 10, type: ExtentType.DATA }]);
  });
});
