/** Backend defaults, errno mapping and the concurrency limiter (filters: filters.test.ts). */
import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { Flag, NbdError, type Plugin } from '@nbdts/plugin-api';
import { NbdErr } from '@nbdts/protocol';
import { Backend } from '../src/backend.ts';
import { toNbdError } from '../src/errno.ts';
import { memPlugin } from './mem-plugin.ts';

const backend = (p: Plugin<unknown, unknown>, readonly = false): Backend =>
  new Backend(p, [], readonly, 32 << 20, () => {});

describe('errno mapping', () => {
  it('maps errno names and Node codes', () => {
    const cases: Array<[unknown, number]> = [
      [new NbdError('EPERM'), NbdErr.EPERM],
      [new NbdError('EROFS'), NbdErr.EPERM],
      [new NbdError('EIO'), NbdErr.EIO],
      [new NbdError('ENOMEM'), NbdErr.ENOMEM],
      [new NbdError('EAGAIN'), NbdErr.ENOMEM],
      [new NbdError('EINVAL'), NbdErr.EINVAL],
      [new NbdError('ENOSPC'), NbdErr.ENOSPC],
      [new NbdError('EDQUOT'), NbdErr.ENOSPC],
      [new NbdError('EFBIG'), NbdErr.ENOSPC],
      [new NbdError('EOVERFLOW'), NbdErr.EOVERFLOW],
      [new NbdError('ENOTSUP'), NbdErr.ENOTSUP],
      [new NbdError('EOPNOTSUPP'), NbdErr.ENOTSUP],
      [new NbdError('ESHUTDOWN'), NbdErr.ESHUTDOWN],
      [new NbdError('ETIMEDOUT'), NbdErr.EIO],
      [Object.assign(new Error('x'), { code: 'ENOSPC' }), NbdErr.ENOSPC],
      [Object.assign(new Error('x'), { code: 'ERR_SOMETHING' }), NbdErr.EIO],
      [new TypeError('bug'), NbdErr.EIO],
      ['string', NbdErr.EIO],
      [null, NbdErr.EIO],
    ];
    for (const [err, want] of cases) expect(toNbdError(err)).toBe(want);
  });
});

describe('capability defaults', () => {
  it('derives capabilities from the callbacks present', async () => {
    const { plugin } = memPlugin({ size: 4096 });
    const h = await backend(plugin).open('');
    expect(h.caps).toMatchObject({
      size: 4096,
      canWrite: true,
      canFlush: true,
      canTrim: true,
      zero: 'native',
      canFastZero: true,
      fua: 'emulate',
      canExtents: true,
      cache: 'native',
      canMultiConn: true,
      rotational: false,
    });
  });

  it('a plugin with only open/getSize/pread is read-only with nothing extra', async () => {
    const p: Plugin<unknown, unknown> = {
      name: 'min',
      open: () => ({}),
      getSize: () => 10n,
      pread: (_h, b) => {
        b.fill(1);
      },
    };
    const h = await backend(p).open('');
    expect(h.caps).toMatchObject({
      size: 10,
      canWrite: false,
      canFlush: false,
      canTrim: false,
      zero: 'none',
      fua: 'none',
      canExtents: false,
      cache: 'none',
      canMultiConn: false,
    });
    expect(await h.extents(10, 0, 0)).toEqual([{ offset: 0, length: 10, type: 0 }]);
  });

  it('-r makes every export read-only', async () => {
    const { plugin } = memPlugin({ size: 4096 });
    const h = await backend(plugin, true).open('');
    expect(h.caps).toMatchObject({ canWrite: false, canTrim: false, zero: 'none', fua: 'none' });
  });

  it('emulates FUA with a flush after the write', async () => {
    const flushes = { count: 0 };
    const { plugin, mem } = memPlugin({ size: 65536, flushes });
    const h = await backend(plugin).open('');
    await h.write(Buffer.alloc(512, 3), 0, Flag.FUA);
    expect(flushes.count).toBe(1);
    await h.write(Buffer.alloc(512, 3), 0, 0);
    expect(flushes.count).toBe(1);
    const b = Buffer.alloc(512);
    mem.readInto(b, 0);
    expect(b.equals(Buffer.alloc(512, 3))).toBe(true);
  });

  it('falls back to writing zeros when native zero says ENOTSUP, unless FAST_ZERO', async () => {
    const { plugin, mem } = memPlugin({ size: 3 << 20 });
    let zeroCalls = 0;
    const p: Plugin<unknown, unknown> = {
      ...plugin,
      zero: () => {
        zeroCalls++;
        throw new NbdError('ENOTSUP');
      },
    };
    const h = await backend(p).open('');
    await h.write(Buffer.alloc(3 << 20, 9), 0, 0);
    await expect(Promise.resolve().then(() => h.zero(1 << 20, 0, Flag.FAST_ZERO))).rejects.toMatchObject({
      errno: 'ENOTSUP',
    });
    await h.zero((2 << 20) + 5, 100, Flag.MAY_TRIM);
    expect(zeroCalls).toBe(2);
    const b = Buffer.alloc(3 << 20);
    mem.readInto(b, 0);
    expect(b.subarray(100, 100 + (2 << 20) + 5).every((x) => x === 0)).toBe(true);
    expect(b[99]).toBe(9);
    expect(b[100 + (2 << 20) + 5]).toBe(9);
  });

  it('honours the concurrency limit per handle', async () => {
    let running = 0;
    let peak = 0;
    const p: Plugin<unknown, unknown> = {
      name: 'slow',
      concurrency: 2,
      open: () => ({}),
      getSize: () => 1 << 20,
      pread: async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(5);
        running--;
      },
    };
    const h = await backend(p).open('');
    await Promise.all(Array.from({ length: 20 }, (_, i) => h.readInto(Buffer.alloc(512), i * 512)));
    expect(peak).toBe(2);
  });

  it('closes the handle again when computing capabilities fails', async () => {
    let closed = 0;
    const p: Plugin<unknown, unknown> = {
      name: 'bad',
      open: () => ({}),
      close: () => {
        closed++;
      },
      getSize: () => {
        throw new Error('no size');
      },
      pread: () => {},
    };
    await expect(backend(p).open('')).rejects.toThrow('no size');
    expect(closed).toBe(1);
  });
});
