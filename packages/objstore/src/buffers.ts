import { BufferPool, MIN_PREFAULT, PrefaultedBuffers } from '@nbdts/plugin-api/engine';

/**
 * Where the object layer gets its big buffers (cached chunks, GET bodies):
 * faulted in ahead by a helper thread, so the serving thread does not pay a
 * page fault per 4 KiB when it fills a fresh 4 MiB chunk (profiled: a 256 MiB
 * split-disk write spent about 350 ms of it allocating chunks). 32 MiB of
 * reserve per size in use: eight 4 MiB chunks.
 */
const buffers = new PrefaultedBuffers(32 * 1024 * 1024);

/**
 * Buffers nobody holds any more, kept for the next bigBuffer() of the same
 * size. Every fresh 4 MiB buffer is new external memory, and V8 answers each
 * few tens of MiB of it with a garbage collection that finds nothing to free
 * while the cache holds its chunks (--trace-gc: 0.2-0.3 s per 256 MiB written
 * to a split disk). With dropped chunks reused, a steady stream of writes or
 * reads allocates nothing.
 */
const spare = new BufferPool(32 * 1024 * 1024);
let reusedCount = 0;

/**
 * Reusable memory and who holds it: cache entries, stores in progress,
 * replies on a socket (each counts once per view). Only buffers whose every
 * user counts itself here are tracked; when the count falls to zero, the
 * memory is reused. A buffer given away without such accounting (lendForever)
 * is never reused, and nor is anything never tracked: GC frees those.
 */
interface Holds {
  readonly buf: Buffer;
  n: number;
}
const tracked = new WeakMap<ArrayBufferLike, Holds>();

/**
 * A buffer of n bytes that nothing else references, zero-filled unless
 * `zeroed` is false (the caller writes every byte, e.g. a GET body).
 */
export function bigBuffer(n: number, zeroed = true): Buffer {
  const reused = spare.reuse(n);
  if (reused) {
    reusedCount++;
    return zeroed ? reused.fill(0) : reused;
  }
  if (n >= MIN_PREFAULT) return buffers.take(n);
  return zeroed ? Buffer.alloc(n) : Buffer.allocUnsafe(n);
}

/**
 * Track a whole buffer from bigBuffer() whose users will all hold() and
 * unhold() it: it is reused once the last lets go. Returns b.
 */
export function own(b: Buffer): Buffer {
  if (b.length >= MIN_PREFAULT && b.byteOffset === 0 && b.buffer.byteLength === b.length)
    tracked.set(b.buffer, { buf: b, n: 0 });
  return b;
}

/** One more user of b's memory (b may be a view of a tracked buffer). */
export function hold(b: Buffer | null): void {
  const h = b && tracked.get(b.buffer);
  if (h) h.n++;
}

/** One user fewer; the last one puts the memory up for reuse. */
export function unhold(b: Buffer | null): void {
  const h = b && tracked.get(b.buffer);
  if (!h || --h.n > 0) return;
  tracked.delete(h.buf.buffer);
  spare.put(h.buf);
}

/** b's memory goes where nobody will say when it is free: never reuse it. */
export function lendForever(b: Buffer): void {
  tracked.delete(b.buffer);
}

/** How many buffers bigBuffer() has handed out again (for tests). */
export function reusedBuffers(): number {
  return reusedCount;
}
