import { md5Hex, ObjectsLayout, paddedKeys, type KeyScheme, type ObjectStore } from '@nbdts/objstore';

/**
 * Split-mode naming, as nbdkit's S3 plugin has it: object i of disk KEY is
 * `KEY/%016x` (16 lower-case hex digits). Our own objects sit under the same
 * prefix with names that are not hex and sort after every data object, so
 * nbdkit ignores them: the lock and a small descriptor written by `create`.
 */
export function splitKeys(key: string): KeyScheme {
  return paddedKeys(`${key}/`, 16, 16);
}

export function lockKey(key: string): string {
  return `${key}/nbdts-lock`;
}

export function descriptorKey(key: string): string {
  return `${key}/nbdts-disk.json`;
}

export function splitLayout(key: string, size: number, objectSize: number): ObjectsLayout {
  return new ObjectsLayout({ size, objectSize, keys: splitKeys(key) });
}

/** What `nbdts-s3 create` records, so size= and object-size= can be left out later. */
export interface DiskDescriptor {
  size: number;
  objectSize: number;
}

export async function readDescriptor(store: ObjectStore, key: string): Promise<DiskDescriptor | null> {
  const body = await store.get(descriptorKey(key));
  if (body === null) return null;
  try {
    const v = JSON.parse(body.toString('utf8')) as Partial<DiskDescriptor>;
    if (Number.isSafeInteger(v.size) && Number.isSafeInteger(v.objectSize))
      return { size: v.size!, objectSize: v.objectSize! };
  } catch {
    // fall through
  }
  return null;
}

export async function writeDescriptor(store: ObjectStore, key: string, d: DiskDescriptor): Promise<void> {
  const body = Buffer.from(
    `${JSON.stringify({ size: d.size, objectSize: d.objectSize, format: 'nbdkit-S3 KEY/%016x' })}\n`,
  );
  await store.put(descriptorKey(key), body, { md5: md5Hex(body), contentType: 'application/json' });
}
