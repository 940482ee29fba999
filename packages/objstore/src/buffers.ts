import { MIN_PREFAULT, PrefaultedBuffers } from '@nbdts/plugin-api';

/**
 * Where the object layer gets its big buffers (cached chunks, GET bodies):
 * faulted in ahead by a helper thread, so the serving thread does not pay a
 * page fault per 4 KiB when it fills a fresh 4 MiB chunk (profiled: a 256 MiB
 * split-disk write spent about 350 ms of it allocating chunks). 32 MiB of
 * reserve per size in use: eight 4 MiB chunks.
 */
const buffers = new PrefaultedBuffers(32 * 1024 * 1024);

/**
 * Chunks the cache dropped, kept for the next chunk of the same size. Every
 * fresh 4 MiB chunk is new external memory, and V8 answers each ~64 MiB of it
 * with a garbage collection that finds nothing to free while the cache holds
 * its chunks (profiled: 0.2-0.3 s per 256 MiB written to a split disk).
 * Reusing dropped chunks allocates nothing in a steady stream of writes.
 */
const SPARE_BYTES = 32 * 1024 * 1024;
const spare = new Map<number, Buffer[]>();
let spareBytes = 0;
let reusedCount = 0;

/**
 * Memory the device allocated for itself and never let out of its hands:
 * only these may be reused. A buffer lent to a reader (an NBD reply still
 * queued on a socket) or taken from a GET body may still be read by others.
 */
const owned = new WeakSet<ArrayBufferLike>();

/**
 * A buffer of n bytes that nothing else references, zero-filled unless
 * `zeroed` is false (the caller writes every byte, e.g. a GET body).
 */
export function bigBuffer(n: number, zeroed = true): Buffer {
  const reused = spare.get(n)?.pop();
  if (reused) {
    spareBytes -= n;
    reusedCount++;
    return zeroed ? reused.fill(0) : reused;
  }
  if (n >= MIN_PREFAULT) return buffers.take(n);
  return zeroed ? Buffer.alloc(n) : Buffer.allocUnsafe(n);
}

/** Mark a buffer from bigBuffer() as the device's own: recycle() may reuse it. */
export function own(b: Buffer): Buffer {
  if (b.length >= MIN_PREFAULT && b.byteOffset === 0 && b.buffer.byteLength === b.length) owned.add(b.buffer);
  return b;
}

/** Others may now read b (or a view of it): it must never be reused. */
export function lend(b: Buffer): void {
  owned.delete(b.buffer);
}

/**
 * The cache has dropped b. If it was the device's own and never lent, keep it
 * for the next bigBuffer() of its size (within SPARE_BYTES); otherwise leave it to GC.
 */
export function recycle(b: Buffer): void {
  if (!owned.delete(b.buffer) || spareBytes + b.length > SPARE_BYTES) return;
  let list = spare.get(b.length);
  if (!list) { list = []; spare.set(b.length, list); }
  list.push(b);
  spareBytes += b.length;
}

/** How many buffers bigBuffer() has handed out again (tests, stats). */
export function reusedBuffers(): number {
  return reusedCount;
}
