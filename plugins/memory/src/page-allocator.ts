/**
 * Default slab size: pages are carved out of slabs this big. 1 MiB (16 pages
 * of 64 KiB) was the smallest size as fast as larger ones; larger slabs only
 * keep more memory alive when pages are freed (docs/plugins/memory.md).
 */
export const DEFAULT_SLAB_SIZE = 1024 * 1024;

/** A slab is emptied (its live pages moved) once no more than this share of it is live. */
const EVACUATE_AT = 1 / 4;

interface Slab {
  readonly buf: Buffer;
  /** Pages handed out and not yet released. */
  live: number;
  /** The store's page index given each slot; stale once that page is released. */
  readonly owners: number[];
}

/**
 * Hands out zero-filled pages carved from larger slabs, because allocating
 * each page as its own Buffer costs an allocation plus V8 external-memory
 * accounting (which drives GCs that visit every buffer) per first write to a page.
 *
 * Slots are never reused: a page the store frees may still be referenced by a
 * read reply queued on a socket, so its memory must never reappear at another
 * offset. A slab's memory goes back (by GC) once no page or reply references
 * it. So that a few live pages cannot pin many mostly-free slabs, compact()
 * has the store copy the pages of slabs down to EVACUATE_AT live into fresh
 * ones, which bounds the memory held to about 1 / EVACUATE_AT times the data.
 */
export class PageAllocator {
  readonly pageSize: number;
  readonly slabSize: number;
  readonly #slabs = new Map<ArrayBufferLike, Slab>();
  /** Slabs that may need evacuating, handled by compact() after each request. */
  readonly #sparse = new Set<Slab>();
  readonly #evacuateAt: number;
  #current: Slab | undefined; // allocated on the first page, not up front
  #next = 0;

  /** `limit` caps the slab size (the export size, so tiny exports stay tiny). */
  constructor(pageSize: number, slabSize = DEFAULT_SLAB_SIZE, limit = Infinity) {
    if (!Number.isInteger(slabSize / pageSize) || slabSize < pageSize) {
      throw new RangeError(`slab size must be a multiple of the page size ${pageSize}, got ${slabSize}`);
    }
    this.pageSize = pageSize;
    this.slabSize = Math.max(pageSize, Math.min(slabSize, Math.ceil(limit / pageSize) * pageSize));
    this.#evacuateAt = Math.floor((this.slabSize / pageSize) * EVACUATE_AT);
  }

  /** Slabs this allocator keeps alive (holding live pages, or being carved). */
  get slabs(): number {
    return this.#slabs.size;
  }

  /** A zero-filled page for the store's page `index`, never handed out before. */
  alloc(index: number): Buffer {
    let slab = this.#current;
    if (slab === undefined || this.#next === this.slabSize) {
      if (slab !== undefined) { this.#current = undefined; this.#check(slab); }
      slab = { buf: Buffer.alloc(this.slabSize), live: 0, owners: [] };
      this.#slabs.set(slab.buf.buffer, slab);
      this.#current = slab;
      this.#next = 0;
    }
    const page = slab.buf.subarray(this.#next, this.#next + this.pageSize);
    slab.owners.push(index);
    slab.live++;
    this.#next += this.pageSize;
    return page;
  }

  /** The store dropped `page`. */
  release(page: Buffer): void {
    const slab = this.#slabs.get(page.buffer);
    if (slab === undefined) return;
    slab.live--;
    this.#check(slab);
  }

  #check(slab: Slab): void {
    if (slab === this.#current) return; // still being carved: its free slots are not lost yet
    if (slab.live === 0) {
      this.#slabs.delete(slab.buf.buffer);
      this.#sparse.delete(slab);
    } else if (slab.live <= this.#evacuateAt) {
      this.#sparse.add(slab);
    }
  }

  /**
   * Evacuate sparse slabs: `move(index, from)` must give page `index` a fresh
   * page from alloc() (copying its data) if it still lives in `from`. Called
   * once per request, so a large trim that frees whole slabs copies nothing.
   */
  compact(move: (index: number, from: ArrayBufferLike) => void): void {
    for (const slab of this.#sparse) { // alloc() may add the slab it retires: visited too
      this.#sparse.delete(slab);
      if (slab === this.#current || slab.live === 0 || slab.live > this.#evacuateAt) continue;
      if (!this.#slabs.delete(slab.buf.buffer)) continue;
      for (const index of slab.owners) move(index, slab.buf.buffer);
    }
  }

  /** Forget every slab (the store dropped all its pages). */
  reset(): void {
    this.#slabs.clear();
    this.#sparse.clear();
    this.#current = undefined;
    this.#next = 0;
  }
}
