/**
 * Recycles large buffers: the engine's request buffers (write payloads, read
 * buffers) and the object layer's cache chunks. Allocating a fresh 256 KiB or
 * 4 MiB ArrayBuffer each time makes V8 collect garbage constantly ("external
 * memory pressure") under copy-style loads; reusing them removes most of that
 * work. At most `maxBytes` wait in the pool. Small buffers come from Node's
 * own slab allocator and are not pooled.
 */
const MIN_POOLED = 4096;

export class BufferPool {
  readonly #free = new Map<number, Buffer[]>();
  #bytes = 0;

  readonly #maxBytes: number;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** A buffer of `size` bytes (contents left over from its last use), pooled or new. */
  get(size: number): Buffer {
    if (size < MIN_POOLED) return Buffer.allocUnsafe(size);
    return this.reuse(size) ?? Buffer.allocUnsafeSlow(size);
  }

  /** A pooled buffer of exactly `size` bytes (contents left over), or undefined when none waits. */
  reuse(size: number): Buffer | undefined {
    const b = this.#free.get(size)?.pop();
    if (b) this.#bytes -= size;
    return b;
  }

  /** Give back a buffer from get() that nothing references any more. */
  put(b: Buffer): void {
    const size = b.length;
    if (size < MIN_POOLED || this.#bytes + size > this.#maxBytes) return;
    // Only whole, unshared ArrayBuffers (what get() hands out) may be reused.
    if (b.byteOffset !== 0 || b.buffer.byteLength !== size) return;
    let list = this.#free.get(size);
    if (!list) {
      list = [];
      this.#free.set(size, list);
    }
    list.push(b);
    this.#bytes += size;
  }
}
