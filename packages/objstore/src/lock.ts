import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { ConfigError } from '@nbdts/plugin-api';
import { StoreError, type ObjectStore } from './store.ts';
import { md5Hex } from './md5.ts';
import { withStartupRetry } from './retry.ts';

/** What a lock object holds (JSON). */
export interface LockInfo {
  /** "host/pid/uuid": unique per server process. */
  owner: string;
  /** ISO 8601 time the lock was taken. */
  since: string;
}

/** A lock held by this process. */
export interface HeldLock {
  key: string;
  info: LockInfo;
}

/** The lock is held by someone else: says who and since when. */
export class LockHeldError extends ConfigError {
  readonly holder: LockInfo | null;
  readonly key: string;
  constructor(store: ObjectStore, key: string, holder: LockInfo | null) {
    super(
      holder
        ? `${store.description}: in use: lock '${key}' is held by ${holder.owner} since ${holder.since}. ` +
            'If that server is no longer running, break the lock and try again.'
        : `${store.description}: in use: lock '${key}' exists (holder unreadable). ` +
            'If no server is using it, break the lock and try again.',
    );
    this.name = 'LockHeldError';
    this.holder = holder;
    this.key = key;
  }
}

/** An owner string for this process: host/pid/uuid. */
export function defaultLockOwner(): string {
  return `${hostname()}/${process.pid}/${randomUUID()}`;
}

/**
 * Take the lock by creating `lockKey` only if it does not exist (If-None-Match: *),
 * which the store does atomically. Throws LockHeldError when someone holds it.
 * A busy answer (503) is retried for a few seconds; that is safe because a
 * retry that meets a lock with our owner string knows the first try landed.
 */
export async function acquireLock(
  store: ObjectStore,
  lockKey: string,
  owner: string = defaultLockOwner(),
): Promise<HeldLock> {
  const info: LockInfo = { owner, since: new Date().toISOString() };
  const body = Buffer.from(JSON.stringify(info));
  try {
    await withStartupRetry(() =>
      store.put(lockKey, body, { md5: md5Hex(body), ifNoneMatch: true, contentType: 'application/json' }),
    );
  } catch (err) {
    if (err instanceof StoreError && err.kind === 'precondition') {
      const holder = await readLock(store, lockKey).catch(() => null);
      // A retried PUT whose first try was stored but answered 503 finds our own lock: it is ours.
      if (holder?.owner === owner) return { key: lockKey, info: { owner, since: holder.since } };
      throw new LockHeldError(store, lockKey, holder);
    }
    throw err;
  }
  return { key: lockKey, info };
}

/** Who holds the lock, or null when nobody does. A lock whose content is not ours reads as owner "unknown". */
export async function readLock(store: ObjectStore, lockKey: string): Promise<LockInfo | null> {
  const body = await store.get(lockKey);
  if (body === null) return null;
  try {
    const v = JSON.parse(body.toString('utf8')) as Partial<LockInfo>;
    return { owner: String(v.owner ?? 'unknown'), since: String(v.since ?? 'unknown') };
  } catch {
    return { owner: 'unknown', since: 'unknown' };
  }
}

/**
 * Release a lock we hold. Deletes it only if it is still ours (someone may
 * have broken it and taken it since); returns false in that case.
 */
export async function releaseLock(store: ObjectStore, lock: HeldLock): Promise<boolean> {
  const now = await readLock(store, lock.key);
  if (now === null) return false;
  if (now.owner !== lock.info.owner) return false;
  await store.delete(lock.key);
  return true;
}

/** Remove a lock whoever holds it (an operator's decision); returns the holder it removed. */
export async function breakLock(store: ObjectStore, lockKey: string): Promise<LockInfo | null> {
  const holder = await readLock(store, lockKey);
  await store.delete(lockKey);
  return holder;
}
