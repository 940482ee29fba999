import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { OBJ, key, nonZero, rand, readAt, setup } from './helpers.ts';

describe('concurrent requests', () => {
  it('two writes to different halves of one object both survive', async () => {
    const { dev, store } = await setup();
    store.set(key(0), nonZero(OBJ, 9));
    const { dev: d2 } = await setup({ store });
    store.delayMs = 5; // both writes wait on the same GET
    const a = nonZero(OBJ / 2, 1);
    const b = nonZero(OBJ / 2, 2);
    await Promise.all([d2.write(a, 0), d2.write(b, OBJ / 2)]);
    await d2.flush();
    expect(store.data(key(0))).toEqual(Buffer.concat([a, b]));
    expect(store.calls.get).toBe(1);
    void dev;
  });

  it('concurrent FUA writes to one object both reach the store', async () => {
    const { dev, store } = await setup();
    store.delayMs = (op) => (op === 'put' ? 5 : 0);
    const a = nonZero(100, 1);
    const b = nonZero(100, 2);
    await Promise.all([dev.write(a, 0, { fua: true }), dev.write(b, 500, { fua: true })]);
    const got = store.data(key(0))!;
    expect(got.subarray(0, 100)).toEqual(a);
    expect(got.subarray(500, 600)).toEqual(b);
    expect(store.maxInFlight.put).toBe(1); // stores of one object never overlap
  });

  it('a whole-object write during a GET of that object is not overwritten by the old data', async () => {
    const { store } = await setup();
    for (let i = 0; i < 8; i++) store.set(key(i), nonZero(OBJ, 1));
    const { dev } = await setup({ store, readahead: 4 });
    store.delayMs = (op, k) => (op === 'get' && k === key(3) ? 30 : 0);
    await readAt(dev, 0, OBJ);
    await readAt(dev, OBJ, OBJ); // sequential: objects 2..5 are being fetched ahead
    expect(dev.stats().readaheads).toBe(4);
    const reading = readAt(dev, 3 * OBJ, OBJ); // waits for the same GET
    await dev.write(nonZero(OBJ, 2), 3 * OBJ);
    await reading; // old or new: both are allowed for a concurrent read
    await new Promise((r) => setTimeout(r, 40)); // every GET has finished
    expect(await readAt(dev, 3 * OBJ, OBJ)).toEqual(nonZero(OBJ, 2));
    await dev.flush();
    expect(store.data(key(3))).toEqual(nonZero(OBJ, 2));
  });

  it('never has more than maxInFlight store calls at once, and uses them', async () => {
    const { dev, store } = await setup({ maxInFlight: 3, size: 32 * OBJ });
    store.delayMs = 3;
    await dev.write(rand(32 * OBJ), 0);
    await dev.flush();
    expect(store.maxInFlight.all).toBe(3);
    expect(dev.stats().peakInFlight).toBe(3);
  });

  it('writers wait while dirty data is over maxDirty', async () => {
    const { dev, store } = await setup({ maxDirty: 2 * OBJ, cacheSize: 8 * OBJ });
    store.delayMs = (op) => (op === 'put' ? 80 : 0);
    let maxDirty = 0;
    const sample = setInterval(() => {
      maxDirty = Math.max(maxDirty, dev.stats().dirtyBytes);
    }, 1);
    const done: number[] = [];
    const writes = Array.from({ length: 6 }, (_, i) =>
      dev.write(nonZero(OBJ, i + 1), i * OBJ).then(() => done.push(i)),
    );
    await new Promise((r) => setTimeout(r, 10));
    // No PUT has finished yet, so only maxDirty worth of writes could complete...
    expect(done.length).toBe(2);
    // ...and write-back has started without waiting for the timer.
    expect(store.inFlight.put).toBeGreaterThan(0);
    await Promise.all(writes);
    await dev.flush();
    clearInterval(sample);
    expect(maxDirty).toBeLessThanOrEqual(2 * OBJ);
    for (let i = 0; i < 6; i++) expect(store.data(key(i))).toEqual(nonZero(OBJ, i + 1));
  });

  it('random concurrent operations match a flat buffer model (property)', async () => {
    const SIZE = 8 * OBJ + 300;
    type Kind = 'write' | 'zero' | 'trim' | 'read' | 'skip';
    const batch = fc.record({
      cuts: fc.uniqueArray(fc.integer({ min: 1, max: SIZE - 1 }), { minLength: 1, maxLength: 14 }),
      kinds: fc.array(fc.constantFrom<Kind>('write', 'write', 'zero', 'trim', 'read', 'skip'), {
        minLength: 15,
        maxLength: 15,
      }),
      fua: fc.array(fc.boolean(), { minLength: 15, maxLength: 15 }),
      seed: fc.integer({ min: 1, max: 255 }),
      flush: fc.boolean(),
    });
    const options = fc.record({
      cacheSize: fc.constantFrom(2 * OBJ, 4 * OBJ, 64 * OBJ),
      maxDirty: fc.constantFrom(OBJ, 2 * OBJ, 32 * OBJ),
      writebackDelayMs: fc.constantFrom(0, 2, 60_000),
      maxInFlight: fc.constantFrom(1, 4),
    });
    await fc.assert(
      fc.asyncProperty(options, fc.array(batch, { minLength: 1, maxLength: 5 }), async (opts, batches) => {
        const { dev, store } = await setup({ ...opts, size: SIZE });
        store.delayMs = () => (Math.random() < 0.9 ? 0 : 1);
        const model = Buffer.alloc(SIZE);
        for (const b of batches) {
          const cuts = [0, ...[...b.cuts].sort((x, y) => x - y), SIZE];
          const ops: Array<Promise<void>> = [];
          const after = Buffer.from(model);
          for (let s = 0; s + 1 < cuts.length; s++) {
            const [from, to] = [cuts[s]!, cuts[s + 1]!];
            const kind = b.kinds[s]!;
            const fua = { fua: b.fua[s]! };
            if (kind === 'write') {
              const data = Buffer.alloc(to - from, (b.seed + s) % 256 || 1);
              data.copy(after, from);
              ops.push(dev.write(data, from, fua));
            } else if (kind === 'zero' || kind === 'trim') {
              after.fill(0, from, to);
              ops.push(kind === 'zero' ? dev.zero(to - from, from, fua) : dev.trim(to - from, from, fua));
            } else if (kind === 'read') {
              const expected = model.subarray(from, to);
              ops.push(
                readAt(dev, from, to - from).then((got) => {
                  expect(got.equals(expected), `read ${from}..${to}`).toBe(true);
                }),
              );
            }
          }
          if (b.flush) ops.push(dev.flush());
          await Promise.all(ops);
          after.copy(model);
        }
        await dev.flush();
        expect(dev.stats().dirtyChunks).toBe(0);
        for (let i = 0; i * OBJ < SIZE; i++) {
          const want = model.subarray(i * OBJ, Math.min(SIZE, (i + 1) * OBJ));
          const stored = store.data(key(i));
          if (want.every((x) => x === 0)) expect(stored, `object ${i}`).toBeUndefined();
          else expect(stored?.equals(want), `object ${i}`).toBe(true);
        }
        dev.dropCache();
        expect((await readAt(dev, 0, SIZE)).equals(model), 're-read after dropping the cache').toBe(true);
      }),
      { numRuns: 80, timeout: 5000 },
    );
  });
});
