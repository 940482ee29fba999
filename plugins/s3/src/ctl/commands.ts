import { open, stat } from 'node:fs/promises';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { ConfigError, formatSize } from '@nbdts/plugin-api';
import {
  acquireLock,
  breakLock,
  DEFAULT_RETRY,
  isAllZero,
  LockHeldError,
  md5Offload,
  readLock,
  releaseLock,
  StoreError,
  withRetry,
  type HeldLock,
  parallel,
  Progress,
  type Output,
} from '@nbdts/objstore';
import { checkGeometry } from '../config.ts';
import { descriptorKey, lockKey, readDescriptor, splitKeys, writeDescriptor, type DiskDescriptor } from '../disk.ts';
import type { S3Store } from '../s3-store.ts';
import { noConditionalPut } from '../serve.ts';

/** Where messages go: the tool prints to stdout/stderr, tests capture them. */
export type { Output } from '@nbdts/objstore';

export interface CommonOptions {
  /** S3 requests at once. */
  jobs: number;
  /** Break a lock, overwrite an existing disk. */
  force: boolean;
  /** Draw a progress bar (on a terminal). */
  progress?: boolean;
}

/** Tool calls retry transient failures like the server does. */
const retry = <T>(fn: () => Promise<T>): Promise<T> => withRetry(DEFAULT_RETRY, fn);

/** Part size for a multipart upload: 16 MiB, more when needed to stay under S3's 10,000 parts. */
export function partSize(total: number): number {
  const min = 16 * 2 ** 20;
  return Math.max(min, Math.ceil(total / 10_000 / 2 ** 20) * 2 ** 20);
}

/** Objects of a split disk that exist, by index. */
async function existingObjects(store: S3Store, key: string): Promise<Set<number>> {
  const keys = splitKeys(key);
  const found = new Set<number>();
  await retry(async () => {
    found.clear();
    for await (const o of store.list(keys.prefix)) {
      const i = keys.indexOf(o.key);
      if (i !== null) found.add(i);
    }
  });
  return found;
}

async function takeLock(store: S3Store, key: string, force: boolean, o: Output): Promise<HeldLock> {
  try {
    return await retry(() => acquireLock(store, lockKey(key)));
  } catch (err) {
    if (err instanceof StoreError && err.status === 501) throw noConditionalPut(store, err);
    if (!(err instanceof LockHeldError) || !force) {
      if (err instanceof LockHeldError)
        throw new ConfigError(`${err.message.replace(/ break the lock and try again\.$/, '')} use --force to break it`);
      throw err;
    }
    const holder = await breakLock(store, lockKey(key));
    o.err(`warning: broke the lock held by ${holder?.owner ?? 'unknown'} since ${holder?.since ?? 'unknown'}`);
    return retry(() => acquireLock(store, lockKey(key)));
  }
}

/** Create the bucket when it does not exist; true when it was created. */
export async function ensureBucket(store: S3Store, probeKey: string): Promise<boolean> {
  try {
    await store.checkBucket(probeKey);
    return false;
  } catch (err) {
    if (!(err instanceof StoreError) || err.kind !== 'missing-container') throw err;
  }
  await store.client.send(new CreateBucketCommand({ Bucket: store.bucket }));
  return true;
}

/** `create`: a new, empty split disk (records its geometry in KEY/nbdts-disk.json). */
export async function create(
  store: S3Store,
  key: string,
  d: DiskDescriptor,
  c: CommonOptions,
  o: Output,
): Promise<number> {
  checkGeometry(d.size, d.objectSize);
  if (await ensureBucket(store, key)) o.err(`created bucket ${store.bucket}`);
  const existing = await existingObjects(store, key);
  const old = await retry(() => readDescriptor(store, key));
  if ((existing.size > 0 || old) && !c.force) {
    throw new ConfigError(
      `${store.bucket}/${key} already holds a disk (${existing.size} objects): ` +
        'delete it first (nbdts-s3 delete) or use --force to start over',
    );
  }
  if (existing.size > 0) {
    await parallel(existing, c.jobs, (i) => retry(() => store.delete(splitKeys(key).keyOf(i))));
    o.err(`deleted ${existing.size} old objects`);
  }
  await retry(() => writeDescriptor(store, key, d));
  o.err(
    `created ${store.bucket}/${key}: ${formatSize(d.size)} in objects of ${formatSize(d.objectSize)} (${key}/%016x)`,
  );
  return 0;
}

/**
 * `upload` into a split disk: objects that are all zeros are not stored (and
 * deleted if the disk had them), the rest are PUT in parallel. The disk is
 * locked meanwhile.
 */
export async function uploadSplit(
  store: S3Store,
  file: string,
  key: string,
  d: DiskDescriptor,
  c: CommonOptions,
  o: Output,
): Promise<number> {
  checkGeometry(d.size, d.objectSize);
  const fileSize = (await stat(file)).size;
  if (fileSize > d.size)
    throw new ConfigError(
      `${file} (${fileSize} bytes) is larger than the disk (${d.size} bytes): give a larger --size`,
    );
  if (await ensureBucket(store, key)) o.err(`created bucket ${store.bucket}`);
  const lock = await takeLock(store, key, c.force, o);
  const fh = await open(file, 'r');
  const keys = splitKeys(key);
  let stored = 0;
  let skipped = 0;
  try {
    const existing = await existingObjects(store, key);
    const progress = new Progress('upload', d.size, c.progress);
    const count = d.size / d.objectSize;
    await parallel(
      Array.from({ length: count }, (_, i) => i),
      c.jobs,
      async (i) => {
        const buf = Buffer.alloc(d.objectSize);
        const offset = i * d.objectSize;
        if (offset < fileSize)
          await fh.read({ buffer: buf, position: offset, length: Math.min(d.objectSize, fileSize - offset) });
        if (isAllZero(buf)) {
          if (existing.has(i)) await retry(() => store.delete(keys.keyOf(i)));
          skipped++;
        } else {
          const md5 = await md5Offload.hex(buf); // off this thread: parallel jobs would queue behind it
          await retry(() => store.put(keys.keyOf(i), buf, { md5 }));
          stored++;
        }
        progress.add(d.objectSize);
      },
    );
    progress.end();
    await retry(() => writeDescriptor(store, key, d));
  } finally {
    await fh.close();
    await releaseLock(store, lock).catch(() => {});
  }
  o.err(`uploaded ${file} to ${store.bucket}/${key}: ${stored} objects stored, ${skipped} all-zero objects skipped`);
  return 0;
}

/** `upload` as one object: a single PUT when small, else a parallel multipart upload. */
export async function uploadObject(
  store: S3Store,
  file: string,
  key: string,
  c: CommonOptions,
  o: Output,
): Promise<number> {
  const size = (await stat(file)).size;
  if (await ensureBucket(store, key)) o.err(`created bucket ${store.bucket}`);
  const part = partSize(size);
  const fh = await open(file, 'r');
  const progress = new Progress('upload', size, c.progress);
  try {
    if (size <= part) {
      const buf = Buffer.alloc(size);
      await fh.read({ buffer: buf, position: 0, length: size });
      const md5 = await md5Offload.hex(buf); // off this thread: parallel jobs would queue behind it
      await retry(() => store.put(key, buf, { md5 }));
      progress.add(size);
    } else {
      const up = await retry(() => store.createMultipart(key));
      try {
        const parts = Math.ceil(size / part);
        await parallel(
          Array.from({ length: parts }, (_, i) => i),
          Math.min(c.jobs, 8),
          async (i) => {
            const len = Math.min(part, size - i * part);
            const buf = Buffer.alloc(len);
            await fh.read({ buffer: buf, position: i * part, length: len });
            const md5 = await md5Offload.hex(buf); // off this thread: parallel jobs would queue behind it
            await retry(() => up.uploadPart(i + 1, buf, md5));
            progress.add(len);
          },
        );
        await retry(() => up.complete());
      } catch (err) {
        await up.abort().catch(() => {});
        throw err;
      }
    }
  } finally {
    progress.end();
    await fh.close();
  }
  o.err(
    `uploaded ${file} to ${store.bucket}/${key} (${formatSize(size)}${size > part ? `, multipart in parts of ${formatSize(part)}` : ''})`,
  );
  return 0;
}

/** What is at KEY: one object, or a split disk (from its descriptor or the given geometry). */
async function whatIs(
  store: S3Store,
  key: string,
  geometry?: DiskDescriptor,
): Promise<{ kind: 'object'; size: number } | { kind: 'split'; d: DiskDescriptor | null } | null> {
  if (geometry) return { kind: 'split', d: geometry };
  const head = await retry(() => store.head(key));
  if (head) return { kind: 'object', size: head.size };
  const d = await retry(() => readDescriptor(store, key));
  if (d) return { kind: 'split', d };
  const any = await existingObjects(store, key);
  return any.size > 0 ? { kind: 'split', d: null } : null;
}

/** `download` an object or a split disk into a file (holes stay sparse). */
export async function download(
  store: S3Store,
  key: string,
  file: string,
  geometry: DiskDescriptor | undefined,
  c: CommonOptions,
  o: Output,
): Promise<number> {
  const what = await whatIs(store, key, geometry);
  if (!what) throw new ConfigError(`nothing at ${store.bucket}/${key}: no such object and no split disk ${key}/%016x`);
  if (what.kind === 'split' && !what.d) {
    throw new ConfigError(`${store.bucket}/${key} is a split disk without a descriptor: give --size and --object-size`);
  }
  const total = what.kind === 'object' ? what.size : what.d!.size;
  const fh = await open(file, 'w');
  const progress = new Progress('download', total, c.progress);
  try {
    await fh.truncate(total);
    if (what.kind === 'object') {
      const step = 8 * 2 ** 20;
      await parallel(
        Array.from({ length: Math.ceil(total / step) }, (_, i) => i),
        c.jobs,
        async (i) => {
          const len = Math.min(step, total - i * step);
          const buf = await retry(() => store.get(key, { offset: i * step, length: len }));
          if (!buf || buf.length !== len)
            throw new StoreError(
              'fatal',
              `GET ${key}: expected ${len} bytes at ${i * step}, got ${buf?.length ?? 'nothing'}`,
            );
          await fh.write(buf, 0, len, i * step);
          progress.add(len);
        },
      );
    } else {
      const d = what.d!;
      const keys = splitKeys(key);
      const existing = await existingObjects(store, key);
      progress.add((d.size / d.objectSize - existing.size) * d.objectSize);
      await parallel(
        [...existing].filter((i) => i * d.objectSize < d.size),
        c.jobs,
        async (i) => {
          const buf = await retry(() => store.get(keys.keyOf(i)));
          if (buf) await fh.write(buf, 0, Math.min(buf.length, d.size - i * d.objectSize), i * d.objectSize);
          progress.add(d.objectSize);
        },
      );
    }
  } finally {
    progress.end();
    await fh.close();
  }
  o.err(`downloaded ${store.bucket}/${key} to ${file} (${formatSize(total)})`);
  return 0;
}

/** `info`: what is at KEY, its size and geometry, objects stored and the lock. */
export async function info(store: S3Store, key: string, o: Output): Promise<number> {
  const what = await whatIs(store, key);
  if (!what) throw new ConfigError(`nothing at ${store.bucket}/${key}: no such object and no split disk ${key}/%016x`);
  if (what.kind === 'object') {
    o.out(`${store.bucket}/${key}: object, size=${what.size} (${formatSize(what.size)}), served read-only`);
    return 0;
  }
  const existing = await existingObjects(store, key);
  const holder = await retry(() => readLock(store, lockKey(key)));
  const d = what.d;
  const geometry = d
    ? `size=${d.size} object-size=${d.objectSize} (${formatSize(d.size)})`
    : 'size unknown (no descriptor: give size= and object-size=)';
  const total = d ? ` of ${d.size / d.objectSize}` : '';
  o.out(
    `${store.bucket}/${key}: split disk, ${geometry}, ${existing.size}${total} objects stored, ` +
      `${holder ? `locked by ${holder.owner} since ${holder.since}` : 'unlocked'}`,
  );
  return 0;
}

/** `delete`: the object, or every object of a split disk (refused while it is locked, unless --force). */
export async function remove(store: S3Store, key: string, c: CommonOptions, o: Output): Promise<number> {
  const what = await whatIs(store, key);
  if (!what) throw new ConfigError(`nothing at ${store.bucket}/${key}: no such object and no split disk ${key}/%016x`);
  if (what.kind === 'object') {
    await retry(() => store.delete(key));
    o.err(`deleted ${store.bucket}/${key}`);
    return 0;
  }
  const holder = await retry(() => readLock(store, lockKey(key)));
  if (holder && !c.force) {
    throw new ConfigError(
      `${store.bucket}/${key} is in use: locked by ${holder.owner} since ${holder.since} (use --force if that server is gone)`,
    );
  }
  const keys = splitKeys(key);
  const existing = await existingObjects(store, key);
  await parallel(existing, c.jobs, (i) => retry(() => store.delete(keys.keyOf(i))));
  await retry(() => store.delete(descriptorKey(key)));
  await retry(() => store.delete(lockKey(key)));
  o.err(`deleted split disk ${store.bucket}/${key} (${existing.size} objects)`);
  return 0;
}
