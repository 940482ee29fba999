import { describe, expect, it } from 'vitest';
import { ExtentType, releaseOf } from '@nbdts/plugin-api';
import { FAST_RETRY, OBJ, key, nonZero, rand, readAt, setup } from './helpers.ts';
import { bigBuffer, own, reusedBuffers } from '../src/buffers.ts';
import { ObjectDevice, SingleObjectLayout } from '../src/index.ts';
import { MemoryStore } from '../src/testing/memory-store.ts';

describe('reads and writes', () => {
  it('round-trips data across object boundaries', async () => {
    const { dev, store } = await setup();
    const data = rand(3 * OBJ + 100);
    await dev.write(data, OBJ - 50);
    expect(await readAt(dev, OBJ - 50, data.length)).toEqual(data);
    await dev.flush();
    dev.dropCache();
    store.resetCounters();
    expect(await readAt(dev, OBJ - 50, data.length)).toEqual(data);
    expect(store.calls.get).toBe(5); // objects 0..4 each fetched once
    expect(store.data(key(1))).toEqual(data.subarray(50, 50 + OBJ));
  });

  it('reads missing objects as zeros', async () => {
    const { dev } = await setup();
    expect(await readAt(dev, 3 * OBJ + 7, 2 * OBJ)).toEqual(Buffer.alloc(2 * OBJ));
  });

  it('reads objects written by someone else (listing at start)', async () => {
    const { store } = await setup();
    const obj = rand(OBJ);
    store.set(key(5), obj);
    const { dev } = await setup({ store });
    expect(await readAt(dev, 5 * OBJ + 10, 20)).toEqual(obj.subarray(10, 30));
  });

  it('never changes a buffer the store returned', async () => {
    const { store } = await setup();
    store.set(key(0), nonZero(OBJ, 1));
    const { dev } = await setup({ store });
    const returned: Buffer[] = [];
    const get = store.get.bind(store);
    store.get = async (...args) => {
      const b = await get(...args);
      if (b) returned.push(b);
      return b;
    };
    await dev.write(nonZero(10, 2), 0);
    expect(returned).toHaveLength(1);
    expect(returned[0]).toEqual(nonZero(OBJ, 1));
  });

  it('partial writes read-modify-write the stored object', async () => {
    const { store } = await setup();
    const obj = rand(OBJ);
    store.set(key(2), obj);
    const { dev } = await setup({ store });
    await dev.write(nonZero(10), 2 * OBJ + 100);
    await dev.flush();
    const expected = Buffer.from(obj);
    nonZero(10).copy(expected, 100);
    expect(store.data(key(2))).toEqual(expected);
    expect(store.calls.get).toBe(1);
  });

  it('a whole-object write does not GET', async () => {
    const { dev, store } = await setup();
    await dev.write(rand(2 * OBJ), 4 * OBJ);
    await dev.flush();
    expect(store.calls.get).toBe(0);
    expect(store.calls.put).toBe(2);
  });

  it('handles a device size that is not a multiple of the object size', async () => {
    const { dev, store } = await setup({ size: 2 * OBJ + 300 });
    const data = rand(400);
    await dev.write(data, 2 * OBJ - 100);
    await dev.flush();
    expect(store.data(key(2))!.length).toBe(300);
    dev.dropCache();
    expect(await readAt(dev, 2 * OBJ - 100, 400)).toEqual(data);
    await expect(dev.write(Buffer.alloc(1), 2 * OBJ + 300)).rejects.toMatchObject({ errno: 'EINVAL' });
  });

  it('does not store an all-zero object: it deletes it', async () => {
    const { dev, store } = await setup();
    await dev.write(nonZero(OBJ), 0);
    await dev.flush();
    expect(store.objects.has(key(0))).toBe(true);
    await dev.write(Buffer.alloc(OBJ), 0);
    await dev.write(Buffer.alloc(OBJ), OBJ); // never existed: nothing to store
    await dev.flush();
    expect(store.objects.has(key(0))).toBe(false);
    expect(store.objects.has(key(1))).toBe(false);
    expect(store.calls.put).toBe(1);
  });
});

describe('trim and zero', () => {
  it('deletes whole objects and zeroes partial ends', async () => {
    const { dev, store } = await setup();
    const data = rand(6 * OBJ);
    await dev.write(data, 0);
    await dev.flush();
    // Zero from the middle of object 1 to the middle of object 4.
    await dev.zero(3 * OBJ, OBJ + OBJ / 2);
    await dev.flush();
    const expected = Buffer.from(data);
    expected.fill(0, OBJ + OBJ / 2, 4 * OBJ + OBJ / 2);
    expect(store.objects.has(key(2))).toBe(false);
    expect(store.objects.has(key(3))).toBe(false);
    expect(store.data(key(1))).toEqual(expected.subarray(OBJ, 2 * OBJ));
    expect(store.data(key(4))).toEqual(expected.subarray(4 * OBJ, 5 * OBJ));
    dev.dropCache();
    expect(await readAt(dev, 0, 6 * OBJ)).toEqual(expected);
  });

  it('trim behaves like zero', async () => {
    const { dev, store } = await setup();
    await dev.write(nonZero(3 * OBJ), 0);
    await dev.flush();
    await dev.trim(2 * OBJ, OBJ / 2);
    await dev.flush();
    expect(store.objects.has(key(1))).toBe(false);
    expect(
      store
        .data(key(0))!
        .subarray(OBJ / 2)
        .every((b) => b === 0),
    ).toBe(true);
    expect(
      store
        .data(key(2))!
        .subarray(0, OBJ / 2)
        .every((b) => b === 0),
    ).toBe(true);
    expect(
      store
        .data(key(2))!
        .subarray(OBJ / 2)
        .every((b) => b === 0xab),
    ).toBe(true);
  });

  it('trim does not touch the store for objects the listing did not show', async () => {
    const { dev, store } = await setup();
    await dev.trim(16 * OBJ, 0);
    await dev.flush();
    expect(store.calls.delete + store.calls.put).toBe(0);
  });

  it('zero trusts the listing only with trustListing', async () => {
    const trusting = await setup({ trustListing: true });
    await trusting.dev.zero(16 * OBJ, 0);
    await trusting.dev.flush();
    expect(trusting.store.calls.delete + trusting.store.calls.put).toBe(0);
    // Without it (Swift: listings may lag), zero must make sure: one DELETE per object.
    const careful = await setup();
    await careful.dev.zero(4 * OBJ, 0);
    await careful.dev.flush();
    expect(careful.store.calls.delete).toBe(4);
    // ...but only once: it now knows they are gone.
    await careful.dev.zero(4 * OBJ, 0);
    await careful.dev.flush();
    expect(careful.store.calls.delete).toBe(4);
  });

  it('zeroing a partial end of a missing object stores nothing', async () => {
    const { dev, store } = await setup();
    await dev.zero(100, 10);
    await dev.flush();
    expect(store.calls.put + store.calls.delete).toBe(0);
    expect(await readAt(dev, 0, 200)).toEqual(Buffer.alloc(200));
  });

  it('a zeroed object written again is stored again', async () => {
    const { dev, store } = await setup();
    await dev.write(nonZero(OBJ), 0);
    await dev.zero(OBJ, 0);
    await dev.write(nonZero(10, 7), 5);
    await dev.flush();
    const expected = Buffer.alloc(OBJ);
    expected.fill(7, 5, 15);
    expect(store.data(key(0))).toEqual(expected);
  });
});

describe('extents', () => {
  it('reports objects missing from the listing as holes', async () => {
    const { store } = await setup();
    store.set(key(1), nonZero(OBJ));
    store.set(key(2), nonZero(OBJ));
    store.set(key(6), nonZero(OBJ));
    store.set('disk.part/junk', nonZero(OBJ));
    const { dev } = await setup({ store, size: 8 * OBJ });
    expect(dev.extents(8 * OBJ, 0)).toEqual([
      { offset: 0, length: OBJ, type: ExtentType.SPARSE },
      { offset: OBJ, length: 2 * OBJ, type: ExtentType.DATA },
      { offset: 3 * OBJ, length: 3 * OBJ, type: ExtentType.SPARSE },
      { offset: 6 * OBJ, length: OBJ, type: ExtentType.DATA },
      { offset: 7 * OBJ, length: OBJ, type: ExtentType.SPARSE },
    ]);
    expect(dev.extents(4 * OBJ, OBJ + 5, { one: true })).toEqual([
      { offset: OBJ, length: 2 * OBJ, type: ExtentType.DATA },
    ]);
  });

  it('follows writes, zeroes and trims, before and after flush', async () => {
    const { dev } = await setup({ size: 4 * OBJ });
    await dev.write(nonZero(10), OBJ + 3);
    expect(dev.extents(4 * OBJ, 0).map((e) => e.type)).toEqual([ExtentType.SPARSE, ExtentType.DATA, ExtentType.SPARSE]);
    await dev.flush();
    dev.dropCache();
    expect(dev.extents(4 * OBJ, 0).map((e) => e.type)).toEqual([ExtentType.SPARSE, ExtentType.DATA, ExtentType.SPARSE]);
    await dev.zero(OBJ, OBJ);
    expect(dev.extents(4 * OBJ, 0)).toEqual([{ offset: 0, length: 4 * OBJ, type: ExtentType.SPARSE }]);
    await dev.flush();
    dev.dropCache();
    expect(dev.extents(4 * OBJ, 0)).toEqual([{ offset: 0, length: 4 * OBJ, type: ExtentType.SPARSE }]);
  });
});

describe('write-back, flush and FUA', () => {
  it('keeps writes in the cache until flush, then the store holds them', async () => {
    const { dev, store } = await setup();
    const data = rand(2 * OBJ);
    await dev.write(data, 0);
    expect(store.objects.size).toBe(0);
    expect(dev.stats().dirtyChunks).toBe(2);
    await dev.flush();
    expect(store.data(key(0))).toEqual(data.subarray(0, OBJ));
    expect(store.data(key(1))).toEqual(data.subarray(OBJ));
    expect(dev.stats().dirtyChunks).toBe(0);
  });

  it('a FUA write is stored before it resolves (and only its objects)', async () => {
    const { dev, store } = await setup();
    await dev.write(nonZero(OBJ, 1), 0);
    const data = rand(100);
    await dev.write(data, 3 * OBJ + 10, { fua: true });
    expect(store.data(key(3))!.subarray(10, 110)).toEqual(data);
    expect(store.objects.has(key(0))).toBe(false);
  });

  it('a FUA zero deletes before it resolves', async () => {
    const { dev, store } = await setup();
    await dev.write(nonZero(OBJ), 0, { fua: true });
    await dev.zero(OBJ, 0, { fua: true });
    expect(store.objects.has(key(0))).toBe(false);
  });

  it('writethrough stores every write before it resolves', async () => {
    const { dev, store } = await setup({ writethrough: true });
    await dev.write(nonZero(10), 5);
    expect(store.data(key(0))!.subarray(5, 15)).toEqual(nonZero(10));
    expect(dev.stats().dirtyChunks).toBe(0);
  });

  it('writes back in the background after the delay', async () => {
    const { dev, store } = await setup({ writebackDelayMs: 10 });
    await dev.write(nonZero(OBJ), 0);
    expect(store.objects.size).toBe(0);
    await expect.poll(() => store.objects.has(key(0)), { timeout: 2000, interval: 5 }).toBe(true);
    await expect.poll(() => dev.stats().dirtyChunks, { timeout: 2000, interval: 5 }).toBe(0);
  });

  it('a write during a store stays dirty and is stored by the next flush', async () => {
    const { dev, store } = await setup();
    store.delayMs = 20;
    await dev.write(nonZero(OBJ, 1), 0);
    const flushing = dev.flush();
    await new Promise((r) => setTimeout(r, 5)); // the PUT of 1s is in flight
    await dev.write(nonZero(10, 2), 0);
    await flushing;
    expect(dev.stats().dirtyChunks).toBe(1);
    await dev.flush();
    const expected = nonZero(OBJ, 1);
    expected.fill(2, 0, 10);
    expect(store.data(key(0))).toEqual(expected);
  });

  it('close flushes', async () => {
    const { dev, store } = await setup();
    await dev.write(nonZero(OBJ), 2 * OBJ);
    await dev.close();
    expect(store.objects.has(key(2))).toBe(true);
    await expect(dev.write(nonZero(1), 0)).rejects.toMatchObject({ errno: 'ESHUTDOWN' });
  });
});

describe('zero-copy reads', () => {
  it('readViews returns the bytes read() copies, holes as zeros, for any range', async () => {
    const { dev } = await setup();
    const data = rand(5 * OBJ);
    await dev.write(data.subarray(0, 2 * OBJ), 0);
    await dev.write(data.subarray(3 * OBJ, 5 * OBJ), 3 * OBJ);
    const model = Buffer.concat([data.subarray(0, 2 * OBJ), Buffer.alloc(OBJ), data.subarray(3 * OBJ, 5 * OBJ)]);
    for (const [off, len] of [
      [0, 1],
      [OBJ - 7, 20],
      [OBJ + 3, 3 * OBJ],
      [0, 5 * OBJ],
      [2 * OBJ, OBJ],
      [5 * OBJ, 0],
    ] as const) {
      const views = await dev.readViews(len, off);
      expect(Buffer.concat(views)).toEqual(model.subarray(off, off + len));
      const copy = Buffer.alloc(len);
      await dev.read(copy, off);
      expect(copy).toEqual(model.subarray(off, off + len));
    }
  });

  it('a view handed out keeps its bytes when the object is later evicted and read again', async () => {
    const { dev } = await setup({ cacheSize: 2 * OBJ, readahead: 0 });
    const data = rand(OBJ);
    await dev.write(data, 0);
    await dev.flush();
    const views = await dev.readViews(OBJ, 0);
    for (let i = 1; i < 8; i++) await dev.readViews(10, i * OBJ); // evicts object 0
    expect(Buffer.concat(views)).toEqual(data);
  });
});

describe('reusing dropped chunks', () => {
  // Big enough to be reused (buffers.ts reuses only buffers of at least MIN_PREFAULT).
  const BIG = 256 * 1024;
  const big = (opts: Parameters<typeof setup>[0] = {}) =>
    setup({ objectSize: BIG, size: 16 * BIG, cacheSize: 2 * BIG, readahead: 0, ...opts });

  it('a partial write into a new chunk reads zeros around it, even in a reused buffer', async () => {
    const { dev } = await big();
    const before = reusedBuffers();
    for (let i = 0; i < 6; i++) {
      await dev.write(nonZero(BIG, 0xff), i * BIG); // full chunks of 0xff, dropped once stored
      await dev.flush();
    }
    await dev.write(nonZero(4096, 0x11), 8 * BIG + 4096);
    expect(reusedBuffers()).toBeGreaterThan(before); // the test means nothing if nothing was reused
    const want = Buffer.alloc(BIG);
    want.fill(0x11, 4096, 8192);
    expect((await readAt(dev, 8 * BIG, BIG)).equals(want)).toBe(true);
  });

  it('never reuses a chunk that a reader holds a view of', async () => {
    const { dev } = await big();
    const data = rand(BIG);
    await dev.write(data, 0);
    await dev.flush();
    const views = await dev.readViews(BIG, 0);
    const before = reusedBuffers();
    for (let i = 1; i < 8; i++) {
      await dev.write(nonZero(BIG, i), i * BIG); // evicts chunk 0, then others
      await dev.flush();
    }
    expect(reusedBuffers()).toBeGreaterThan(before); // chunks were reused, just not the lent one
    // Buffer.equals: vitest's element-wise toEqual takes seconds on buffers this big.
    expect(Buffer.concat(views).equals(data)).toBe(true);
    for (let i = 1; i < 8; i++) expect((await readAt(dev, i * BIG, BIG)).equals(nonZero(BIG, i))).toBe(true);
  });
});

describe('reusing memory lent to readers', () => {
  const BIG = 256 * 1024;

  /** A store whose GET bodies are the caller's to reuse, as the HTTP clients' are. */
  class OwnedBodies extends MemoryStore {
    override async get(...args: Parameters<MemoryStore['get']>): Promise<Buffer | null> {
      const b = await super.get(...args);
      if (!b) return b;
      const c = own(bigBuffer(b.length, false));
      b.copy(c);
      return c;
    }
  }

  const views = (r: readonly Buffer[]) => Buffer.concat(r);

  it('memory lent by lendViews comes back only once released', async () => {
    const store = new OwnedBodies();
    for (let i = 0; i < 8; i++) store.set(key(i), nonZero(BIG, i + 1));
    const { dev } = await setup({ store, objectSize: BIG, size: 8 * BIG, cacheSize: 2 * BIG, readahead: 0 });
    const first = await dev.lendViews(BIG, 0);
    const before = reusedBuffers();
    for (let round = 0; round < 2; round++) {
      for (let i = 1; i < 8; i++) {
        const r = await dev.lendViews(BIG, i * BIG);
        expect(views(r).equals(nonZero(BIG, i + 1))).toBe(true);
        releaseOf(r)!();
      }
    }
    expect(reusedBuffers()).toBeGreaterThan(before); // released chunks were reused for later GETs
    // Take (and scribble over) every spare buffer there is: the held chunk must not be among them.
    for (let i = 0; i < 200; i++) bigBuffer(BIG, false).fill(0xee);
    expect(views(first).equals(nonZero(BIG, 1))).toBe(true);
    releaseOf(first)!();
  });

  it('a readahead run is not reused while its chunks are still arriving', async () => {
    const store = new OwnedBodies();
    const size = 32 * BIG;
    const image = rand(size);
    store.set('image', image);
    const layout = new SingleObjectLayout({ key: 'image', size, chunkSize: BIG });
    const dev = await ObjectDevice.open(store, layout, { retry: FAST_RETRY, cacheSize: 16 * BIG });
    const before = reusedBuffers();
    store.resetCounters();
    for (let round = 0; round < 2; round++) {
      for (let off = 0; off < size; off += 64 * 1024) {
        const r = await dev.lendViews(64 * 1024, off);
        expect(views(r).equals(image.subarray(off, off + 64 * 1024))).toBe(true);
        releaseOf(r)!();
      }
    }
    expect(reusedBuffers()).toBeGreaterThan(before);
    expect(store.log.some((c) => (c.range?.length ?? 0) > BIG)).toBe(true); // runs: several chunks to a GET
    await dev.close();
  });
});
