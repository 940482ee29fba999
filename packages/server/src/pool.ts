/**
 * Recycles large request buffers (write payloads, read buffers). Allocating a
 * fresh 256 KiB ArrayBuffer per request makes V8 collect garbage constantly
 * under nbdcopy-style loads; reusing them removes most of that work. Small
 * buffers come from Node's own slab allocator and are not pooled.
 */
const MIN_POOLED = 4096;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(size: number): Buffer {
    if (size >= MIN_POOLED) {
      const list = this.free.get(size);
      const b = list?.pop();
      if (b) {
        this.bytes -= size;
        return b;
      }
      return Buffer.allocUnsafeSlow(size);
    }
    return Buffer.allocUnsafe(size);
  }

  /** Give back a buffer from get() that nothing references any more. */
  put(b: Buffer): void {
    const size = b.length;
    if (size < MIN_POOLED || this.bytes + size > this.maxBytes) return;
    // Only whole, unshared ArrayBuffers (what get() hands out) may be reused.
    if (b.byteOffset !== 0 || b.buffer.byteLength !== size) return;
    let list = this.free.get(size);
    if (!list) { list = []; this.free.set(size, list); }
    list.push(b);
    this.bytes += size;
  }
}
