import { describe, expect, it } from 'vitest';
import { ExtentType } from '@nbdts/plugin-api';
import { ObjectDevice, SingleObjectLayout } from '../src/index.ts';
import { MemoryStore } from '../src/testing/memory-store.ts';
import { FAST_RETRY, rand, readAt } from './helpers.ts';

async function single(size = 5000, chunkSize = 1024, trustListing = false) {
  const store = new MemoryStore();
  const iso = rand(size);
  store.set('fedora.iso', iso);
  const head = await store.head('fedora.iso');
  const layout = new SingleObjectLayout({ key: 'fedora.iso', size: head!.size, chunkSize });
  const dev = await ObjectDevice.open(store, layout, { retry: FAST_RETRY, readahead: 0, trustListing });
  store.resetCounters();
  return { store, dev, iso };
}

describe('single-object layout', () => {
  it('reads with ranged GETs of whole chunks', async () => {
    const { store, dev, iso } = await single();
    expect(await readAt(dev, 1000, 3000)).toEqual(iso.subarray(1000, 4000));
    expect(store.log.map((c) => c.range).sort((a, b) => a!.offset - b!.offset)).toEqual([
      { offset: 0, length: 1024 },
      { offset: 1024, length: 1024 },
      { offset: 2048, length: 1024 },
      { offset: 3072, length: 1024 },
    ]);
    expect(await readAt(dev, 4096, 904)).toEqual(iso.subarray(4096));
    expect(store.log.at(-1)!.range).toEqual({ offset: 4096, length: 904 });
    expect(store.calls.list).toBe(0);
  });

  it('has no listing to trust: trustListing does not make it read zeros', async () => {
    const { dev, iso } = await single(5000, 1024, true);
    expect(await readAt(dev, 0, 100)).toEqual(iso.subarray(0, 100));
  });

  it('shares the cache and readahead', async () => {
    const store = new MemoryStore();
    store.set('big', rand(16 * 1024));
    const dev = await ObjectDevice.open(
      store,
      new SingleObjectLayout({ key: 'big', size: 16 * 1024, chunkSize: 1024 }),
      { readahead: 2 },
    );
    await readAt(dev, 0, 1024);
    await readAt(dev, 1024, 1024);
    expect(dev.stats().readaheads).toBe(2);
    await readAt(dev, 2048, 2048);
    await expect.poll(() => store.calls.get).toBe(6);
    expect(dev.stats().cacheHits).toBeGreaterThanOrEqual(2);
  });

  it('readahead fetches runs of chunks in one ranged GET; random reads still fetch one chunk', async () => {
    const store = new MemoryStore();
    const size = 20 * 1024 + 100; // 21 chunks, the last one short
    const data = rand(size);
    store.set('big', data);
    const dev = await ObjectDevice.open(store, new SingleObjectLayout({ key: 'big', size, chunkSize: 1024 }), {
      readahead: 8,
    });
    store.resetCounters();
    expect(await readAt(dev, 10 * 1024 + 5, 10)).toEqual(data.subarray(10 * 1024 + 5, 10 * 1024 + 15));
    expect(store.log.map((c) => c.range)).toEqual([{ offset: 10 * 1024, length: 1024 }]);
    store.resetCounters();
    // A sequential reader from the start: every byte right, and chunks ahead of it come four to a GET.
    for (let off = 0; off < size; off += 700)
      expect(await readAt(dev, off, Math.min(700, size - off))).toEqual(data.subarray(off, off + 700));
    const ranges = store.log.map((c) => c.range!).sort((a, b) => a.offset - b.offset);
    expect(ranges.filter((r) => r.length === 4 * 1024).length).toBeGreaterThanOrEqual(3);
    expect(ranges.every((r) => r.length <= 4 * 1024 && r.offset % 1024 === 0 && r.offset + r.length <= size)).toBe(
      true,
    );
    // Nothing fetched twice: each chunk once (chunk 10 was cached already).
    const fetched = ranges.flatMap((r) =>
      Array.from({ length: Math.ceil(r.length / 1024) }, (_, k) => r.offset / 1024 + k),
    );
    expect(new Set(fetched).size).toBe(fetched.length);
    expect(fetched).not.toContain(10);
    expect(fetched.length).toBe(20);
  });

  it('a chunk of a readahead run used again after its siblings left gets its own memory', async () => {
    const store = new MemoryStore();
    const chunk = 8192;
    const size = 48 * chunk;
    const data = rand(size);
    store.set('big', data);
    // Room for 32 chunks (readahead 8 needs a cache of four times that).
    const dev = await ObjectDevice.open(store, new SingleObjectLayout({ key: 'big', size, chunkSize: chunk }), {
      readahead: 8,
      cacheSize: 32 * (chunk + 128),
    });
    await dev.readViews(chunk, 0);
    await dev.readViews(chunk, chunk); // sequential: chunks 2-5 and 6-9 come in two GETs
    await expect.poll(() => store.calls.get).toBe(4);
    const first = (await dev.readViews(chunk, 2 * chunk))[0]!;
    expect(first.buffer.byteLength).toBe(4 * chunk); // a slice of the run: no copy while the run is whole
    // Random reads (descending, so none is sequential) fill the cache until chunks 0, 1 and 3 are evicted.
    for (let i = 47; dev.stats().evictions < 3; i--) await dev.readViews(chunk, i * chunk);
    const gets = store.calls.get;
    const again = (await dev.readViews(chunk, 4 * chunk))[0]!;
    expect(store.calls.get).toBe(gets); // still cached
    expect(again.equals(data.subarray(4 * chunk, 5 * chunk))).toBe(true);
    expect(again.buffer).not.toBe(first.buffer); // its own copy now, not a view of the run's memory
  });

  it('refuses writes, zero and trim with EROFS', async () => {
    const { dev, store } = await single();
    await expect(dev.write(Buffer.alloc(10), 0)).rejects.toMatchObject({ errno: 'EROFS' });
    await expect(dev.zero(10, 0)).rejects.toMatchObject({ errno: 'EROFS' });
    await expect(dev.trim(10, 0)).rejects.toMatchObject({ errno: 'EROFS' });
    await dev.flush();
    expect(store.calls.put + store.calls.delete).toBe(0);
  });

  it('retries a short ranged GET, then EIO', async () => {
    const { dev, store, iso } = await single();
    store.shortGets(1);
    expect(await readAt(dev, 0, 10)).toEqual(iso.subarray(0, 10));
    store.shortGets(100);
    await expect(readAt(dev, 2048, 10)).rejects.toMatchObject({ errno: 'EIO' });
  });

  it('a vanished object is EIO, not zeros', async () => {
    const { dev, store } = await single();
    store.objects.delete('fedora.iso');
    await expect(readAt(dev, 0, 10)).rejects.toMatchObject({ errno: 'EIO' });
  });

  it('forObject sizes the layout with HEAD, and names a missing object', async () => {
    const { store } = await single(3000);
    const layout = await SingleObjectLayout.forObject(store, 'fedora.iso', 1024);
    expect([layout.size, layout.chunks]).toEqual([3000, 3]);
    await expect(SingleObjectLayout.forObject(store, 'nope.iso', 1024)).rejects.toThrow(
      /object 'nope.iso' does not exist/,
    );
  });

  it('reports everything as data', async () => {
    const { dev } = await single();
    expect(dev.extents(5000, 0)).toEqual([{ offset: 0, length: 5000, type: ExtentType.DATA }]);
  });
});
