import { ConfigError, formatSize, log } from '@nbdts/plugin-api';
import {
  acquireLock,
  breakLock,
  LockHeldError,
  ObjectDevice,
  releaseLock,
  SingleObjectLayout,
  StoreError,
  warnBusy,
  withStartupRetry,
  type HeldLock,
  type Layout,
} from '@nbdts/objstore';
import { checkGeometry, connectOptions, type S3Config } from './config.ts';
import { connect, startupError } from './connect.ts';
import { lockKey, readDescriptor, splitLayout } from './disk.ts';
import type { S3Store } from './s3-store.ts';

/** What one server process serves: one disk, shared by every connection. */
export interface S3Disk {
  store: S3Store;
  device: ObjectDevice;
  mode: 'single' | 'split';
  bucket: string;
  key: string;
  lock: HeldLock | undefined;
}

/** Take the split disk's lock; with force, break a stale one (saying whose it was). */
async function takeLock(store: S3Store, key: string, force: boolean): Promise<HeldLock> {
  const k = lockKey(key);
  try {
    return await acquireLock(store, k);
  } catch (err) {
    if (err instanceof StoreError && err.status === 501) throw noConditionalPut(store, err);
    if (!(err instanceof LockHeldError)) throw err;
    if (!force)
      throw new ConfigError(
        `${err.message.replace(/ break the lock and try again\.$/, '')} add force=true to break it`,
      );
    const holder = await breakLock(store, k);
    log.warn(
      `s3: broke the lock on ${store.bucket}/${key} held by ${holder?.owner ?? 'unknown'} since ${holder?.since ?? 'unknown'} (force=true)`,
    );
    return acquireLock(store, k);
  }
}

/** Some S3 services (Swift's s3api) cannot create-if-absent, so they cannot hold our lock. */
export function noConditionalPut(store: S3Store, err: StoreError): ConfigError {
  return new ConfigError(
    `${store.description} does not support conditional PUTs (If-None-Match: *), so the disk cannot be locked: ` +
      'add lock=false if you are sure no other server writes it',
    { cause: err },
  );
}

/** Which layout the parameters (or the disk's descriptor) ask for. */
async function chooseLayout(store: S3Store, c: S3Config): Promise<{ layout: Layout; mode: 'single' | 'split' }> {
  if (c.size !== undefined && c.objectSize !== undefined) {
    const d = await readDescriptor(store, c.key);
    if (d && (d.size !== c.size || d.objectSize !== c.objectSize)) {
      throw new ConfigError(
        `${c.bucket}/${c.key} was created with size=${d.size} object-size=${d.objectSize}, ` +
          `not size=${c.size} object-size=${c.objectSize}: leave both out to use the recorded ones`,
      );
    }
    return { layout: splitLayout(c.key, c.size, c.objectSize), mode: 'split' };
  }
  const head = await store.head(c.key);
  if (head)
    return { layout: new SingleObjectLayout({ key: c.key, size: head.size, chunkSize: c.chunkSize }), mode: 'single' };
  const d = await readDescriptor(store, c.key);
  if (d) {
    checkGeometry(d.size, d.objectSize);
    return { layout: splitLayout(c.key, d.size, d.objectSize), mode: 'split' };
  }
  throw new ConfigError(
    `object '${c.key}' not found in bucket ${c.bucket}: check key= ` +
      '(for a split disk KEY/%016x, give size= and object-size=, or make one with nbdts-s3 create)',
  );
}

/**
 * Connect, check credentials and bucket, find the object or disk, lock a
 * split disk and open the block device. Start-up problems are ConfigErrors
 * of one line.
 */
export async function openDisk(c: S3Config, readonly = false): Promise<S3Disk> {
  const opts = connectOptions(c);
  const store = await connect(opts, c.bucket);
  let lock: HeldLock | undefined;
  try {
    // Anonymous users may read a public object in a bucket they cannot HEAD.
    const busy = warnBusy(`s3: ${c.bucket}`);
    if (!c.anonymous) await withStartupRetry(() => store.checkBucket(c.key), busy);
    const { layout, mode } = await withStartupRetry(() => chooseLayout(store, c), busy);
    // A read-only server (-r) writes nothing, so it needs no lock and may run beside a writer.
    if (mode === 'split' && c.lock && !readonly) lock = await takeLock(store, c.key, c.force);
    const device = await ObjectDevice.open(store, layout, {
      cacheSize: c.cacheSize,
      readahead: c.readahead,
      maxInFlight: c.connections,
      writethrough: c.cache === 'writethrough',
      requestTimeoutMs: c.timeout * 1000,
      verifyEtag: c.verifyEtag,
      // S3 (and RGW) list what was written: split objects not listed read as zeros without a
      // GET. Single-object mode lists nothing, so trusting the (empty) listing would read zeros.
      trustListing: mode === 'split',
      readOnly: readonly || mode === 'single',
    });
    log.info(
      `s3: serving ${mode === 'single' ? 'object' : 'split disk'} ${c.bucket}/${c.key} ` +
        `(${formatSize(layout.size)}${mode === 'split' ? `, objects of ${formatSize(layout.chunkSize)}` : ', read-only'}) from ${store.description}`,
    );
    return { store, device, mode, bucket: c.bucket, key: c.key, lock };
  } catch (err) {
    if (lock) await releaseLock(store, lock).catch(() => {});
    await store.close();
    throw startupError(err, store, opts);
  }
}

/** Store what is dirty, release the lock, close sockets. */
export async function closeDisk(disk: S3Disk): Promise<void> {
  try {
    await disk.device.close();
  } finally {
    try {
      if (disk.lock && !(await releaseLock(disk.store, disk.lock))) {
        log.warn(`s3: the lock on ${disk.bucket}/${disk.key} was no longer ours at exit (broken with force=true?)`);
      }
    } catch (err) {
      log.warn(`s3: could not release the lock on ${disk.bucket}/${disk.key}: ${(err as Error).message}`);
    }
    await disk.store.close();
  }
}
