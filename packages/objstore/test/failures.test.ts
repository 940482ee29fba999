import { describe, expect, it } from 'vitest';
import { NbdError } from '@nbdts/plugin-api';
import { OBJ, key, nonZero, readAt, setup } from './helpers.ts';

describe('retries', () => {
  it('retries transient PUT failures, then succeeds', async () => {
    const { dev, store } = await setup();
    store.fail({ op: 'put', times: 2 });
    await dev.write(nonZero(OBJ), 0);
    await dev.flush();
    expect(store.data(key(0))).toEqual(nonZero(OBJ));
    expect(store.calls.put).toBe(3);
    expect(dev.stats().retries).toBe(2);
  });

  it('retries transient GET failures, then succeeds', async () => {
    const { store } = await setup();
    store.set(key(1), nonZero(OBJ, 3));
    const { dev } = await setup({ store });
    store.fail({ op: 'get', times: 3, status: 429 });
    expect(await readAt(dev, OBJ, 10)).toEqual(nonZero(10, 3));
  });

  it('gives up after the retry limit with EIO', async () => {
    const { dev, store } = await setup();
    store.fail({ op: 'put', times: 100 });
    await dev.write(nonZero(OBJ), 0);
    await expect(dev.flush()).rejects.toMatchObject({ errno: 'EIO' });
    expect(store.calls.put).toBe(4); // 1 + FAST_RETRY.retries
  });

  it('does not retry fatal, auth or precondition errors', async () => {
    for (const kind of ['fatal', 'auth', 'precondition'] as const) {
      const { dev, store } = await setup();
      store.fail({ op: 'get', kind });
      await expect(readAt(dev, 0, 10)).rejects.toMatchObject({ errno: 'EIO' });
      expect(store.calls.get).toBe(1);
    }
  });

  it('retries an attempt that times out', async () => {
    const { store } = await setup();
    store.set(key(0), nonZero(OBJ));
    const { dev } = await setup({ store, requestTimeoutMs: 20 });
    let first = true;
    store.delayMs = () => (first ? ((first = false), 200) : 0);
    expect(await readAt(dev, 0, 5)).toEqual(nonZero(5));
    expect(dev.stats().retries).toBe(1);
  });
});

describe('verification', () => {
  it('retries a short GET, and fails with EIO when it stays short', async () => {
    const { store } = await setup();
    store.set(key(0), nonZero(OBJ));
    const { dev } = await setup({ store });
    store.shortGets(1);
    expect(await readAt(dev, 0, OBJ)).toEqual(nonZero(OBJ));
    expect(dev.stats().retries).toBe(1);
    dev.dropCache();
    store.shortGets(100);
    await expect(readAt(dev, 0, OBJ)).rejects.toThrow(/short or long body/);
    store.clearFaults();
    expect(await readAt(dev, 0, OBJ)).toEqual(nonZero(OBJ)); // nothing bad was cached
  });

  it('an object of the wrong size is EIO, not data', async () => {
    const { store } = await setup();
    store.set(key(0), nonZero(OBJ + 1));
    const { dev } = await setup({ store });
    await expect(readAt(dev, 0, 10)).rejects.toMatchObject({ errno: 'EIO' });
  });

  it('sends the MD5 and retries an ETag mismatch, then EIO', async () => {
    const { dev, store } = await setup();
    store.corruptEtags(1);
    await dev.write(nonZero(OBJ), 0);
    await dev.flush();
    expect(store.calls.put).toBe(2);
    store.corruptEtags(100);
    await dev.write(nonZero(OBJ, 2), 0);
    const err = await dev.flush().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as Error).message).toMatch(/ETag .* does not match/);
    expect(dev.stats().dirtyChunks).toBe(1);
  });

  it('accepts any ETag with verifyEtag off', async () => {
    const { dev, store } = await setup({ verifyEtag: false });
    store.corruptEtags(1);
    await dev.write(nonZero(OBJ), 0, { fua: true });
    expect(store.calls.put).toBe(1);
  });
});

describe('permanent failures', () => {
  it('fail only the request that needs the object', async () => {
    const { store } = await setup();
    store.set(key(0), nonZero(OBJ, 1));
    store.set(key(1), nonZero(OBJ, 2));
    const { dev } = await setup({ store });
    store.fail({ op: 'get', kind: 'fatal', key: key(1), times: Infinity });
    await expect(readAt(dev, OBJ, 10)).rejects.toMatchObject({ errno: 'EIO' });
    expect(await readAt(dev, 0, 10)).toEqual(nonZero(10, 1));
    await expect(dev.write(nonZero(10), OBJ + 5)).rejects.toMatchObject({ errno: 'EIO' });
  });

  it('keep the data dirty: flush fails until the fault clears, then stores it', async () => {
    const { dev, store } = await setup();
    store.fail({ op: 'put', kind: 'fatal', key: key(1), times: Infinity });
    await dev.write(nonZero(2 * OBJ, 5), 0);
    await expect(dev.flush()).rejects.toMatchObject({ errno: 'EIO' });
    expect(store.objects.has(key(0))).toBe(true);
    expect(store.objects.has(key(1))).toBe(false);
    expect(dev.stats().dirtyChunks).toBe(1);
    expect(await readAt(dev, OBJ, 10)).toEqual(nonZero(10, 5)); // still readable from the cache
    await expect(dev.flush()).rejects.toMatchObject({ errno: 'EIO' });
    store.clearFaults();
    await dev.flush();
    expect(store.data(key(1))).toEqual(nonZero(OBJ, 5));
    expect(dev.stats().dirtyChunks).toBe(0);
  });

  it('a FUA write fails with EIO when its object cannot be stored', async () => {
    const { dev, store } = await setup();
    store.fail({ op: 'put', kind: 'fatal' });
    await expect(dev.write(nonZero(10), 0, { fua: true })).rejects.toMatchObject({ errno: 'EIO' });
    expect(dev.stats().dirtyChunks).toBe(1);
  });

  it('background write-back errors are kept: the data stays dirty and the next flush stores or fails', async () => {
    const { dev, store } = await setup({ writebackDelayMs: 1 });
    store.fail({ op: 'put', kind: 'fatal', times: Infinity });
    await dev.write(nonZero(OBJ), 0);
    await expect.poll(() => dev.stats().writebackErrors, { timeout: 2000, interval: 2 }).toBeGreaterThan(0);
    expect(dev.stats().dirtyChunks).toBe(1);
    await expect(dev.flush()).rejects.toMatchObject({ errno: 'EIO' });
    store.clearFaults();
    await dev.flush();
    expect(store.data(key(0))).toEqual(nonZero(OBJ));
  });

  it('writers over the dirty limit get EIO while write-back is failing', async () => {
    const { dev, store } = await setup({ maxDirty: OBJ });
    store.fail({ op: 'put', kind: 'fatal', times: Infinity });
    await dev.write(nonZero(OBJ), 0);
    await expect(dev.write(nonZero(OBJ), OBJ)).rejects.toThrow(/dirty limit/);
    store.clearFaults();
    await dev.write(nonZero(OBJ), OBJ);
    await dev.flush();
    expect(store.objects.size).toBe(2);
  });

  it('a listing failure at open is a clear ConfigError', async () => {
    const { store } = await setup();
    store.fail({ op: 'list', kind: 'auth' });
    await expect(setup({ store })).rejects.toThrow(/cannot list objects under 'disk.part\/'/);
  });
});
