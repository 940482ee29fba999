import { describe, expect, it } from 'vitest';
import { acquireLock, breakLock, LockHeldError, readLock, releaseLock, StoreError } from '../src/index.ts';
import { MemoryStore } from '../src/testing/memory-store.ts';

describe('locks', () => {
  it('acquires by creating the lock object with owner and time', async () => {
    const store = new MemoryStore('swift container c');
    const lock = await acquireLock(store, 'disk.lock', 'hostA/1/uuid-1');
    expect(lock.info.owner).toBe('hostA/1/uuid-1');
    expect(await readLock(store, 'disk.lock')).toEqual(lock.info);
    expect(Date.parse(lock.info.since)).not.toBeNaN();
  });

  it('uses host/pid/uuid as the default owner', async () => {
    const store = new MemoryStore();
    const a = await acquireLock(store, 'a.lock');
    const b = await acquireLock(store, 'b.lock');
    expect(a.info.owner).toMatch(new RegExp(`^[^/]+/${process.pid}/[0-9a-f-]{36}$`));
    expect(a.info.owner).not.toBe(b.info.owner);
  });

  it('refuses a held lock, saying who holds it and since when', async () => {
    const store = new MemoryStore('swift container c');
    const first = await acquireLock(store, 'disk.lock', 'hostA/1/x');
    const err = await acquireLock(store, 'disk.lock', 'hostB/2/y').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockHeldError);
    expect((err as LockHeldError).holder).toEqual(first.info);
    expect((err as Error).message).toContain('hostA/1/x');
    expect((err as Error).message).toContain(first.info.since);
    expect((err as Error).message).toContain('swift container c');
    expect(await readLock(store, 'disk.lock')).toEqual(first.info); // untouched
  });

  it('a busy answer is retried, and a retry that finds its own lock (first try landed) holds it', async () => {
    const store = new MemoryStore();
    store.fail({ op: 'put', key: 'l', afterOp: true });
    const lock = await acquireLock(store, 'l', 'me/1/x');
    expect(lock.info.owner).toBe('me/1/x');
    expect(store.calls.put).toBe(2);
    expect(await releaseLock(store, lock)).toBe(true);
  });

  it('a refused connection (no answer at all) is not retried at start-up', async () => {
    const store = new MemoryStore();
    let puts = 0;
    store.put = async () => {
      puts++;
      throw new StoreError('transient', 'connect ECONNREFUSED'); // no HTTP status: nothing answered
    };
    await expect(acquireLock(store, 'l', 'me/1/x')).rejects.toThrow(/ECONNREFUSED/);
    expect(puts).toBe(1);
  });

  it('two racing acquirers: exactly one wins', async () => {
    const store = new MemoryStore();
    store.delayMs = 2;
    const results = await Promise.allSettled(['a', 'b', 'c'].map((o) => acquireLock(store, 'l', o)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('releases only its own lock', async () => {
    const store = new MemoryStore();
    const mine = await acquireLock(store, 'disk.lock', 'me');
    expect(await releaseLock(store, mine)).toBe(true);
    expect(await readLock(store, 'disk.lock')).toBeNull();
    const again = await acquireLock(store, 'disk.lock', 'me');
    expect(await breakLock(store, 'disk.lock')).toEqual(again.info);
    const theirs = await acquireLock(store, 'disk.lock', 'them');
    expect(await releaseLock(store, again)).toBe(false);
    expect(await readLock(store, 'disk.lock')).toEqual(theirs.info);
  });

  it('breakLock removes a lock whoever holds it', async () => {
    const store = new MemoryStore();
    await acquireLock(store, 'disk.lock', 'gone/1/z');
    expect((await breakLock(store, 'disk.lock'))?.owner).toBe('gone/1/z');
    expect(await readLock(store, 'disk.lock')).toBeNull();
    await acquireLock(store, 'disk.lock', 'new');
  });

  it('reads a lock it cannot parse as owner unknown', async () => {
    const store = new MemoryStore();
    store.set('disk.lock', Buffer.from('not json'));
    expect(await readLock(store, 'disk.lock')).toEqual({ owner: 'unknown', since: 'unknown' });
    await expect(acquireLock(store, 'disk.lock')).rejects.toThrow(/held by unknown/);
  });
});
