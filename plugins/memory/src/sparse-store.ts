import { ExtentType, isAllZero, nbdError, type Extent } from '@nbdts/plugin-api';
import { freshSlabs, type SlabSource } from '@nbdts/plugin-api/engine';
import { PageAllocator, DEFAULT_SLAB_SIZE } from './page-allocator.ts';
import { DEFAULT_PAGE_SIZE, type PageStore, type StoreStats } from './store.ts';
import { ZEROS, pushZeros } from './zeros.ts';

export { DEFAULT_PAGE_SIZE };

export interface SparseStoreStats extends StoreStats {
  /** Slab size: pages are carved from slabs this big. */
  slabSize: number;
  /**
   * Bytes of slabs the store keeps alive: every slab holding a live page, plus
   * the one being carved. More than allocatedBytes after scattered frees, but
   * sparse slabs are evacuated, so at most about 4x (plus one slab).
   */
  slabBytes: number;
}

/**
 * A sparse byte array: storage exists only for pages that hold non-zero data.
 * An absent page reads as zeros.
 *
 * Reads return subarrays of the pages without copying. Later writes change
 * those pages in place, so a read reply still queued on a socket can see a
 * write that arrived after it. That is allowed: NBD gives no ordering between
 * requests in flight at the same time, and once a client has received a reply
 * the socket is done with the buffers. Freed page memory is never given to
 * another offset (see PageAllocator), so a reply never shows foreign data.
 */
export class SparseStore implements PageStore {
  readonly size: number;
  readonly pageSize: number;
  readonly #pages = new Map<number, Buffer>();
  readonly #alloc: PageAllocator;

  constructor(
    size: number,
    pageSize = DEFAULT_PAGE_SIZE,
    slabSize = DEFAULT_SLAB_SIZE,
    source: SlabSource = freshSlabs,
  ) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad store size ${size}`);
    if (!Number.isInteger(Math.log2(pageSize)) || pageSize < 512 || pageSize > ZEROS.length) {
      throw new RangeError(`page size must be a power of two from 512 to ${ZEROS.length}, got ${pageSize}`);
    }
    this.size = size;
    this.pageSize = pageSize;
    this.#alloc = new PageAllocator(pageSize, slabSize, size, source);
  }

  get slabSize(): number {
    return this.#alloc.slabSize;
  }

  stats(): SparseStoreStats {
    const pages = this.#pages.size;
    const slabSize = this.#alloc.slabSize;
    return {
      size: this.size,
      pageSize: this.pageSize,
      pages,
      allocatedBytes: pages * this.pageSize,
      slabSize,
      slabBytes: this.#alloc.slabs * slabSize,
    };
  }

  /** Drop every page (used by unload). */
  clear(): void {
    this.#pages.clear();
    this.#alloc.reset();
  }

  // The engine checks ranges before calling; this keeps a buggy caller from
  // creating pages past the end of the export.
  #check(count: number, offset: number, write: boolean): void {
    if (offset < 0 || count < 0 || offset + count > this.size) {
      throw nbdError(
        write ? 'ENOSPC' : 'EINVAL',
        `request [${offset}, +${count}) is outside the ${this.size}-byte export`,
      );
    }
  }

  /** `count` bytes from `offset`, as page subarrays and shared zeros, without copying. */
  read(count: number, offset: number): Buffer[] {
    this.#check(count, offset, false);
    const out: Buffer[] = [];
    const ps = this.pageSize;
    let pos = offset;
    const end = offset + count;
    let zeroRun = 0; // pending hole bytes, merged into as few buffers as possible
    while (pos < end) {
      const index = Math.floor(pos / ps);
      const inPage = pos - index * ps;
      const n = Math.min(ps - inPage, end - pos);
      const page = this.#pages.get(index);
      if (page === undefined) {
        zeroRun += n;
      } else {
        if (zeroRun > 0) {
          pushZeros(out, zeroRun);
          zeroRun = 0;
        }
        out.push(page.subarray(inPage, inPage + n));
      }
      pos += n;
    }
    if (zeroRun > 0) pushZeros(out, zeroRun);
    return out;
  }

  /** Copy `buf` in at `offset`. Zeros written to an absent page allocate nothing. */
  write(buf: Buffer, offset: number): void {
    this.#check(buf.length, offset, true);
    const ps = this.pageSize;
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const index = Math.floor(pos / ps);
      const inPage = pos - index * ps;
      const n = Math.min(ps - inPage, buf.length - done);
      let page = this.#pages.get(index);
      if (page === undefined) {
        if (!isAllZero(buf.subarray(done, done + n))) {
          page = this.#alloc.alloc(index, n === ps);
          buf.copy(page, inPage, done, done + n);
          this.#pages.set(index, page);
        }
      } else if (n === ps && isAllZero(buf.subarray(done, done + n))) {
        this.#free(index, page); // overwritten with zeros: give the memory back
      } else {
        buf.copy(page, inPage, done, done + n);
      }
      done += n;
    }
    this.#alloc.compact(this.#move);
  }

  /**
   * Make a range read as zeros: whole pages are freed, partial ones zeroed in
   * place (and freed if nothing else is left in them). Trim does the same: in
   * memory, discarding is as cheap as zeroing and gives predictable reads.
   */
  zero(count: number, offset: number): void {
    this.#check(count, offset, true);
    const ps = this.pageSize;
    const end = offset + count;
    let pos = offset;
    while (pos < end) {
      const index = Math.floor(pos / ps);
      const inPage = pos - index * ps;
      const n = Math.min(ps - inPage, end - pos);
      // Skipping an absent stretch page by page is fine: each step is one lookup.
      const page = this.#pages.get(index);
      if (page !== undefined) {
        if (n === ps) {
          this.#free(index, page);
        } else {
          page.fill(0, inPage, inPage + n);
          if (isAllZero(page)) this.#free(index, page);
        }
      }
      pos += n;
    }
    this.#alloc.compact(this.#move);
  }

  #free(index: number, page: Buffer): void {
    this.#pages.delete(index);
    this.#alloc.release(page);
  }

  /**
   * Give page `index` a fresh copy if it lives in slab `from` (which is being
   * evacuated). The old memory is never written again, so a reply still
   * queued with it keeps the data it was read with.
   */
  readonly #move = (index: number, from: ArrayBufferLike): void => {
    const page = this.#pages.get(index);
    if (page === undefined || page.buffer !== from) return;
    const fresh = this.#alloc.alloc(index, true); // the copy writes every byte of it
    page.copy(fresh);
    this.#pages.set(index, fresh);
  };

  /**
   * Allocation map of [offset, offset + count): absent pages are holes that
   * read as zeros, present pages are data. Adjacent pages of the same kind are
   * merged. Stops after `maxExtents` extents (the client asks again from there).
   */
  extents(count: number, offset: number, maxExtents = Infinity): Extent[] {
    this.#check(count, offset, false);
    const out: Extent[] = [];
    const ps = this.pageSize;
    const end = offset + count;
    let pos = offset;
    while (pos < end) {
      const index = Math.floor(pos / ps);
      const n = Math.min((index + 1) * ps, end) - pos;
      const type = this.#pages.has(index) ? ExtentType.DATA : ExtentType.SPARSE;
      const last = out[out.length - 1];
      if (last !== undefined && last.type === type) {
        last.length += n;
      } else {
        if (out.length === maxExtents) break;
        out.push({ offset: pos, length: n, type });
      }
      pos += n;
    }
    return out;
  }
}
