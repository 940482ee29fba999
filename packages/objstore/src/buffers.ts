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
 * A buffer of n bytes that nothing else references, zero-filled unless
 * `zeroed` is false (the caller writes every byte, e.g. a GET body).
 */
export function bigBuffer(n: number, zeroed = true): Buffer {
  if (n >= MIN_PREFAULT) return buffers.take(n);
  return zeroed ? Buffer.alloc(n) : Buffer.allocUnsafe(n);
}
