import { describe, it, expect, beforeAll } from 'vitest';
import { NbdError, definePlugin, setPluginLogger, type Plugin } from '@nbdts/plugin-api';
import readonly from '../src/index.ts';

/** A tiny plugin to put under the filter: 4 KiB of memory. */
function innerPlugin(): Plugin<unknown, unknown> {
  const disk = Buffer.alloc(4096);
  return definePlugin({
    name: 'inner',
    open: () => ({}),
    getSize: () => disk.length,
    pread: (_h, buf, offset) => {
      disk.copy(buf, 0, offset, offset + buf.length);
    },
    pwrite: (_h, buf, offset) => {
      buf.copy(disk, offset);
    },
    zero: (_h, count, offset) => {
      disk.fill(0, offset, offset + count);
    },
  }) as Plugin<unknown, unknown>;
}

/** Stack the filter on a plugin the way the engine does: the filter's callbacks win. */
async function stack(params: Record<string, string>) {
  const next = innerPlugin();
  const config = await readonly.config!.parseAsync(params);
  const layer = { ...next, ...readonly.wrap(next, config) } as Plugin<unknown, unknown>;
  const h = await layer.open('', false);
  return { layer, h };
}

beforeAll(() => {
  const quiet = () => {};
  setPluginLogger({ debug: quiet, info: quiet, warn: quiet, error: quiet, debugEnabled: false });
});

describe('read-only example filter', () => {
  it('has defaults and checks its parameters', async () => {
    expect(await readonly.config!.parseAsync({})).toEqual({ roMode: 'refuse', roError: 'EROFS', roAfter: 0 });
    expect(readonly.config!.safeParse({ roMode: 'maybe' }).success).toBe(false);
    expect(readonly.config!.safeParse({ roAfter: '-1' }).success).toBe(false);
  });

  it('refuse: advertises read-only and rejects writes with EROFS; reads pass through', async () => {
    const { layer, h } = await stack({});
    expect(await layer.canWrite!(h)).toBe(false);
    await expect(layer.pwrite!(h, Buffer.from('x'), 0, 0)).rejects.toMatchObject({ errno: 'EROFS' });
    const buf = Buffer.alloc(4, 1);
    await layer.pread!(h, buf, 0, 0);
    expect(buf).toEqual(Buffer.alloc(4));
    expect(layer.trim).toBeUndefined(); // the plugin has no trim: nothing to wrap
  });

  it('fail: stays writable but fails writes and zeroes with the chosen error', async () => {
    const { layer, h } = await stack({ roMode: 'fail', roError: 'EIO' });
    expect(await layer.canWrite!(h)).toBe(true);
    const err = await Promise.resolve(layer.pwrite!(h, Buffer.from('x'), 10, 0)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect(err).toMatchObject({ errno: 'EIO', message: expect.stringMatching(/offset 10/) });
    await expect(layer.zero!(h, 10, 0, 0)).rejects.toMatchObject({ errno: 'EIO' });
  });

  it('ro-after lets the first N writes through', async () => {
    const { layer, h } = await stack({ roAfter: '2' });
    expect(await layer.canWrite!(h)).toBe(true);
    await layer.pwrite!(h, Buffer.from('a'), 0, 0);
    await layer.pwrite!(h, Buffer.from('b'), 1, 0);
    await expect(layer.pwrite!(h, Buffer.from('c'), 2, 0)).rejects.toMatchObject({ errno: 'EROFS' });
    expect(await layer.canWrite!(h)).toBe(false); // new connections now see a read-only disk
    const buf = Buffer.alloc(3);
    await layer.pread!(h, buf, 0, 0);
    expect(buf.toString('latin1')).toBe('ab\0');
  });
});
