/**
 * Default slab size: pages are carved out of slabs this big. Measured in
 * docs/plugins/memory.md: allocation speed against memory kept alive by
 * fragmentation (one live page keeps its whole slab).
 */
export const DEFAULT_SLAB_SIZE = 1024 * 1024;

/**
 * Hands out zero-filled pages carved from larger slabs, because allocating
 * each page as its own Buffer costs an allocation plus V8 external-memory
 * accounting (which triggers GCs) per first write to a page.
 *
 * Slots are never reused: a page the store frees may still be referenced by a
 * read reply queued on a socket, so its memory must never reappear at another
 * offset. A slab is returned by GC once no page or reply references it.
 */
export class PageAllocator {
  readonly pageSize: number;
  readonly slabSize: number;
  #slab: Buffer | undefined; // allocated on the first page, not up front
  #next = 0;

  /** `limit` caps the slab size (e.g. at the export size, so tiny exports stay tiny). */
  constructor(pageSize: number, slabSize = DEFAULT_SLAB_SIZE, limit = Infinity) {
    if (!Number.isInteger(slabSize / pageSize) || slabSize < pageSize) {
      throw new RangeError(`slab size must be a multiple of the page size ${pageSize}, got ${slabSize}`);
    }
    this.pageSize = pageSize;
    this.slabSize = Math.max(pageSize, Math.min(slabSize, Math.ceil(limit / pageSize) * pageSize));
  }

  /** A zero-filled page that no one else has ever been given. */
  alloc(): Buffer {
    if (this.#slab === undefined || this.#next === this.#slab.length) {
      this.#slab = Buffer.alloc(this.slabSize);
      this.#next = 0;
    }
    const page = this.#slab.subarray(this.#next, this.#next + this.pageSize);
    this.#next += this.pageSize;
    return page;
  }

  /** The slab pages are being carved from, if any: stats count it as held. */
  get current(): Buffer | undefined {
    return this.#slab;
  }

  /** Forget the current slab (its unused rest is never handed out). */
  reset(): void {
    this.#slab = undefined;
    this.#next = 0;
  }
}
