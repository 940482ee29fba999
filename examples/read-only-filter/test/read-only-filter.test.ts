import { describe, it, expect, beforeAll } from 'vitest';
import { NbdError, definePlugin, type Plugin } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import { openStack } from '@nbdts/server';
import readonly from '../src/index.ts';

/** A tiny plugin to put under the filter: 4 KiB of memory, without trim. */
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

/**
 * The filter on the plugin, opened the way the engine opens a connection
 * (openStack is @nbdts/server's in-process stack, for tests like this one).
 */
async function stack(params: Record<string, string>, plugin = innerPlugin()) {
  const config = await readonly.config!.parseAsync(params);
  await readonly.configComplete!(config);
  return openStack({ plugin, filters: [readonly] });
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
    const s = await stack({});
    expect(s.caps.canWrite).toBe(false);
    expect(s.caps.zero).toBe('none');
    expect(() => s.pwrite(Buffer.from('x'), 0, 0)).toThrow(expect.objectContaining({ errno: 'EROFS' }));
    const buf = Buffer.alloc(4, 1);
    await s.pread(buf, 0, 0);
    expect(buf).toEqual(Buffer.alloc(4));
    await s.close();
  });

  it('fail: stays writable but fails writes and zeroes with the chosen error', async () => {
    const s = await stack({ roMode: 'fail', roError: 'EIO' });
    expect(s.caps.canWrite).toBe(true);
    let err: unknown;
    try {
      await s.pwrite(Buffer.from('x'), 10, 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NbdError);
    expect(err).toMatchObject({ errno: 'EIO', message: expect.stringMatching(/offset 10/) });
    expect(() => s.zero(10, 0, 0)).toThrow(expect.objectContaining({ errno: 'EIO' }));
    await s.close();
  });

  it('ro-after lets the first N writes through, counted over all connections', async () => {
    const s = await stack({ roAfter: '2' });
    expect(s.caps.canWrite).toBe(true);
    await s.pwrite(Buffer.from('a'), 0, 0);
    const second = await openStack({ plugin: innerPlugin(), filters: [readonly] });
    await second.pwrite(Buffer.from('b'), 1, 0); // the second and last write allowed
    expect(() => s.pwrite(Buffer.from('c'), 2, 0)).toThrow(expect.objectContaining({ errno: 'EROFS' }));
    const buf = Buffer.alloc(3);
    await s.pread(buf, 0, 0);
    expect(buf.toString('latin1')).toBe('a\0\0'); // each connection here has its own little disk
    // New connections now see a read-only disk.
    const third = await openStack({ plugin: innerPlugin(), filters: [readonly] });
    expect(third.caps.canWrite).toBe(false);
    await Promise.all([s.close(), second.close(), third.close()]);
  });

  it('shares its allowance with copies of the module on other threads', async () => {
    await stack({ roAfter: '1' });
    const shared = readonly.threads!.share();
    expect(shared).toMatchObject({ settings: { roAfter: 1 }, left: expect.any(SharedArrayBuffer) });
    // What another thread's copy would get: structured-clonable, still the same memory.
    const copy = structuredClone(shared) as { left: SharedArrayBuffer };
    expect(new Int32Array(copy.left)[0]).toBe(1);
    Atomics.store(new Int32Array(copy.left), 0, 0);
    const s = await openStack({ plugin: innerPlugin(), filters: [readonly] });
    expect(s.caps.canWrite).toBe(false);
    await s.close();
  });
});
