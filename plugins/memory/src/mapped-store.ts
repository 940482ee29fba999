import { ExtentType, isAllZero, nbdError, type Extent } from '@nbdts/plugin-api';
import { loadNative, type RegionOps } from './native.ts';
import { DEFAULT_PAGE_SIZE, type PageStore, type StoreStats } from './store.ts';
import { pushZeros } from './zeros.ts';

/** JS views of the mapping are windows this big (a Buffer may not exceed 4 GiB). */
export const WINDOW = 2 ** 30;

/** Pages are numbered in int32 bit arithmetic; more would need a bigger map anyway. */
const MAX_PAGES = 2 ** 31;

/**
 * A run of fresh pages at least this long is faulted in by one madvise
 * (MADV_POPULATE_WRITE) before the copy: taking the faults one 4 KiB page at
 * a time made a fresh 1 GiB write 2-4x slower. Below this, the syscall costs
 * more than it saves (a 4 KiB write).
 */
const POPULATE_MIN = 64 * 1024;

/** What another thread needs to attach to a store (structured-clonable). */
export interface MappedShared {
  /** The native region's id, valid in every thread of the process. */
  id: number;
  size: number;
  pageSize: number;
  /** One bit a page (set: holds data), then the count of pages set. */
  bitmap: SharedArrayBuffer;
}

/** A creator dropped without dispose() still releases its reference. */
const unreleased = new FinalizationRegistry<{ ops: RegionOps; id: number }>(({ ops, id }) => {
  try {
    ops.release(id);
  } catch {
    /* already released */
  }
});

/**
 * A sparse byte array in one anonymous memory mapping that every thread of
 * the process can reach (native/memregion.c), so connections served on worker
 * threads share the data. The kernel backs only the 4 KiB pieces written; a
 * store page (pageSize) is freed by madvise(MADV_DONTNEED), after which it
 * reads as zeros again.
 *
 * Which pages hold data is a bitmap in a SharedArrayBuffer. A bit is set
 * after the data is copied in and cleared before the memory is discarded, so
 * threads racing on a page can only ever report data over zeros, never a hole
 * over data.
 *
 * Reads return views of the mapping. A later write or discard at the same
 * offset shows through in a reply still queued on a socket (NBD leaves
 * requests in flight unordered), but a view only ever shows its own offsets:
 * memory never moves. Every view holds a reference on the mapping, so it is
 * unmapped only once no view is left in any thread.
 */
export class MappedStore implements PageStore {
  readonly size: number;
  readonly pageSize: number;
  readonly #ops: RegionOps;
  readonly #id: number;
  /** Page bits, then at [#countAt] the number of bits set. */
  readonly #bits: Int32Array;
  readonly #bitmap: SharedArrayBuffer;
  readonly #countAt: number;
  readonly #pages: number;
  /** Bytes mapped: whole pages, so a page view never passes the end. */
  readonly #mapped: number;
  readonly #osPage: number;
  /** This thread's window per GiB of the mapping, made on first use. */
  #windows: (Buffer | undefined)[] = [];
  /** Created the region: only the creator clears it and releases it. */
  readonly #owner: boolean;
  /** An attached store's reference on the region (see RegionOps.attach): held, never read. */
  // eslint-disable-next-line no-unused-private-class-members
  #handle: object | undefined;
  /** Other threads may use the region: see #zeroPart. */
  #shared: boolean;
  #populate = true;
  #disposed = false;

  private constructor(
    ops: RegionOps,
    id: number,
    size: number,
    pageSize: number,
    bitmap: SharedArrayBuffer,
    owner: boolean,
    handle: object | undefined,
  ) {
    this.#ops = ops;
    this.#id = id;
    this.size = size;
    this.pageSize = pageSize;
    this.#pages = Math.ceil(size / pageSize);
    this.#mapped = Math.max(1, this.#pages) * pageSize;
    this.#bitmap = bitmap;
    this.#bits = new Int32Array(bitmap);
    this.#countAt = this.#bits.length - 1;
    this.#osPage = ops.pageSize();
    this.#owner = owner;
    this.#handle = handle;
    this.#shared = !owner;
  }

  /**
   * Map a store of `size` bytes. Throws if the addon is missing, the page size
   * is not a power of two multiple of the OS page, or mmap fails (ENOMEM: more
   * than the address space, or strict overcommit).
   */
  static create(size: number, pageSize = DEFAULT_PAGE_SIZE, ops: RegionOps = nativeOps()): MappedStore {
    checkGeometry(size, pageSize, ops.pageSize());
    const pages = Math.ceil(size / pageSize);
    const id = ops.create(Math.max(1, pages) * pageSize);
    let bitmap: SharedArrayBuffer;
    try {
      bitmap = new SharedArrayBuffer((Math.ceil(pages / 32) + 1) * 4);
    } catch (err) {
      ops.release(id);
      throw err;
    }
    const store = new MappedStore(ops, id, size, pageSize, bitmap, true, undefined);
    unreleased.register(store, { ops, id }, store);
    return store;
  }

  /** A store in this thread over the region another thread's store shared. Throws once it was released. */
  static attach(shared: unknown, ops: RegionOps = nativeOps()): MappedStore {
    const s = shared as Partial<MappedShared> | null;
    if (
      s === null ||
      typeof s !== 'object' ||
      typeof s.id !== 'number' ||
      typeof s.size !== 'number' ||
      typeof s.pageSize !== 'number' ||
      !(s.bitmap instanceof SharedArrayBuffer)
    ) {
      throw new TypeError('memory: not a shared mapped store');
    }
    checkGeometry(s.size, s.pageSize, ops.pageSize());
    if (s.bitmap.byteLength !== (Math.ceil(Math.ceil(s.size / s.pageSize) / 32) + 1) * 4) {
      throw new RangeError('memory: the shared bitmap does not match the store size');
    }
    return new MappedStore(ops, s.id, s.size, s.pageSize, s.bitmap, false, ops.attach(s.id));
  }

  /** What attach() needs in another thread. From then on, other threads may write at any time. */
  share(): MappedShared {
    this.#live();
    this.#shared = true;
    return { id: this.#id, size: this.size, pageSize: this.pageSize, bitmap: this.#bitmap };
  }

  /** This store created the region (attached stores did not). */
  get owner(): boolean {
    return this.#owner;
  }

  stats(): StoreStats {
    const pages = Atomics.load(this.#bits, this.#countAt) >>> 0;
    return { size: this.size, pageSize: this.pageSize, pages, allocatedBytes: pages * this.pageSize };
  }

  /** Drop every page (unload, after other threads stopped). Only the creator may. */
  clear(): void {
    if (!this.#owner) throw new Error('memory: only the store that created the mapping can clear it');
    if (this.#disposed) return;
    this.#bits.fill(0);
    this.#ops.discard(this.#id, 0, this.#mapped);
  }

  /**
   * Let go of the region: the creator releases its reference (no more
   * attaching), an attached store its own. The memory goes once no view of it
   * is left in any thread. The store is unusable after this.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#windows = [];
    this.#handle = undefined;
    if (this.#owner) {
      unreleased.unregister(this);
      this.#ops.release(this.#id);
    }
  }

  #live(): void {
    if (this.#disposed) throw new Error('memory: the store was disposed');
  }

  // The engine checks ranges before calling; this keeps a buggy caller from
  // writing past the end of the export.
  #check(count: number, offset: number, write: boolean): void {
    this.#live();
    if (offset < 0 || count < 0 || offset + count > this.size) {
      throw nbdError(
        write ? 'ENOSPC' : 'EINVAL',
        `request [${offset}, +${count}) is outside the ${this.size}-byte export`,
      );
    }
  }

  #window(w: number): Buffer {
    let win = this.#windows[w];
    if (win === undefined) {
      const start = w * WINDOW;
      win = Buffer.from(this.#ops.window(this.#id, start, Math.min(WINDOW, this.#mapped - start)));
      this.#windows[w] = win;
    }
    return win;
  }

  /** A view of [from, to) of the mapping, which must lie in one window. */
  #view(from: number, to: number): Buffer {
    const w = Math.floor(from / WINDOW);
    return this.#window(w).subarray(from - w * WINDOW, to - w * WINDOW);
  }

  #has(page: number): boolean {
    return (Atomics.load(this.#bits, page >> 5) & (1 << (page & 31))) !== 0;
  }

  /** Set the bits of pages [from, to): after their data is in. */
  #mark(from: number, to: number): void {
    let added = 0;
    for (let p = from; p < to;) {
      const b = p & 31;
      const n = Math.min(32 - b, to - p);
      const mask = n === 32 ? -1 : ((1 << n) - 1) << b;
      added += popcount(mask & ~Atomics.or(this.#bits, p >> 5, mask));
      p += n;
    }
    if (added !== 0) Atomics.add(this.#bits, this.#countAt, added);
  }

  /** Free pages [from, to): clear their bits, then discard those that were set, in runs. */
  #free(from: number, to: number): void {
    let removed = 0;
    let runFrom = 0;
    let runTo = 0; // pending run of pages to discard (empty when equal)
    const extend = (a: number, z: number): void => {
      if (a !== runTo) {
        this.#discard(runFrom, runTo);
        runFrom = a;
      }
      runTo = z;
    };
    for (let p = from; p < to;) {
      const b = p & 31;
      const n = Math.min(32 - b, to - p);
      const mask = n === 32 ? -1 : ((1 << n) - 1) << b;
      const cleared = Atomics.and(this.#bits, p >> 5, ~mask) & mask;
      if (cleared === mask) {
        extend(p, p + n);
        removed += n;
      } else if (cleared !== 0) {
        for (let i = 0; i < n; i++) {
          if ((cleared & (1 << (b + i))) !== 0) {
            extend(p + i, p + i + 1);
            removed++;
          }
        }
      }
      p += n;
    }
    this.#discard(runFrom, runTo);
    if (removed !== 0) Atomics.sub(this.#bits, this.#countAt, removed);
  }

  #discard(from: number, to: number): void {
    if (to > from) this.#ops.discard(this.#id, from * this.pageSize, (to - from) * this.pageSize);
  }

  /** `count` bytes from `offset`: views of the mapping for data, of shared zeros for holes. */
  read(count: number, offset: number): Buffer[] {
    this.#check(count, offset, false);
    const out: Buffer[] = [];
    const ps = this.pageSize;
    const end = offset + count;
    let zeroRun = 0; // pending hole bytes
    let dataFrom = -1; // start of the pending data run, -1: none
    for (let pos = offset; pos < end;) {
      const index = Math.floor(pos / ps);
      const next = Math.min((index + 1) * ps, end);
      if (this.#has(index)) {
        if (zeroRun > 0) {
          pushZeros(out, zeroRun);
          zeroRun = 0;
        }
        if (dataFrom >= 0 && pos % WINDOW === 0) {
          out.push(this.#view(dataFrom, pos));
          dataFrom = -1;
        }
        if (dataFrom < 0) dataFrom = pos;
      } else {
        if (dataFrom >= 0) {
          out.push(this.#view(dataFrom, pos));
          dataFrom = -1;
        }
        zeroRun += next - pos;
      }
      pos = next;
    }
    if (dataFrom >= 0) out.push(this.#view(dataFrom, end));
    if (zeroRun > 0) pushZeros(out, zeroRun);
    return out;
  }

  /**
   * Copy `buf` in at `offset`. Zeros written to an absent page allocate
   * nothing; a whole page overwritten with zeros is freed. Consecutive pages
   * that take data are copied by one buf.copy.
   */
  write(buf: Buffer, offset: number): void {
    this.#check(buf.length, offset, true);
    const ps = this.pageSize;
    let runFrom = 0; // pending copy: buf[runFrom, done), into pages [runPage, index)
    let runPage = Math.floor(offset / ps);
    let fresh = 0; // bytes of it going into absent pages
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const index = Math.floor(pos / ps);
      const pageStart = index * ps;
      const n = Math.min(pageStart + ps - pos, buf.length - done);
      const has = this.#has(index);
      const copy = has
        ? !(n === Math.min(ps, this.size - pageStart) && isAllZero(buf.subarray(done, done + n)))
        : !isAllZero(buf.subarray(done, done + n));
      if (!copy || pageStart % WINDOW === 0) {
        // a page left out, or a new window: the run so far goes in
        this.#copy(buf, runFrom, done, offset, runPage, index, fresh);
        runFrom = copy ? done : done + n;
        runPage = copy ? index : index + 1;
        fresh = 0;
        if (has && !copy) this.#free(index, index + 1); // overwritten with zeros: give the memory back
      }
      if (copy && !has) fresh += n;
      done += n;
    }
    this.#copy(buf, runFrom, done, offset, runPage, Math.floor((offset + done - 1) / ps) + 1, fresh);
  }

  /** Copy buf[from, to) to `offset + from` (pages [page, endPage)), then mark those pages as data. */
  #copy(buf: Buffer, from: number, to: number, offset: number, page: number, endPage: number, fresh: number): void {
    if (to <= from) return;
    const pos = offset + from;
    if (fresh >= POPULATE_MIN && this.#populate) this.#prefault(pos, to - from);
    const w = Math.floor(pos / WINDOW);
    buf.copy(this.#window(w), pos - w * WINDOW, from, to);
    this.#mark(page, endPage);
  }

  /** Fault [pos, +length) in with one call rather than a trap per 4 KiB page. */
  #prefault(pos: number, length: number): void {
    const from = Math.floor(pos / this.#osPage) * this.#osPage;
    const to = Math.ceil((pos + length) / this.#osPage) * this.#osPage;
    try {
      this.#ops.populate(this.#id, from, to - from);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EINVAL') {
        this.#populate = false;
        return;
      } // kernel < 5.14
      throw nbdError('ENOMEM', `memory: cannot allocate memory for the write: ${(err as Error).message}`, err);
    }
  }

  /**
   * Make a range read as zeros: whole pages are freed, partial ones zeroed in
   * place. Trim does the same: in memory, discarding is as cheap as zeroing.
   */
  zero(count: number, offset: number): void {
    this.#check(count, offset, true);
    if (count === 0) return;
    const ps = this.pageSize;
    const end = offset + count;
    const head = Math.floor(offset / ps);
    if (offset !== head * ps) this.#zeroPart(head, offset, Math.min(end, (head + 1) * ps));
    // The last page counts as whole when the range reaches the end of the export.
    const wholeFrom = Math.ceil(offset / ps);
    const wholeTo = end === this.size ? this.#pages : Math.floor(end / ps);
    if (wholeTo > wholeFrom) this.#free(wholeFrom, wholeTo);
    const tail = Math.floor(end / ps);
    if (end !== this.size && end !== tail * ps && tail >= wholeFrom) this.#zeroPart(tail, tail * ps, end);
  }

  /**
   * Zero [from, to) of page `index` in place. A page left all zero is freed,
   * but only while no other thread can use the store: between the check and
   * the discard another thread could write elsewhere in the page, and the
   * discard would lose that write. Shared, the page stays (reported as data).
   */
  #zeroPart(index: number, from: number, to: number): void {
    if (!this.#has(index)) return;
    const pageStart = index * this.pageSize;
    this.#view(from, to).fill(0);
    if (!this.#shared && isAllZero(this.#view(pageStart, pageStart + this.pageSize))) this.#free(index, index + 1);
  }

  /**
   * Allocation map of [offset, offset + count): absent pages are holes that
   * read as zeros, present pages are data, adjacent ones of a kind merged.
   * Stops after `maxExtents` extents (the client asks again from there).
   */
  extents(count: number, offset: number, maxExtents = Infinity): Extent[] {
    this.#check(count, offset, false);
    const out: Extent[] = [];
    if (count === 0 || maxExtents <= 0) return out;
    const ps = this.pageSize;
    const end = offset + count;
    const last = Math.floor((end - 1) / ps);
    let type = -1; // of the pending extent, from `start`
    let start = offset;
    for (let p = Math.floor(offset / ps); p <= last;) {
      let t: number;
      let n = 1;
      const word = (p & 31) === 0 && p + 32 <= last + 1 ? Atomics.load(this.#bits, p >> 5) : 1;
      if (word === 0 || word === -1) {
        // 32 pages of a kind: a 1 TiB export has 16M pages
        t = word === 0 ? ExtentType.SPARSE : ExtentType.DATA;
        n = 32;
      } else {
        t = this.#has(p) ? ExtentType.DATA : ExtentType.SPARSE;
      }
      if (t !== type) {
        if (type !== -1) {
          out.push({ offset: start, length: p * ps - start, type });
          if (out.length === maxExtents) return out;
          start = p * ps;
        }
        type = t;
      }
      p += n;
    }
    out.push({ offset: start, length: end - start, type });
    return out;
  }
}

function nativeOps(): RegionOps {
  const loaded = loadNative();
  if (loaded.ops === null) throw new Error(`memory: ${loaded.error}`);
  return loaded.ops;
}

function checkGeometry(size: number, pageSize: number, osPage: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad store size ${size}`);
  if (!Number.isInteger(Math.log2(pageSize)) || pageSize < osPage || pageSize > WINDOW) {
    throw new RangeError(
      `page size must be a power of two from the OS page size ${osPage} to ${WINDOW}, got ${pageSize}`,
    );
  }
  if (Math.ceil(size / pageSize) > MAX_PAGES) {
    throw new RangeError(`a mapped store holds at most ${MAX_PAGES} pages of ${pageSize} bytes`);
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
