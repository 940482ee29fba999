import { open as openFile, stat } from 'node:fs/promises';
import { ConfigError, formatSize } from '@nbdts/plugin-api';
import {
  isAllZero,
  md5Offload,
  withRetry,
  DEFAULT_RETRY,
  StoreError,
  parallel,
  Progress,
  type Output,
} from '@nbdts/objstore';
import type { SwiftContainerStore } from '../client/index.ts';
import { forceUnlock, lockContainer, lockOwner, unlockContainer, type ContainerLock } from '../container-lock.ts';
import {
  DEFAULT_OBJECT_SIZE,
  diskSize,
  objectKeys,
  objectsFor,
  parseFormat,
  setupContainer,
  type DiskFormat,
} from '../format.ts';

/** Where messages go: the tool prints to stdout/stderr, tests capture them. */
export type { Output } from '@nbdts/objstore';

export interface CommonOptions {
  jobs: number;
  quiet: boolean;
  force: boolean;
}

/** Store calls from the tool retry transient failures like the server does. */
const retry = <T>(fn: () => Promise<T>): Promise<T> => withRetry(DEFAULT_RETRY, fn);

async function requireFormat(store: SwiftContainerStore): Promise<DiskFormat> {
  const meta = await retry(() => store.getContainerMeta());
  const f = parseFormat(store.container, meta);
  if (!f)
    throw new ConfigError(
      `${store.container} is not set up as a swiftnbd disk (run: nbdts-swift setup ${store.container} OBJECTS)`,
    );
  return f;
}

function lockText(f: DiskFormat): string {
  return f.client ? `locked by ${f.client}` : 'unlocked';
}

/** `list`: one line per container with its geometry and lock state. */
export async function listDisks(stores: SwiftContainerStore[], simple: boolean, o: Output): Promise<number> {
  let status = 0;
  for (const store of stores) {
    try {
      const f = parseFormat(store.container, await retry(() => store.getContainerMeta()));
      if (!f) o.out(`${store.container} is not a swiftnbd container`);
      else if (simple)
        o.out(
          `${store.container} objects=${f.objects} object-size=${f.objectSize} size=${diskSize(f)} version=${f.version} ${f.client ? 'locked' : 'unlocked'}`,
        );
      else
        o.out(
          `${store.container} objects=${f.objects} size=${f.objectSize} (${formatSize(diskSize(f))}, version=${f.version}, ${lockText(f)})`,
        );
    } catch (err) {
      status = 1;
      if (err instanceof StoreError && err.kind === 'missing-container') o.err(`${store.container} doesn't exist`);
      else o.err(`${store.container}: ${(err as Error).message}`);
    }
  }
  return status;
}

/** `setup`: create the container and write the format; refuses to overwrite without force. */
export async function setup(
  store: SwiftContainerStore,
  objects: number,
  objectSize: number,
  c: CommonOptions,
  o: Output,
): Promise<number> {
  await setupContainer(store, { objects, objectSize, force: c.force });
  o.err(`Done, ${store.container}: ${objects} objects of ${objectSize} bytes (${formatSize(objects * objectSize)})`);
  return 0;
}

/** `info`: everything about one container. */
export async function info(store: SwiftContainerStore, o: Output): Promise<number> {
  const i = await retry(() => store.info());
  const f = parseFormat(store.container, i.metadata);
  o.out(`container: ${store.container}`);
  if (f) {
    o.out(`format: swiftnbd version ${f.version}`);
    o.out(`size: ${diskSize(f)} (${formatSize(diskSize(f))})`);
    o.out(`objects: ${f.objects} of ${f.objectSize} bytes`);
    o.out(`lock: ${f.client ?? 'none'}`);
    o.out(`last: ${f.last ?? 'none'}`);
  } else {
    o.out('format: none (not a swiftnbd disk)');
  }
  o.out(`stored objects: ${i.objectCount} (${formatSize(i.bytesUsed)} used)`);
  return 0;
}

export async function lock(store: SwiftContainerStore, o: Output): Promise<number> {
  const f = await requireFormat(store);
  if (f.client) {
    o.err(`${store.container} is already locked: ${f.client}`);
    return 1;
  }
  const l = await lockContainer(store, { owner: lockOwner('ctl') });
  o.err(`Done, ${store.container} is locked (${l.client})`);
  return 0;
}

export async function unlock(store: SwiftContainerStore, o: Output): Promise<number> {
  await requireFormat(store);
  const who = await forceUnlock(store);
  if (!who) {
    o.err(`${store.container} is not locked, nothing to do`);
    return 1;
  }
  o.err(`Done, ${store.container} is unlocked (it was locked by ${who})`);
  return 0;
}

/** Lock for a tool operation, run fn, unlock even when fn fails. */
async function whileLocked(store: SwiftContainerStore, c: CommonOptions, fn: () => Promise<void>): Promise<void> {
  let held: ContainerLock;
  try {
    held = await lockContainer(store, { owner: lockOwner('ctl'), force: c.force });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message.replace(/add force=true/, 'use --force')}`);
  }
  try {
    await fn();
  } finally {
    await unlockContainer(store, held);
  }
}

/** The indexes of objects that exist, from the listing. */
async function storedIndexes(store: SwiftContainerStore, f: DiskFormat): Promise<number[]> {
  const found: number[] = [];
  for await (const obj of store.list(objectKeys.prefix)) {
    const i = objectKeys.indexOf(obj.key);
    if (i !== null && i < f.objects) found.push(i);
  }
  return found;
}

/** `download`: the disk as a sparse raw image (objects that do not exist stay holes). */
export async function download(
  store: SwiftContainerStore,
  image: string,
  c: CommonOptions,
  o: Output,
): Promise<number> {
  const f = await requireFormat(store);
  const size = diskSize(f);
  await whileLocked(store, c, async () => {
    const indexes = await retry(() => storedIndexes(store, f));
    const fh = await openFile(image, 'w');
    const progress = new Progress(`Downloading ${store.container}`, size, !c.quiet && process.stderr.isTTY === true);
    try {
      await fh.truncate(size);
      progress.add(size - indexes.length * f.objectSize);
      await parallel(indexes, c.jobs, async (i) => {
        const key = objectKeys.keyOf(i);
        const data = await retry(() => store.get(key));
        if (data !== null && data.length !== f.objectSize) {
          throw new Error(`${key} is ${data.length} bytes, expected ${f.objectSize}: the container is damaged`);
        }
        if (data !== null && !isAllZero(data)) await fh.write(data, 0, data.length, i * f.objectSize);
        progress.add(f.objectSize);
      });
      await fh.sync();
    } finally {
      progress.end();
      await fh.close();
    }
  });
  o.err(`Done, ${size} bytes written to ${image}`);
  return 0;
}

/**
 * `upload`: an image into a container, object by object. Zero objects are not
 * stored (and deleted if the container had them), so the container reads
 * exactly as the image. Sets the container up when it is not a disk yet.
 */
export async function upload(
  image: string,
  store: SwiftContainerStore,
  objectSizeOpt: number | undefined,
  c: CommonOptions,
  o: Output,
): Promise<number> {
  const imageSize = (await stat(image)).size;
  let f: DiskFormat | null = null;
  try {
    f = parseFormat(store.container, await retry(() => store.getContainerMeta()));
  } catch (err) {
    if (!(err instanceof StoreError && err.kind === 'missing-container')) throw err;
  }
  if (!f) {
    const objectSize = objectSizeOpt ?? DEFAULT_OBJECT_SIZE;
    const objects = objectsFor(Math.ceil(imageSize / objectSize) * objectSize || objectSize, objectSize);
    await setupContainer(store, { objects, objectSize, force: c.force });
    f = { version: '1', objects, objectSize, client: undefined, last: undefined };
    o.err(`Set up ${store.container}: ${objects} objects of ${objectSize} bytes`);
  } else if (imageSize > diskSize(f)) {
    throw new ConfigError(`${image} is ${imageSize} bytes but ${store.container} holds ${diskSize(f)}`);
  }
  const format = f;
  let stored = 0;
  let skipped = 0;
  await whileLocked(store, c, async () => {
    const existing = new Set(await retry(() => storedIndexes(store, format)));
    const fh = await openFile(image, 'r');
    const progress = new Progress(
      `Uploading ${store.container}`,
      diskSize(format),
      !c.quiet && process.stderr.isTTY === true,
    );
    try {
      const indexes = Array.from({ length: format.objects }, (_, i) => i);
      await parallel(indexes, c.jobs, async (i) => {
        const buf = Buffer.alloc(format.objectSize);
        const { bytesRead } = await fh.read(buf, 0, format.objectSize, i * format.objectSize);
        buf.fill(0, bytesRead);
        const key = objectKeys.keyOf(i);
        if (isAllZero(buf)) {
          if (existing.has(i)) await retry(() => store.delete(key));
          skipped++;
        } else {
          const md5 = await md5Offload.hex(buf); // off this thread: parallel jobs would queue behind it
          await retry(() => store.put(key, buf, { md5 }));
          stored++;
        }
        progress.add(format.objectSize);
      });
    } finally {
      progress.end();
      await fh.close();
    }
  });
  o.err(`Done, ${stored} objects stored, ${skipped} zero objects skipped`);
  return 0;
}

/** `delete`: every object (paginated, in parallel), then the container. Refuses a locked disk unless force. */
export async function deleteDisk(store: SwiftContainerStore, c: CommonOptions, o: Output): Promise<number> {
  const meta = await retry(() => store.getContainerMeta());
  const f = parseFormat(store.container, meta);
  if (f?.client && !c.force) {
    o.err(`${store.container} is locked by ${f.client}; use --force to delete it anyway`);
    return 1;
  }
  let deleted = 0;
  // List everything, then delete: deleting while paging would move the marker under our feet.
  // A second round catches objects a lagging listing did not show the first time.
  for (let round = 0; round < 3; round++) {
    const keys: string[] = [];
    for await (const obj of store.list('')) keys.push(obj.key);
    if (keys.length === 0) break;
    await parallel(keys, c.jobs, async (key) => {
      await retry(() => store.delete(key));
      deleted++;
    });
  }
  await retry(() => store.conn.deleteContainer(store.container));
  o.err(`Done, ${store.container} has been deleted (${deleted} objects${f ? '' : ', it was not a swiftnbd disk'})`);
  return 0;
}
