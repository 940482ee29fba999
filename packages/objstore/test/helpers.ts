import { randomBytes } from 'node:crypto';
import { ObjectDevice, ObjectsLayout, paddedKeys, type DeviceOptions } from '../src/index.ts';
import { MemoryStore } from '../src/testing/memory-store.ts';

export const OBJ = 1024;
export const KEYS = paddedKeys('disk.part/', 10, 8);
/** Retries fast enough for unit tests. */
export const FAST_RETRY = { retries: 3, baseDelayMs: 1, maxDelayMs: 4, budgetMs: 5_000 };

export interface Setup {
  store: MemoryStore;
  dev: ObjectDevice;
}

export async function setup(
  opts: DeviceOptions & { size?: number; objectSize?: number; store?: MemoryStore } = {},
): Promise<Setup> {
  const store = opts.store ?? new MemoryStore();
  const layout = new ObjectsLayout({ size: opts.size ?? 16 * OBJ, objectSize: opts.objectSize ?? OBJ, keys: KEYS });
  // Write-back that never fires by itself unless a test asks: tests decide when data reaches the store.
  // These tests pin down the cache, threshold and timer write-back; streaming write-back has tests of its own.
  const dev = await ObjectDevice.open(store, layout, {
    writebackDelayMs: 60_000,
    retry: FAST_RETRY,
    streamWrites: false,
    ...opts,
  });
  return { store, dev };
}

export function key(i: number): string {
  return KEYS.keyOf(i);
}

export function rand(n: number): Buffer {
  return randomBytes(n);
}

export async function readAt(dev: ObjectDevice, offset: number, count: number): Promise<Buffer> {
  const buf = Buffer.alloc(count, 0xee);
  await dev.read(buf, offset);
  return buf;
}

export function nonZero(n: number, fill = 0xab): Buffer {
  return Buffer.alloc(n, fill);
}
