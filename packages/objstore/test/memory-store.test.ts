import { describe, expect, it } from 'vitest';
import { StoreError } from '../src/index.ts';
import { MemoryStore } from '../src/testing/memory-store.ts';
import { md5Hex } from '../src/md5.ts';

describe('MemoryStore (the fake other tests rely on)', () => {
  it('stores, lists in key order, deletes', async () => {
    const s = new MemoryStore();
    for (const k of ['p/2', 'p/1', 'q/1']) await s.put(k, Buffer.from(k), { md5: md5Hex(Buffer.from(k)) });
    const keys: string[] = [];
    for await (const o of s.list('p/')) keys.push(o.key);
    expect(keys).toEqual(['p/1', 'p/2']);
    expect(await s.get('p/1', { offset: 1, length: 1 })).toEqual(Buffer.from('/'));
    await s.delete('p/1');
    await s.delete('p/1');
    expect(await s.get('p/1')).toBeNull();
  });

  it('checks the MD5 and If-None-Match like a real store', async () => {
    const s = new MemoryStore();
    await expect(s.put('a', Buffer.from('x'), { md5: '0'.repeat(32) })).rejects.toMatchObject({ kind: 'fatal' });
    await s.put('a', Buffer.from('x'), { md5: md5Hex(Buffer.from('x')), ifNoneMatch: true });
    await expect(
      s.put('a', Buffer.from('x'), { md5: md5Hex(Buffer.from('x')), ifNoneMatch: true }),
    ).rejects.toMatchObject({ kind: 'precondition' });
  });

  it('injects faults by op, key and count, and counts concurrency', async () => {
    const s = new MemoryStore();
    s.set('k', Buffer.from('v'));
    s.fail({ op: 'get', key: /^k$/, times: 2, kind: 'transient' });
    await expect(s.get('k')).rejects.toBeInstanceOf(StoreError);
    await expect(s.get('k')).rejects.toMatchObject({ status: 503 });
    expect(await s.get('k')).toEqual(Buffer.from('v'));
    s.delayMs = 3;
    await Promise.all([s.get('k'), s.get('k'), s.head('k')]);
    expect(s.maxInFlight.get).toBe(2);
    expect(s.maxInFlight.all).toBe(3);
    expect(s.calls.get).toBe(5);
  });
});
