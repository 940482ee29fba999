import { describe, expect, it } from 'vitest';
import { OBJ, key, rand, readAt, setup } from './helpers.ts';

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('streaming write-back', () => {
  it('stores an object as soon as a sequential writer has filled it, in any order, without waiting for flush', async () => {
    const { dev, store } = await setup({ streamWrites: true });
    const data = rand(2 * OBJ);
    const quarter = OBJ / 4;
    // Object 0 filled out of order (as two connections of a copy would), object 1 only half.
    for (const q of [2, 0, 3, 1]) await dev.write(data.subarray(q * quarter, (q + 1) * quarter), q * quarter);
    await dev.write(data.subarray(OBJ, OBJ + OBJ / 2), OBJ);
    await settle();
    expect(store.data(key(0))).toEqual(data.subarray(0, OBJ));
    expect(store.objects.has(key(1))).toBe(false); // half an object waits in the cache
    expect(dev.stats().dirtyChunks).toBe(1);
    await dev.write(data.subarray(OBJ + OBJ / 2, 2 * OBJ), OBJ + OBJ / 2);
    await settle();
    expect(store.data(key(1))).toEqual(data.subarray(OBJ, 2 * OBJ));
    expect(dev.stats().dirtyChunks).toBe(0);
    expect(store.calls.put).toBe(2); // each object once
  });

  it('scattered small writes stay in the cache until there is a whole object of them', async () => {
    const { dev, store } = await setup({ streamWrites: true });
    for (let i = 0; i < 8; i++) await dev.write(rand(16), 3 * OBJ + i * (OBJ / 8)); // 8 small writes into one object
    await settle();
    expect(store.calls.put).toBe(0);
    await dev.flush();
    expect(store.calls.put).toBe(1);
  });

  it('an object rewritten while it is being stored is stored again, newest data last', async () => {
    const { dev, store } = await setup({ streamWrites: true });
    store.delayMs = 10;
    const first = rand(OBJ);
    const second = rand(OBJ);
    await dev.write(first, 0); // starts a store of `first`
    await dev.write(second, 0); // during it: a second store follows
    await dev.flush();
    expect(store.data(key(0))).toEqual(second);
  });

  it('a failed streaming store leaves the object dirty, and flush stores it', async () => {
    const { dev, store } = await setup({ streamWrites: true, retry: { retries: 0 } });
    store.fail({ op: 'put', times: 1 });
    const data = rand(OBJ);
    await dev.write(data, 2 * OBJ);
    await settle();
    expect(store.objects.has(key(2))).toBe(false);
    expect(dev.stats().dirtyChunks).toBe(1);
    await dev.flush();
    expect(store.data(key(2))).toEqual(data);
  });
});

describe('chunks a sequential writer filled (once stored) or a sequential reader read through', () => {
  const opts = { streamWrites: true, size: 64 * OBJ, cacheSize: 16 * OBJ, readahead: 0 };

  it('do not push what readers use out of the cache, and hold a bounded share of it', async () => {
    const { store } = await setup(opts);
    for (let i = 0; i < 4; i++) store.set(key(i), rand(OBJ));
    const { dev } = await setup({ ...opts, store });
    for (let i = 3; i >= 0; i--) await dev.read(Buffer.alloc(OBJ), i * OBJ); // cached by (non-sequential) reads
    for (let i = 8; i < 40; i++) await dev.write(rand(OBJ), i * OBJ); // a copy twice the cache's size
    await dev.flush();
    await settle();
    expect(dev.stats().cachedBytes).toBeLessThan(8 * OBJ); // 4 read + 2 streamed, not a full cache
    store.resetCounters();
    for (let i = 0; i < 4; i++) await dev.read(Buffer.alloc(OBJ), i * OBJ);
    expect(store.calls.get).toBe(0);
  });

  it('a sequential read of twice the cache leaves what readers use in it', async () => {
    const { store } = await setup(opts);
    for (let i = 0; i < 40; i++) store.set(key(i), rand(OBJ));
    const { dev } = await setup({ ...opts, store, readahead: 2 });
    for (let i = 3; i >= 0; i--) await dev.read(Buffer.alloc(OBJ), i * OBJ);
    for (let off = 8 * OBJ; off < 40 * OBJ; off += OBJ / 2) await dev.read(Buffer.alloc(OBJ / 2), off);
    await settle();
    expect(dev.stats().cachedBytes).toBeLessThan(10 * OBJ); // 4 used + 2 read through + readahead
    store.resetCounters();
    for (let i = 0; i < 4; i++) await dev.read(Buffer.alloc(OBJ), i * OBJ);
    const hot = new Set([0, 1, 2, 3].map(key));
    expect(store.log.filter((c) => c.op === 'get' && hot.has(c.key))).toEqual([]); // (readahead may fetch 4 and 5)
  });

  it('stay like any other chunk once they are read again', async () => {
    const { dev, store } = await setup(opts);
    const data = rand(OBJ);
    await dev.write(data, 8 * OBJ);
    await settle();
    expect((await readAt(dev, 8 * OBJ, OBJ)).equals(data)).toBe(true);
    for (let i = 9; i < 30; i++) await dev.write(rand(OBJ), i * OBJ);
    await dev.flush();
    await settle();
    store.resetCounters();
    expect((await readAt(dev, 8 * OBJ, OBJ)).equals(data)).toBe(true);
    expect(store.calls.get).toBe(0);
  });
});
