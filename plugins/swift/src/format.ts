import { ConfigError } from '@nbdts/plugin-api';
import { ObjectsLayout, paddedKeys, type KeyScheme } from '@nbdts/objstore';
import type { SwiftContainerStore } from './client/index.ts';

/**
 * The swiftnbd 0.11 container format (see docs/swift-format.md): the disk is
 * split into objects `disk.part/%08d` of object-size bytes; container metadata
 * says how many and how large, and who is using it.
 */
export const FORMAT_VERSION = '1';
export const OBJECT_PREFIX = 'disk.part/';
/**
 * Object size for a new disk given by size: 1 MiB, chosen by measurement
 * (docs/plugins/swift.md): 3-7x faster than 64 KiB at mkfs and filling a filesystem.
 */
export const DEFAULT_OBJECT_SIZE = 1024 * 1024;
/** swiftnbd's default, kept where a disk is given as a count of objects (`setup CONTAINER OBJECTS`). */
export const SWIFTNBD_OBJECT_SIZE = 64 * 1024;
/** Our lock object: created with If-None-Match: * so two servers cannot both take it. */
export const LOCK_KEY = 'disk.lock';

/** Container metadata keys (X-Container-Meta-<key>), lower-case as Swift returns them. */
export const META = {
  version: 'swiftnbd-version',
  objects: 'swiftnbd-objects',
  objectSize: 'swiftnbd-object-size',
  /** Who uses the disk now ("who@unixtime"); absent or empty when free. */
  client: 'swiftnbd-client',
  /** Who used it last. */
  last: 'swiftnbd-last',
} as const;

export const objectKeys: KeyScheme = paddedKeys(OBJECT_PREFIX, 10, 8);

export interface DiskFormat {
  version: string;
  objects: number;
  objectSize: number;
  /** The swiftnbd lock mirror: non-empty while a server uses the disk. */
  client: string | undefined;
  last: string | undefined;
}

export function diskSize(f: Pick<DiskFormat, 'objects' | 'objectSize'>): number {
  return f.objects * f.objectSize;
}

/**
 * Read the format from container metadata: null when the container was never
 * set up (swiftnbd requires version, objects and object-size together).
 */
export function parseFormat(container: string, meta: Record<string, string>): DiskFormat | null {
  const version = meta[META.version];
  const objects = meta[META.objects];
  const objectSize = meta[META.objectSize];
  if (version === undefined || objects === undefined || objectSize === undefined) return null;
  const n = Number(objects);
  const s = Number(objectSize);
  if (
    !/^\d+$/.test(objects.trim()) ||
    !Number.isSafeInteger(n) ||
    !/^\d+$/.test(objectSize.trim()) ||
    !Number.isSafeInteger(s) ||
    s < 512
  ) {
    throw new ConfigError(
      `container ${container}: bad swiftnbd metadata (objects=${objects}, object-size=${objectSize}); ` +
        'fix it with nbdts-swift setup --force (same objects and object size keeps the data)',
    );
  }
  if (!Number.isSafeInteger(n * s))
    throw new ConfigError(`container ${container}: ${n} objects of ${s} bytes is too large`);
  return {
    version,
    objects: n,
    objectSize: s,
    client: meta[META.client] || undefined,
    last: meta[META.last] || undefined,
  };
}

/** Metadata for a freshly set-up disk. */
export function formatMeta(objects: number, objectSize: number): Record<string, string> {
  return {
    [META.version]: FORMAT_VERSION,
    [META.objects]: String(objects),
    [META.objectSize]: String(objectSize),
  };
}

/** Objects needed for `size` bytes; the size must be a whole number of objects. */
export function objectsFor(size: number, objectSize: number): number {
  if (size <= 0 || size % objectSize !== 0) {
    throw new ConfigError(
      `size ${size} is not a positive multiple of the object size ${objectSize}: swiftnbd disks are a whole number of objects`,
    );
  }
  return size / objectSize;
}

export function layoutFor(f: DiskFormat): ObjectsLayout {
  return new ObjectsLayout({ size: diskSize(f), objectSize: f.objectSize, keys: objectKeys });
}

export interface SetupOptions {
  objects: number;
  objectSize: number;
  /** Overwrite an existing setup (keeps objects; changing the geometry scrambles the data). */
  force?: boolean;
}

/**
 * Create the container if needed and write the format metadata. Refuses to
 * touch a container that is already set up unless force, and one that holds
 * objects but no format (not ours) always.
 */
export async function setupContainer(store: SwiftContainerStore, o: SetupOptions): Promise<void> {
  let meta: Record<string, string> | undefined;
  let objectCount = 0;
  try {
    const info = await store.info();
    meta = info.metadata;
    objectCount = info.objectCount;
  } catch (err) {
    if ((err as { kind?: string }).kind !== 'missing-container') throw err;
  }
  if (meta !== undefined) {
    const existing = parseFormat(store.container, meta);
    if (existing && !o.force) {
      throw new ConfigError(
        `container ${store.container} is already set up (${existing.objects} objects of ${existing.objectSize} bytes); ` +
          'use --force to overwrite its metadata',
      );
    }
    if (existing?.client && !o.force)
      throw new ConfigError(`container ${store.container} is locked by ${existing.client}`);
    if (!existing && objectCount > 0 && !o.force) {
      throw new ConfigError(
        `container ${store.container} has ${objectCount} objects but is not a swiftnbd disk; use --force to set it up anyway`,
      );
    }
  }
  await store.create(formatMeta(o.objects, o.objectSize));
}
