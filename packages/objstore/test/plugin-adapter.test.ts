import { describe, expect, it } from 'vitest';
import { ExtentType, Flag } from '@nbdts/plugin-api';
import { deviceBlockSize, deviceCallbacks, ObjectDevice, SingleObjectLayout } from '../src/index.ts';
import { MemoryStore } from '../src/testing/memory-store.ts';
import { OBJ, key, nonZero, setup } from './helpers.ts';

describe('deviceCallbacks', () => {
  it('serves a writable device', async () => {
    const { dev, store } = await setup({ size: 8 * OBJ });
    const cb = deviceCallbacks((h: { dev: ObjectDevice }) => h.dev);
    const h = { dev };
    expect(cb.getSize(h)).toBe(8 * OBJ);
    expect(cb.canWrite(h)).toBe(true);
    expect(cb.canFua(h)).toBe('native');
    expect(cb.canZero(h)).toBe('native');
    expect(cb.canFastZero(h)).toBe(true);
    expect(cb.canMultiConn(h)).toBe(true);
    expect(cb.canCache(h)).toBe('native');
    await cb.pwrite(h, nonZero(10), 5, Flag.FUA);
    expect(store.data(key(0))!.subarray(5, 15)).toEqual(nonZero(10));
    await cb.pwrite(h, nonZero(OBJ), 2 * OBJ, 0);
    expect(store.objects.has(key(2))).toBe(false);
    await cb.flush(h, 0);
    expect(store.objects.has(key(2))).toBe(true);
    const buf = Buffer.concat([await cb.read(h, 20, 0, 0)].flat());
    expect(buf.subarray(5, 15)).toEqual(nonZero(10));
    // Across an object boundary and into a hole: views of the cache and shared zeros, in order.
    const across = await cb.read(h, OBJ + 100, 2 * OBJ + OBJ - 50, 0);
    expect(Buffer.concat([across].flat())).toEqual(
      Buffer.concat([nonZero(OBJ).subarray(OBJ - 50), Buffer.alloc(OBJ + 50)]),
    );
    await cb.zero(h, OBJ, 2 * OBJ, Flag.FUA | Flag.MAY_TRIM);
    expect(store.objects.has(key(2))).toBe(false);
    expect(await cb.extents(h, 8 * OBJ, 0, Flag.REQ_ONE)).toEqual([{ offset: 0, length: OBJ, type: ExtentType.DATA }]);
  });

  it('accepts the device itself and reports a read-only one', async () => {
    const store = new MemoryStore();
    store.set('x.iso', Buffer.alloc(4096, 1));
    const dev = await ObjectDevice.open(store, new SingleObjectLayout({ key: 'x.iso', size: 4096, chunkSize: 1024 }));
    const cb = deviceCallbacks(dev);
    expect(cb.canWrite(undefined)).toBe(false);
    expect(cb.canFua(undefined)).toBe('none');
    expect(cb.canZero(undefined)).toBe('none');
    expect(cb.canTrim(undefined)).toBe(false);
    await expect(cb.pwrite(undefined, Buffer.alloc(1), 0, 0)).rejects.toMatchObject({ errno: 'EROFS' });
  });

  it('a writable layout opened readOnly refuses writes', async () => {
    const { dev, store } = await setup({ readOnly: true });
    expect(deviceCallbacks(dev).canWrite(undefined)).toBe(false);
    await expect(dev.write(Buffer.alloc(1), 0)).rejects.toMatchObject({ errno: 'EROFS' });
    await expect(dev.zero(OBJ, 0)).rejects.toMatchObject({ errno: 'EROFS' });
    expect(store.calls.put + store.calls.delete).toBe(0);
  });

  it('block sizes: minimum 1, preferred one object (clamped), maximum 32 MiB', async () => {
    const mk = async (objectSize: number) => (await setup({ objectSize, size: 2 * objectSize })).dev;
    expect(deviceBlockSize(await mk(OBJ))).toEqual({ minimum: 1, preferred: OBJ, maximum: 32 * 1024 * 1024 });
    expect(deviceBlockSize(await mk(3000)).preferred).toBe(2048);
    const big = new ObjectDevice(
      new MemoryStore(),
      new SingleObjectLayout({ key: 'k', size: 2 ** 30, chunkSize: 64 * 1024 * 1024 }),
    );
    expect(deviceBlockSize(big)).toEqual({ minimum: 1, preferred: 32 * 1024 * 1024, maximum: 32 * 1024 * 1024 });
  });
});
