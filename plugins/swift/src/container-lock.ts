import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { ConfigError, log } from '@nbdts/plugin-api';
import { acquireLock, breakLock, readLock, releaseLock, LockHeldError, type HeldLock } from '@nbdts/objstore';
import type { SwiftContainerStore } from './client/index.ts';
import { LOCK_KEY, META } from './format.ts';

/**
 * One server per container. The lock object (created with If-None-Match: *,
 * so exactly one of two racing servers gets it) is the real lock; the
 * swiftnbd-client metadata mirrors it so swiftnbd and swiftnbd-ctl see the
 * container as busy, and a swiftnbd server's lock (metadata only) stops us.
 */
export interface ContainerLock {
  held: HeldLock;
  /** The value written to X-Container-Meta-Swiftnbd-Client. */
  client: string;
}

export function lockOwner(tag = 'nbdts'): string {
  return `${tag}/${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
}

/** swiftnbd writes "who@unixtime"; a lock object's JSON says owner and since. */
function describeHolder(client: string | undefined, owner: string | undefined): string {
  return (
    [owner, client && client !== owner ? `(metadata: ${client})` : undefined].filter(Boolean).join(' ') || 'unknown'
  );
}

export async function lockContainer(
  store: SwiftContainerStore,
  opts: { force?: boolean; owner?: string } = {},
): Promise<ContainerLock> {
  const owner = opts.owner ?? lockOwner();
  const meta = await store.getContainerMeta();
  let mirrored = meta[META.client] || undefined;
  // Our own mark from an earlier try whose answer was lost (a retried start-up): not someone else's lock.
  if (mirrored?.startsWith(`${owner}@`)) mirrored = undefined;
  if (mirrored && !opts.force) {
    const holder = await readLock(store, LOCK_KEY).catch(() => null);
    throw new ConfigError(
      `container ${store.container} is in use by ${describeHolder(mirrored, holder?.owner)}. ` +
        'If no server is using it any more, add force=true (or run nbdts-swift unlock ' +
        store.container +
        ').',
    );
  }
  let held: HeldLock;
  try {
    held = await acquireLock(store, LOCK_KEY, owner);
  } catch (err) {
    if (!(err instanceof LockHeldError) || !opts.force) {
      if (err instanceof LockHeldError) {
        throw new ConfigError(
          `container ${store.container} is in use by ${describeHolder(mirrored, err.holder?.owner)}` +
            `${err.holder ? ` since ${err.holder.since}` : ''}. If no server is using it any more, add force=true ` +
            `(or run nbdts-swift unlock ${store.container}).`,
          { cause: err },
        );
      }
      throw err;
    }
    const broken = await breakLock(store, LOCK_KEY);
    log.warn(
      `swift: ${store.container}: force=true: breaking the lock held by ${describeHolder(mirrored, broken?.owner)}`,
    );
    held = await acquireLock(store, LOCK_KEY, owner);
  }
  if (mirrored && opts.force) {
    log.warn(`swift: ${store.container}: force=true: taking over from ${mirrored} (swiftnbd lock metadata)`);
  }
  const client = `${owner}@${Math.floor(Date.now() / 1000)}`;
  await store.setContainerMeta({ [META.client]: client });
  return { held, client };
}

/**
 * Release our lock: move the mirror to swiftnbd-last, then delete the lock
 * object if it is still ours. Returns false when someone broke it meanwhile.
 */
export async function unlockContainer(store: SwiftContainerStore, lock: ContainerLock): Promise<boolean> {
  const meta = await store.getContainerMeta();
  const stillOurs = meta[META.client] === lock.client;
  if (stillOurs) await store.setContainerMeta({ [META.client]: null, [META.last]: lock.client });
  const released = await releaseLock(store, lock.held);
  return stillOurs && released;
}

/** Operator's unlock: remove the lock object and the mirror whoever holds them. Returns who held it. */
export async function forceUnlock(store: SwiftContainerStore): Promise<string | undefined> {
  const meta = await store.getContainerMeta();
  const holder = await breakLock(store, LOCK_KEY);
  const client = meta[META.client] || undefined;
  const who = client ?? holder?.owner;
  if (client) await store.setContainerMeta({ [META.client]: null, [META.last]: client });
  return who;
}
