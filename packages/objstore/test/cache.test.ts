import { describe, expect, it } from 'vitest';
import { OBJ, key, nonZero, readAt, setup } from './helpers.ts';
import { MemoryStore } from '../src/testing/memory-store.ts';

async function withObjects(n: number): Promise<MemoryStore> {
  const store = new MemoryStore();
  for (let i = 0; i < n; i++) store.set(key(i), nonZero(OBJ, i + 1));
  return store;
}

describe('readahead', () => {
  it('prefetches the next objects on sequential reads', async () => {
    const { dev, store } = await setup({ store: await withObjects(16), readahead: 4 });
    await readAt(dev, 0, OBJ);
    expect(dev.stats().readaheads).toBe(0); // one read is not a pattern yet
    await readAt(dev, OBJ, OBJ);
    expect(dev.stats().readaheads).toBe(4);
    await expect.poll(() => store.calls.get).toBe(6);
    for (let i = 2; i < 6; i++) expect(await readAt(dev, i * OBJ, OBJ)).toEqual(nonZero(OBJ, i + 1));
    // The later sequential reads kept the window 4 objects ahead.
    expect(dev.stats().readaheads).toBe(8);
    expect(dev.stats().cacheHits).toBeGreaterThanOrEqual(4);
  });

  it('does not prefetch on random reads', async () => {
    const { dev, store } = await setup({ store: await withObjects(16), readahead: 4 });
    for (const i of [7, 2, 11, 0, 5, 13]) await readAt(dev, i * OBJ + 10, 100);
    expect(dev.stats().readaheads).toBe(0);
    expect(store.calls.get).toBe(6);
  });

  it('stops at the end of the device and can be turned off', async () => {
    const a = await setup({ store: await withObjects(16), readahead: 4 });
    await readAt(a.dev, 13 * OBJ, OBJ);
    await readAt(a.dev, 14 * OBJ, OBJ);
    expect(a.dev.stats().readaheads).toBe(1);
    const b = await setup({ store: await withObjects(16), readahead: 0 });
    await readAt(b.dev, 0, OBJ);
    await readAt(b.dev, OBJ, OBJ);
    expect(b.dev.stats().readaheads).toBe(0);
  });
});

describe('cache', () => {
  it('stays within cacheSize by evicting least recently used clean objects', async () => {
    const { dev, store } = await setup({ store: await withObjects(16), cacheSize: 4 * OBJ, readahead: 0 });
    for (let i = 0; i < 16; i++) await readAt(dev, i * OBJ, 10);
    expect(dev.stats().cachedBytes).toBeLessThanOrEqual(4 * OBJ);
    expect(dev.stats().evictions).toBeGreaterThan(8);
    store.resetCounters();
    await readAt(dev, 15 * OBJ, 10); // recent: a hit
    expect(store.calls.get).toBe(0);
    await readAt(dev, 0, 10); // evicted long ago: a miss
    expect(store.calls.get).toBe(1);
  });

  it('never evicts dirty objects', async () => {
    const { dev, store } = await setup({
      store: await withObjects(16),
      cacheSize: 4 * OBJ,
      maxDirty: 4 * OBJ,
      readahead: 0,
    });
    await dev.write(nonZero(OBJ, 0xd1), OBJ);
    for (let i = 2; i < 16; i++) await readAt(dev, i * OBJ, 10);
    expect(dev.stats().evictions).toBeGreaterThan(8);
    expect(store.objects.get(key(1))!.data[0]).toBe(2); // not stored yet...
    expect(await readAt(dev, OBJ, OBJ)).toEqual(nonZero(OBJ, 0xd1)); // ...and still cached
    await dev.flush();
    expect(store.data(key(1))).toEqual(nonZero(OBJ, 0xd1));
  });

  it('counts hits, misses and bytes', async () => {
    const { dev } = await setup({ store: await withObjects(4), readahead: 0 });
    await readAt(dev, 0, 10);
    await readAt(dev, 5, 10);
    await dev.write(nonZero(OBJ), OBJ, { fua: true });
    const s = dev.stats();
    expect(s.cacheMisses).toBe(1);
    expect(s.cacheHits).toBe(1);
    expect(s.gets).toBe(1);
    expect(s.getBytes).toBe(OBJ);
    expect(s.puts).toBe(1);
    expect(s.putBytes).toBe(OBJ);
  });

  it('prefetch (NBD_CMD_CACHE) loads the range', async () => {
    const { dev, store } = await setup({ store: await withObjects(8), readahead: 0 });
    await dev.prefetch(3 * OBJ, OBJ);
    expect(store.calls.get).toBe(3);
    await readAt(dev, OBJ, 3 * OBJ);
    expect(store.calls.get).toBe(3);
  });

  it('raises a cache smaller than two objects and caps maxDirty at the cache', async () => {
    const { dev } = await setup({ cacheSize: 100, maxDirty: 10 * OBJ });
    expect(dev.cacheSize).toBe(2 * OBJ);
    expect(dev.maxDirty).toBe(2 * OBJ);
  });
});
