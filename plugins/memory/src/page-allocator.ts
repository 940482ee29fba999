import { freshSlabs, type SlabSource } from '@nbdts/plugin-api/engine';

/**
 * Default slab size: pages are carved out of slabs this big. 1 MiB (16 pages
 * of 64 KiB) was the smallest size as fast as larger ones; larger slabs only
 * keep more memory alive when pages are freed (docs/plugins/memory.md).
 */
export const DEFAULT_SLAB_SIZE = 1024 * 1024;

/** A slab is emptied (its live pages moved) once no more than this share of it is live. */
const EVACUATE_AT = 1 / 4;

interface Carving {
  slab: Slab | undefined;
  /** Offset of the next free page in it. */
  next: number;
}

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
  readonly #source: SlabSource;
  /*
   * Two slabs are carved at once: pages for whole-page writes come from a
   * prefaulted slab (every byte of them is written at once anyway), pages
   * for partial writes from one allocated on the spot, whose untouched 4 KiB
   * pieces the kernel never maps, so scattered small writes cost only what
   * they touch. Each is allocated on its first page, not up front.
   */
  readonly #carving: [Carving, Carving] = [
    { slab: undefined, next: 0 },
    { slab: undefined, next: 0 },
  ];

  /** `limit` caps the slab size (the export size, so tiny exports stay tiny). */
  constructor(pageSize: number, slabSize = DEFAULT_SLAB_SIZE, limit = Infinity, source: SlabSource = freshSlabs) {
    this.#source = source;
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

  /**
   * A zero-filled page for the store's page `index`, never handed out before.
   * `whole`: the caller is about to write all of it (see #carving).
   */
  alloc(index: number, whole = false): Buffer {
    const c = this.#carving[whole ? 1 : 0];
    let slab = c.slab;
    if (slab === undefined || c.next === this.slabSize) {
      if (slab !== undefined) {
        c.slab = undefined;
        this.#check(slab);
      }
      const buf = whole ? this.#source.take(this.slabSize) : Buffer.alloc(this.slabSize);
      slab = { buf, live: 0, owners: [] };
      this.#slabs.set(buf.buffer, slab);
      c.slab = slab;
      c.next = 0;
    }
    const page = slab.buf.subarray(c.next, c.next + this.pageSize);
    slab.owners.push(index);
    slab.live++;
    c.next += this.pageSize;
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
    if (this.#isCarving(slab)) return; // its free slots are not lost yet
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
    for (const slab of this.#sparse) {
      // alloc() may add the slab it retires: visited too
      this.#sparse.delete(slab);
      if (this.#isCarving(slab) || slab.live === 0 || slab.live > this.#evacuateAt) continue;
      if (!this.#slabs.delete(slab.buf.buffer)) continue;
      for (const index of slab.owners) move(index, slab.buf.buffer);
    }
  }

  /** Forget every slab (the store dropped all its pages) and release the slab source. */
  reset(): void {
    this.#source.close();
    this.#slabs.clear();
    this.#sparse.clear();
    for (const c of this.#carving) {
      c.slab = undefined;
      c.next = 0;
    }
  }

  #isCarving(slab: Slab): boolean {
    return slab === this.#carving[0].slab || slab === this.#carving[1].slab;
  }
}
