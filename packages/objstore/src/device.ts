import { ConfigError, ExtentType, formatSize, lent, log, NbdError, type Extent } from '@nbdts/plugin-api';
import type { ObjectStore } from './store.ts';
import type { Layout } from './layout.ts';
import { ChunkCache, type Entry, type RunShare } from './cache.ts';
import { ObjectIO } from './io.ts';
import { DEFAULT_RETRY, withRetry, type RetryPolicy } from './retry.ts';
import { emptyStats, type DeviceStats } from './stats.ts';
import { isAllZero } from '@nbdts/plugin-api';
import { bigBuffer, hold, lendForever, own, unhold } from './buffers.ts';

/** Holes in readViews: shared by every reply, never written. */
const ZEROS = Buffer.alloc(1024 * 1024);

/** A private copy of b, in memory that is already faulted in when it is big. */
function copyOf(b: Buffer): Buffer {
  const c = bigBuffer(b.length, false); // every byte is copied over
  b.copy(c);
  return c;
}

export interface DeviceOptions {
  /** Refuse writes (EROFS) even on a writable layout, e.g. a read-only export. Default false. */
  readOnly?: boolean;
  /** Bytes of object data kept in memory (clean + dirty). Default 256 MiB, raised to 2 objects if smaller. */
  cacheSize?: number;
  /** Bytes of dirty (not yet stored) data; writers wait above it. Default half the cache, at least one object. */
  maxDirty?: number;
  /** Store every write before it completes (no write-back). Default false. */
  writethrough?: boolean;
  /** Dirty data is written back in the background this long after it became dirty. Default 1000 ms. */
  writebackDelayMs?: number;
  /**
   * Store a chunk as soon as it has taken a whole chunk's worth of writes since
   * its last store (a sequential writer is done with it), not only at the
   * dirty threshold or the timer. Default true.
   */
  streamWrites?: boolean;
  /** Store requests in flight at once across the device. Default 16. */
  maxInFlight?: number;
  /** Objects to fetch ahead of sequential reads (0 = off). Default 4, at most a quarter of the cache. */
  readahead?: number;
  /** Retries of transient failures. Default 6 retries, 100 ms doubling to 10 s, full jitter, 60 s budget. */
  retry?: Partial<RetryPolicy>;
  /** Time limit per store request attempt (0 = none). Default 120 s. */
  requestTimeoutMs?: number;
  /** Check that a PUT's ETag is the MD5 of the data. Default true; turn off for stores whose ETags are not MD5s. */
  verifyEtag?: boolean;
  /**
   * Trust the start-up listing: objects it did not show are read as zeros
   * without a GET. Right for strongly consistent stores (S3); leave off where
   * listings may lag behind writes (Swift). Default false.
   */
  trustListing?: boolean;
}

export const DEFAULT_CACHE_SIZE = 256 * 1024 * 1024;
export const DEFAULT_MAX_IN_FLIGHT = 16;
export const DEFAULT_READAHEAD = 4;
/** Sequential readers told apart by readahead. */
const READ_STREAMS = 8;
/**
 * Readahead of a ranged layout (chunks that are ranges of one object) asks
 * for up to this much in one GET: 4 MiB GETs read a big object 15-25% faster
 * than 1 MiB ones (RGW, measured), while random reads still fetch one chunk.
 */
const RUN_BYTES = 4 * 1024 * 1024;

interface Load {
  promise: Promise<void>;
  /** A writer replaced the chunk while the GET was running: its result must not enter the cache. */
  stale: boolean;
  /** Requests waiting for it: the entry is inserted pinned once for each. */
  waiters: number;
  /** The entry inserted, or null (stale). */
  entry: Entry | null;
}

interface Span {
  /** Chunk index. */
  i: number;
  /** Offset within the chunk. */
  off: number;
  len: number;
  /** Offset within the request. */
  pos: number;
}

/** Who woke a writer waiting for dirty space: a store that worked or one that failed. */
type Waker = (ok: boolean) => void;

/**
 * A block device on an object store. Chunks (objects, or ranges of one
 * object) are cached; writes change the cache and are stored in the
 * background (write-back) or before they complete (writethrough or FUA).
 *
 * Concurrency: a chunk is fetched once however many requests want it
 * (shared load), and every change to cached bytes happens synchronously
 * after that, so concurrent writes to one chunk cannot lose each other.
 * Stores of one chunk never overlap (so they cannot reach the store out of
 * order), and a chunk changed during its store stays dirty.
 */
export class ObjectDevice {
  readonly store: ObjectStore;
  readonly layout: Layout;
  readonly size: number;
  readonly chunkSize: number;
  readonly readOnly: boolean;
  readonly maxDirty: number;
  readonly writethrough: boolean;
  readonly readahead: number;

  readonly #stats = emptyStats();
  readonly #io: ObjectIO;
  readonly #cache: ChunkCache;
  readonly #loads = new Map<number, Load>();
  /** Chunks whose object may exist in the store: listing + what we stored or saw. */
  readonly #present = new Set<number>();
  /** Chunks whose presence we saw ourselves (GET, PUT, DELETE), not only in the listing. */
  readonly #confirmed = new Set<number>();
  readonly #trustListing: boolean;
  readonly #retry: RetryPolicy;
  readonly #writebackDelayMs: number;
  readonly #streamWrites: boolean;
  #roomWaiters: Waker[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writebackRunning = false;
  #writebackAgain = false;
  #writebackFailures = 0;
  /** Where recent reads ended, newest last: one per sequential reader (see #readaheadAfter). */
  readonly #readEnds: number[] = [];
  /** Chunks per readahead GET: 1 unless the layout has locateRun. */
  readonly #run: number;
  #closed = false;

  /** Use ObjectDevice.open, which also reads the listing. */
  constructor(store: ObjectStore, layout: Layout, options: DeviceOptions = {}) {
    this.store = store;
    this.layout = layout;
    this.size = layout.size;
    this.chunkSize = layout.chunkSize;
    this.readOnly = layout.readOnly || (options.readOnly ?? false);
    const cacheSize = Math.max(options.cacheSize ?? DEFAULT_CACHE_SIZE, 2 * layout.chunkSize);
    this.maxDirty = Math.min(cacheSize, Math.max(options.maxDirty ?? Math.floor(cacheSize / 2), layout.chunkSize));
    this.writethrough = options.writethrough ?? false;
    const runMax = layout.locateRun ? Math.max(1, Math.floor(RUN_BYTES / layout.chunkSize)) : 1;
    // By default a ranged layout looks two runs ahead, so one GET arrives while the other is read.
    const readahead = options.readahead ?? Math.max(DEFAULT_READAHEAD, 2 * runMax);
    this.readahead = Math.min(readahead, Math.floor(cacheSize / 4 / layout.chunkSize));
    this.#run = Math.min(runMax, Math.max(1, Math.floor(this.readahead / 2)));
    this.#writebackDelayMs = options.writebackDelayMs ?? 1000;
    this.#streamWrites = options.streamWrites ?? true;
    this.#trustListing = options.trustListing ?? false;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#cache = new ChunkCache(cacheSize, (i) => layout.chunkLength(i), this.#stats);
    this.#io = new ObjectIO(
      store,
      layout,
      {
        maxInFlight: options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT,
        retry: this.#retry,
        requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
        verifyEtag: options.verifyEtag ?? true,
      },
      this.#stats,
    );
  }

  /** Make a device and read the listing (which chunks exist). Throws ConfigError when the store cannot be listed. */
  static async open(store: ObjectStore, layout: Layout, options: DeviceOptions = {}): Promise<ObjectDevice> {
    const dev = new ObjectDevice(store, layout, options);
    await dev.#scan();
    return dev;
  }

  get cacheSize(): number {
    return this.#cache.capacity;
  }

  async #scan(): Promise<void> {
    const prefix = this.layout.listPrefix;
    if (prefix === undefined) return;
    let found: number[] = [];
    try {
      await withRetry(
        this.#retry,
        async () => {
          found = [];
          for await (const info of this.store.list(prefix)) {
            const i = this.layout.indexOf(info.key);
            if (i !== null) found.push(i);
          }
        },
        (err, attempt) => {
          this.#stats.retries++;
          log.debug(
            `objstore: ${this.store.description}: listing ${prefix}: retry ${attempt}: ${(err as Error).message}`,
          );
        },
      );
    } catch (err) {
      throw new ConfigError(
        `${this.store.description}: cannot list objects under '${prefix}': ${(err as Error).message}`,
        { cause: err },
      );
    }
    for (const i of found) this.#present.add(i);
    log.debug(
      `objstore: ${this.store.description}: ${found.length} of ${this.layout.chunks} objects exist; ` +
        `object ${formatSize(this.chunkSize)}, cache ${formatSize(this.cacheSize)}, max dirty ${formatSize(this.maxDirty)}`,
    );
  }

  // ---- requests ---------------------------------------------------------

  /** Fill buf from offset. */
  async read(buf: Buffer, offset: number): Promise<void> {
    this.#check(buf.length, offset, false);
    const spans = this.#spans(offset, buf.length);
    const sequential = this.#readaheadAfter(offset, buf.length);
    await Promise.all(
      spans.map((s) =>
        this.#withEntry(s.i, (e) => {
          if (e.data) e.data.copy(buf, s.pos, s.off, s.off + s.len);
          else buf.fill(0, s.pos, s.pos + s.len);
        }),
      ),
    );
    if (sequential) this.#passed(spans);
  }

  /**
   * A sequential reader has read to the end of these chunks: they count as
   * streamed (ChunkCache.streamedClean), so a long scan of the disk does not
   * push out what other readers use, and its memory is reused as it goes.
   */
  #passed(spans: readonly Span[]): void {
    for (const s of spans) {
      if (s.off + s.len !== this.layout.chunkLength(s.i)) continue;
      const e = this.#cache.peek(s.i);
      if (!e || e.scanned) continue;
      e.scanned = true;
      this.#cache.streamedClean(e);
    }
  }

  /**
   * `count` bytes from `offset` as views of the cached objects (and shared
   * zeros for holes), without copying them out. A view may show a write that
   * lands while the reply is still queued on the socket, which NBD allows (it
   * orders only completed requests). The memory of a chunk viewed this way is
   * never reused for other data, so a view never shows foreign data; see
   * lendViews for views whose memory comes back.
   */
  readViews(count: number, offset: number): Promise<Buffer[]> {
    return this.#views(count, offset, lendForever);
  }

  /**
   * As readViews, for the NBD read callback: the result is marked with
   * plugin-api's lent(), and the chunks' memory may be reused only after the
   * engine has released it (the reply has left).
   */
  async lendViews(count: number, offset: number): Promise<Buffer[]> {
    const held: Buffer[] = [];
    const views = await this.#views(count, offset, (b) => {
      hold(b);
      held.push(b);
    });
    return lent(views, () => {
      for (const b of held) unhold(b);
    });
  }

  async #views(count: number, offset: number, keep: (chunk: Buffer) => void): Promise<Buffer[]> {
    this.#check(count, offset, false);
    const spans = this.#spans(offset, count);
    const sequential = this.#readaheadAfter(offset, count);
    const parts = await Promise.all(
      spans.map((s) =>
        this.#withEntry(s.i, (e): Buffer | number => {
          if (!e.data) return s.len;
          keep(e.data); // at once: the cache may drop the chunk before the reply has left
          return e.data.subarray(s.off, s.off + s.len);
        }),
      ),
    );
    if (sequential) this.#passed(spans);
    const out: Buffer[] = [];
    for (const p of parts) {
      if (typeof p !== 'number') {
        out.push(p);
        continue;
      }
      for (let left = p; left > 0; left -= ZEROS.length) out.push(ZEROS.subarray(0, Math.min(left, ZEROS.length)));
    }
    return out;
  }

  /** Write buf at offset. With fua (or writethrough), resolves only once the touched objects are stored. */
  async write(buf: Buffer, offset: number, opts: { fua?: boolean } = {}): Promise<void> {
    this.#check(buf.length, offset, true);
    const touched = await Promise.all(
      this.#spans(offset, buf.length).map((s) => this.#writeSpan(s.i, s.off, buf.subarray(s.pos, s.pos + s.len))),
    );
    if (opts.fua || this.writethrough) await this.#storeNow(touched, 'FUA write');
  }

  /** Write zeros: whole objects are deleted, partial ends are zeroed by read-modify-write. */
  async zero(count: number, offset: number, opts: { fua?: boolean } = {}): Promise<void> {
    await this.#zeroRange(count, offset, false, opts.fua ?? false);
  }

  /** Discard: like zero, but an object the listing did not show is not deleted again. */
  async trim(count: number, offset: number, opts: { fua?: boolean } = {}): Promise<void> {
    await this.#zeroRange(count, offset, true, opts.fua ?? false);
  }

  /**
   * Resolves once every object dirty when it was called is stored and
   * acknowledged (ETag checked). Fails with EIO if any of them could not be
   * stored; those stay dirty and are tried again later.
   */
  async flush(): Promise<void> {
    await this.#storeNow([...this.#cache.dirty], 'flush');
    this.#writebackFailures = 0;
  }

  /**
   * Allocation status of the chunks covering [offset, offset+count): objects
   * that do not exist (or are all zero in the cache) are HOLE|ZERO. Starts at
   * the chunk boundary at or before offset.
   */
  extents(count: number, offset: number, opts: { one?: boolean } = {}): Extent[] {
    this.#check(count, offset, false);
    const out: Extent[] = [];
    if (count === 0) return out;
    const first = Math.floor(offset / this.chunkSize);
    const last = Math.floor((offset + count - 1) / this.chunkSize);
    for (let i = first; i <= last; i++) {
      const type = this.#isHole(i) ? ExtentType.SPARSE : ExtentType.DATA;
      const len = this.layout.chunkLength(i);
      const prev = out[out.length - 1];
      if (prev && prev.type === type) prev.length += len;
      else {
        if (prev && opts.one) break;
        out.push({ offset: i * this.chunkSize, length: len, type });
      }
    }
    return out;
  }

  /** Fetch a range into the cache (NBD_CMD_CACHE). Only as much as fits in a quarter of the cache. */
  async prefetch(count: number, offset: number): Promise<void> {
    this.#check(count, offset, false);
    const spans = this.#spans(offset, count).slice(0, Math.max(1, Math.floor(this.cacheSize / 4 / this.chunkSize)));
    await Promise.all(spans.map((s) => this.#withEntry(s.i, () => {})));
  }

  /** A snapshot of the counters. */
  stats(): DeviceStats {
    return {
      ...this.#stats,
      cachedBytes: this.#cache.bytes,
      dirtyBytes: this.#cache.dirtyBytes,
      dirtyChunks: this.#cache.dirty.size,
    };
  }

  /** Forget clean cached chunks (tests; or after the store was changed behind our back). */
  dropCache(): void {
    this.#cache.dropClean();
  }

  /** Stop background write-back and flush. Throws EIO (after logging) if data could not be stored. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
    log.debug(`objstore: ${this.store.description}: closed`, { ...this.stats() });
  }

  // ---- chunks -----------------------------------------------------------

  #check(count: number, offset: number, write: boolean): void {
    if (write && this.readOnly) throw new NbdError('EROFS', `${this.store.description}: the device is read-only`);
    if (write && this.#closed) throw new NbdError('ESHUTDOWN', `${this.store.description}: the device is closed`);
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(count) ||
      offset < 0 ||
      count < 0 ||
      offset + count > this.size
    ) {
      throw new NbdError('EINVAL', `request ${offset}+${count} is outside the device (${this.size} bytes)`);
    }
  }

  #spans(offset: number, count: number): Span[] {
    const spans: Span[] = [];
    let pos = 0;
    while (pos < count) {
      const at = offset + pos;
      const i = Math.floor(at / this.chunkSize);
      const off = at - i * this.chunkSize;
      const len = Math.min(count - pos, this.layout.chunkLength(i) - off);
      spans.push({ i, off, len, pos });
      pos += len;
    }
    return spans;
  }

  /** True when chunk i is certainly absent from the store (so it reads as zeros without a GET). */
  #knownAbsent(i: number): boolean {
    if (this.layout.listPrefix === undefined) return false; // every chunk exists
    return !this.#present.has(i) && (this.#trustListing || this.#confirmed.has(i));
  }

  #isHole(i: number): boolean {
    if (this.layout.listPrefix === undefined) return false;
    const e = this.#cache.peek(i);
    return e ? e.data === null : !this.#present.has(i);
  }

  /**
   * Run `use` on chunk i's cache entry, fetching the chunk first (once,
   * however many requests ask). `use` runs synchronously, so what it changes
   * cannot interleave with another request; an entry fetched for us is pinned
   * until then, so a small cache cannot evict it under our feet.
   */
  async #withEntry<T>(i: number, use: (e: Entry) => T): Promise<T> {
    for (;;) {
      const cached = this.#cache.get(i);
      if (cached) {
        this.#stats.cacheHits++;
        if (cached.run && cached.run.alive < cached.run.size) this.#ownCopy(cached);
        return use(cached);
      }
      if (this.#knownAbsent(i) && !this.#loads.has(i)) return use(this.#cache.insert(i, null));
      let load = this.#loads.get(i);
      if (load) this.#stats.cacheHits++;
      else {
        this.#stats.cacheMisses++;
        load = this.#startLoad(i);
      }
      load.waiters++;
      await load.promise;
      const e = load.entry;
      // Null: a writer replaced the chunk during the GET; its entry is in the cache.
      if (e === null) continue;
      try {
        return use(e);
      } finally {
        e.pins--;
        this.#cache.evict();
      }
    }
  }

  /** An entry sharing a run's buffer whose siblings are leaving: its own copy, so the run's memory can go. */
  #ownCopy(e: Entry): void {
    const own = copyOf(e.data!);
    const wasFrozen = e.frozen === e.data;
    this.#cache.setData(e, own); // leaves the run
    if (wasFrozen) e.frozen = own;
  }

  /** Fetch chunk i, or take its bytes from `data` (its share of a readahead run, `run`). */
  #startLoad(i: number, data?: Promise<Buffer | null>, run?: RunShare): Load {
    const load: Load = { promise: Promise.resolve(), stale: false, waiters: 0, entry: null };
    const done = () => {
      if (this.#loads.get(i) === load) this.#loads.delete(i);
    };
    load.promise = (data ?? this.#io.getChunk(i)).then(
      (data) => {
        done();
        // Stale, or (defensively) someone else's entry is already there: never overwrite a newer entry.
        if (load.stale || this.#cache.peek(i)) {
          if (run) run.alive--;
          return;
        }
        if (data === null) this.#present.delete(i);
        else this.#present.add(i);
        this.#confirmed.add(i);
        load.entry = this.#cache.insert(i, data, load.waiters, run ?? null);
        // The buffer came from the adapter, which may still use it: copy before the first change.
        load.entry.frozen = data;
      },
      (err: unknown) => {
        done();
        throw err;
      },
    );
    this.#loads.set(i, load);
    return load;
  }

  /** A new entry for a chunk being replaced without reading it: a GET in flight must not overwrite it. */
  #create(i: number): Entry {
    const load = this.#loads.get(i);
    if (load) load.stale = true;
    return this.#cache.insert(i, null);
  }

  /** Room for one more dirty chunk? (One is always allowed, so a tiny maxDirty cannot deadlock.) */
  #roomFor(i: number): boolean {
    return this.#cache.dirtyBytes === 0 || this.#cache.dirtyBytes + this.layout.chunkLength(i) <= this.maxDirty;
  }

  async #waitForRoom(i: number): Promise<void> {
    // Room may have appeared while the caller awaited: a wake-up already gone would never come again.
    if (this.#roomFor(i)) return;
    const ok = await new Promise<boolean>((resolve) => {
      this.#roomWaiters.push(resolve);
      void this.#writeback();
    });
    if (!ok) {
      throw new NbdError(
        'EIO',
        `${this.store.description}: storing dirty data is failing and the dirty limit ` +
          `(${formatSize(this.maxDirty)}) is reached; not accepting more writes until it recovers`,
      );
    }
  }

  #wake(ok: boolean): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const w of waiters) w(ok);
  }

  /** Make e.data a private, writable buffer (allocating zeros for an all-zero chunk). */
  #writable(e: Entry): Buffer {
    if (e.data === null) this.#cache.setData(e, own(bigBuffer(this.layout.chunkLength(e.index))));
    else if (e.data === e.frozen) this.#cache.setData(e, own(copyOf(e.data)));
    return e.data!;
  }

  #changed(e: Entry): void {
    e.gen++;
    this.#cache.markDirty(e);
    // Past half the limit, start now, unless write-back is failing: then keep to the backoff timer
    // (writers that need room still kick it).
    if (this.#cache.dirtyBytes * 2 >= this.maxDirty && this.#writebackFailures === 0) void this.#writeback(false);
    else this.#schedule(this.#writebackDelayMs);
  }

  async #writeSpan(i: number, off: number, src: Buffer): Promise<Entry> {
    const full = off === 0 && src.length === this.layout.chunkLength(i);
    const apply = (e: Entry): void => {
      if (full && (e.data === null || e.data === e.frozen)) {
        this.#cache.setData(e, own(copyOf(src))); // src is only valid until the request completes
      } else {
        src.copy(this.#writable(e), off);
      }
      e.written += src.length;
      this.#changed(e);
      this.#streamOut(e);
    };
    for (;;) {
      if (full) {
        // A whole-chunk write needs no read.
        const e = this.#cache.get(i);
        if (e?.dirty || this.#roomFor(i)) {
          const entry = e ?? this.#create(i);
          apply(entry);
          return entry;
        }
      } else {
        // A partial write reads, modifies, and leaves the chunk dirty.
        const done = await this.#withEntry(i, (e) => {
          if (!e.dirty && !this.#roomFor(i)) return null;
          apply(e);
          return e;
        });
        if (done) return done;
      }
      await this.#waitForRoom(i);
    }
  }

  /**
   * Streaming write-back: a chunk that has taken a whole chunk's worth of
   * writes since its last store (a sequential writer filled it, from any
   * number of connections and in any order) is stored now instead of waiting
   * for the dirty threshold or the timer, so PUTs run while the writer goes
   * on and a long copy keeps the store busy from its first object. Scattered
   * small writes rarely add up to a chunk, so they still coalesce in the cache.
   */
  #streamOut(e: Entry): void {
    if (
      !this.#streamWrites ||
      this.writethrough ||
      e.written < this.layout.chunkLength(e.index) ||
      this.#writebackFailures > 0
    )
      return;
    e.written = 0;
    this.#store(e).then(
      () => this.#cache.streamedClean(e),
      (err: unknown) => {
        // It stays dirty; write-back or the next flush tries again and reports a lasting failure.
        this.#stats.writebackErrors++;
        log.debug(`objstore: streaming store of chunk ${e.index} failed: ${(err as Error).message}`);
        this.#schedule(this.#writebackDelayMs);
      },
    );
  }

  async #zeroRange(count: number, offset: number, trim: boolean, fua: boolean): Promise<void> {
    this.#check(count, offset, true);
    const touched = await Promise.all(this.#spans(offset, count).map((s) => this.#zeroSpan(s.i, s.off, s.len, trim)));
    if (fua || this.writethrough)
      await this.#storeNow(
        touched.filter((e) => e !== null),
        trim ? 'FUA trim' : 'FUA zero',
      );
  }

  /** Zero part of a chunk; returns the entry if it has a change to store. */
  async #zeroSpan(i: number, off: number, len: number, trim: boolean): Promise<Entry | null> {
    const full = off === 0 && len === this.layout.chunkLength(i);
    // Undefined: wait for dirty space and try again.
    const apply = (e: Entry | undefined): Entry | null | undefined => {
      if (e && e.data === null) return e.dirty ? e : null; // already zeros
      if (!e?.dirty && !this.#roomFor(i)) return undefined;
      const entry = e ?? this.#create(i);
      if (full) this.#cache.setData(entry, null);
      else this.#writable(entry).fill(0, off, off + len);
      this.#changed(entry);
      return entry;
    };
    for (;;) {
      let done: Entry | null | undefined;
      if (full) {
        const e = this.#cache.get(i);
        // Nothing stored and nothing cached: already zeros. (Trim is advisory, so the listing is enough.)
        if (!e && (trim ? !this.#present.has(i) : this.#knownAbsent(i))) return null;
        done = apply(e);
      } else {
        done = await this.#withEntry(i, apply);
      }
      if (done !== undefined) return done;
      await this.#waitForRoom(i);
    }
  }

  // ---- storing ----------------------------------------------------------

  /** Store these entries now (each if still dirty); EIO if any fails. */
  async #storeNow(entries: readonly Entry[], what: string): Promise<void> {
    if (entries.length === 0) return;
    const results = await Promise.allSettled(entries.map((e) => this.#store(e)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      const first = (failed[0]!.reason as Error).message;
      throw new NbdError(
        'EIO',
        `${what}: ${failed.length} of ${entries.length} objects could not be stored (they stay dirty); first: ${first}`,
      );
    }
  }

  /** Store e if it is dirty, after any store of it already running. */
  async #store(e: Entry): Promise<void> {
    while (e.storing) await e.storing.catch(() => {});
    if (!e.dirty) return;
    const p = this.#doStore(e);
    e.storing = p;
    try {
      await p;
    } finally {
      if (e.storing === p) e.storing = null;
    }
  }

  async #doStore(e: Entry): Promise<void> {
    const i = e.index;
    const gen = e.gen;
    const data = e.data;
    e.frozen = data;
    e.written = 0; // what is written from now on counts toward the next store
    hold(data); // a write may replace e.data while the PUT still sends this
    let ok = false;
    try {
      const zero = data === null || isAllZero(data);
      if (zero) {
        if (!this.#knownAbsent(i)) await this.#io.deleteChunk(i);
        this.#present.delete(i);
      } else {
        this.#present.add(i); // it may exist from the moment the PUT starts, even if it fails
        await this.#io.putChunk(i, data);
      }
      this.#confirmed.add(i);
      e.error = null;
      ok = true;
      if (e.gen === gen) {
        this.#cache.markClean(e);
        if (zero && data !== null) this.#cache.setData(e, null); // keep zeros for free
      }
    } catch (err) {
      e.error = err as Error;
      throw err;
    } finally {
      unhold(data);
      if (e.frozen === data) e.frozen = null;
      this.#wake(ok);
      if (!e.dirty) this.#cache.evict();
    }
  }

  // ---- background write-back --------------------------------------------

  #schedule(delayMs: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#writeback();
    }, delayMs);
    this.#timer.unref();
  }

  /**
   * A chunk a writer is part way through (some writes since its last store
   * began, not yet a chunk's worth): streaming write-back will store it once
   * it is full, so the dirty-threshold write-back leaves it alone rather than
   * store it twice, half-written first.
   */
  #filling(e: Entry): boolean {
    return this.#streamWrites && e.written > 0 && e.written < this.layout.chunkLength(e.index);
  }

  /**
   * Store what is dirty now; failures are logged, kept on the entries and
   * retried with growing delay. `all` false (the dirty threshold): skip
   * chunks being filled, unless writers are waiting for room.
   */
  async #writeback(all = true): Promise<void> {
    if (this.#writebackRunning) {
      this.#writebackAgain = true;
      return;
    }
    this.#writebackRunning = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let failed: number;
    try {
      do {
        this.#writebackAgain = false;
        const everything = all || this.#roomWaiters.length > 0;
        const batch = [...this.#cache.dirty].filter((e) => everything || !this.#filling(e));
        const results = await Promise.allSettled(batch.map((e) => this.#store(e)));
        failed = results.filter((r) => r.status === 'rejected').length;
        this.#stats.writebackErrors += failed;
      } while (this.#writebackAgain && failed === 0);
    } finally {
      this.#writebackRunning = false;
    }
    if (failed > 0) {
      this.#writebackFailures++;
      log.warn(
        `objstore: ${this.store.description}: background write-back: ${failed} objects could not be stored; ` +
          'they stay dirty and will be tried again (the next flush reports the error if it persists)',
      );
    } else {
      this.#writebackFailures = 0;
    }
    if (this.#cache.dirty.size > 0) {
      this.#schedule(Math.min(30_000, this.#writebackDelayMs * 2 ** this.#writebackFailures));
    }
  }

  // ---- readahead --------------------------------------------------------

  /** A read that starts where the previous one ended is sequential: fetch the next objects. Returns whether it was. */
  #readaheadAfter(offset: number, count: number): boolean {
    // Several sequential readers at once (nbdcopy's connections each copy their own part of
    // the disk, in turns) must each be recognised, so the ends of the last few reads are kept.
    const at = this.#readEnds.indexOf(offset);
    const sequential = at >= 0;
    if (sequential) this.#readEnds.splice(at, 1);
    else if (this.#readEnds.length >= READ_STREAMS) this.#readEnds.shift();
    this.#readEnds.push(offset + count);
    if (!sequential || this.readahead <= 0 || count === 0) return sequential;
    const last = Math.floor((offset + count - 1) / this.chunkSize);
    const end = Math.min(last + this.readahead, this.layout.chunks - 1);
    // Missing chunks are fetched in runs of up to #run chunks (one GET each).
    let start = -1;
    for (let i = last + 1; i <= end; i++) {
      if (this.#cache.peek(i) || this.#loads.has(i) || this.#knownAbsent(i)) {
        if (start >= 0) this.#readahead(start, i - start);
        start = -1;
        continue;
      }
      if (start < 0) start = i;
      if (i - start + 1 === this.#run) {
        this.#readahead(start, this.#run);
        start = -1;
      }
    }
    // A short run at the window's edge grows as the reader moves on; fetch it now only if the device ends there.
    if (start >= 0 && end === this.layout.chunks - 1) this.#readahead(start, end - start + 1);
    return true;
  }

  /** Start loading chunks first..first+n-1 ahead of a reader: one GET for all of them. */
  #readahead(first: number, n: number): void {
    const run = n > 1 ? this.#io.getRun(first, n) : undefined;
    const shared: RunShare | undefined = run ? { size: n, alive: n } : undefined;
    const loads: Promise<void>[] = [];
    // The run holds its buffer until every chunk has taken its share (or been dropped as stale), so the
    // first chunks to leave the cache cannot put the memory up for reuse while later ones still come.
    // A failed run needs nothing here: each chunk's load reports it.
    void run?.then(
      (body) => {
        hold(body);
        void Promise.allSettled(loads).then(() => unhold(body));
      },
      () => {},
    );
    for (let i = first; i < first + n; i++) {
      this.#stats.readaheads++;
      const off = (i - first) * this.chunkSize;
      const share = run?.then((body) => body.subarray(off, off + this.layout.chunkLength(i)));
      const load = this.#startLoad(i, share, shared).promise;
      loads.push(load);
      load.catch((err: unknown) => {
        log.debug(`objstore: readahead of chunk ${i} failed: ${(err as Error).message}`);
      });
    }
  }
}
