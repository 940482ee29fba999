import type { DeviceStats } from './stats.ts';
import { hold, unhold } from './buffers.ts';

/** One chunk held in memory. */
export interface Entry {
  readonly index: number;
  /** The chunk's bytes (chunkLength long), or null for all zeros (object absent or to be deleted). */
  data: Buffer | null;
  /** Changed since it was last stored. */
  dirty: boolean;
  /** Bumped on every change: a store that finishes clears `dirty` only if nothing changed meanwhile. */
  gen: number;
  /** The store of this chunk in progress: at most one per chunk, so PUTs and DELETEs cannot reorder. */
  storing: Promise<void> | null;
  /** A buffer others may read: the one a store is sending, or the adapter's GET body. A writer copies it first. */
  frozen: Buffer | null;
  /** Why the last store failed, while the chunk stays dirty. */
  error: Error | null;
  /** Requests that waited for this chunk's GET and have not used it yet: not evictable. */
  pins: number;
  /** Bytes written into it since its last store began (see ObjectDevice: streaming write-back). */
  written: number;
  /** Set while `data` is a slice of a readahead run's buffer, which other chunks' entries share. */
  run: RunShare | null;
  /** A sequential reader has read it to the end before: read through again, it is in use, not a scan. */
  scanned: boolean;
}

/**
 * The chunks of one readahead GET: their entries share its buffer. Once some
 * of them are gone, an entry used again takes a copy of its own, so one chunk
 * kept long does not keep the whole run's memory.
 */
export interface RunShare {
  readonly size: number;
  /** Entries still holding a slice of the run's buffer. */
  alive: number;
}

/** The part of the cache that chunks sequential writers and readers have gone past may keep. */
const STREAMED_SHARE = 1 / 8;

/** Memory accounted per entry on top of its data, so all-zero entries still count against the bound. */
const ENTRY_OVERHEAD = 128;

/**
 * The chunk cache: LRU order (a Map re-inserted on use), byte accounting,
 * and the dirty set in the order chunks became dirty. Only clean entries
 * that no store or waiting request is using are evicted; dirty data is bounded separately by
 * the device (maxDirty), which must be below the capacity.
 */
export class ChunkCache {
  readonly capacity: number;
  readonly dirty = new Set<Entry>();
  readonly #entries = new Map<number, Entry>();
  readonly #chunkLength: (i: number) => number;
  readonly #stats: DeviceStats;
  /**
   * Clean chunks a sequential writer filled or a sequential reader read to
   * the end, and nothing has used since, oldest first, with their bytes. They
   * may hold at most a STREAMED_SHARE of the cache: a long copy onto or off
   * the disk keeps its latest objects there without pushing out what other
   * readers use (scan resistance), and its memory is reused for the next
   * chunks instead of growing to the whole cache.
   */
  readonly #streamed = new Map<Entry, number>();
  #streamedBytes = 0;
  #bytes = 0;
  #dirtyBytes = 0;

  constructor(capacity: number, chunkLength: (i: number) => number, stats: DeviceStats) {
    this.capacity = capacity;
    this.#chunkLength = chunkLength;
    this.#stats = stats;
  }

  get bytes(): number {
    return this.#bytes;
  }
  get dirtyBytes(): number {
    return this.#dirtyBytes;
  }
  get size(): number {
    return this.#entries.size;
  }

  /** Look without changing the LRU order. */
  peek(i: number): Entry | undefined {
    return this.#entries.get(i);
  }

  /** Look and mark as most recently used. */
  get(i: number): Entry | undefined {
    const e = this.#entries.get(i);
    if (e) {
      this.#entries.delete(i);
      this.#entries.set(i, e);
      this.#unstream(e); // used again: an ordinary entry from now on
    }
    return e;
  }

  /** A chunk stored by streaming write-back, or read through by a sequential reader: bound such chunks (see #streamed). */
  streamedClean(e: Entry): void {
    if (e.dirty || this.#entries.get(e.index) !== e) return;
    this.#unstream(e);
    const n = cost(e.data);
    this.#streamed.set(e, n);
    this.#streamedBytes += n;
    const limit = Math.max(2 * this.#chunkLength(0), this.capacity * STREAMED_SHARE);
    for (const old of this.#streamed.keys()) {
      if (this.#streamedBytes <= limit) break;
      if (old.storing || old.pins > 0) continue;
      this.#remove(old);
      this.#stats.evictions++;
    }
  }

  #unstream(e: Entry): void {
    const n = this.#streamed.get(e);
    if (n === undefined) return;
    this.#streamed.delete(e);
    this.#streamedBytes -= n;
  }

  /** Take e (which is in the cache) out; it no longer counts as a user of its data's memory. */
  #remove(e: Entry): void {
    this.#entries.delete(e.index);
    this.#bytes -= cost(e.data);
    this.#unstream(e);
    leaveRun(e);
    unhold(e.data);
  }

  /** A new entry; while in the cache, an entry counts as a user of its data's memory (buffers.ts hold). */
  insert(i: number, data: Buffer | null, pins = 0, run: RunShare | null = null): Entry {
    const e: Entry = {
      index: i,
      data,
      dirty: false,
      gen: 0,
      storing: null,
      frozen: null,
      error: null,
      pins,
      written: 0,
      run,
      scanned: false,
    };
    hold(data);
    this.#entries.set(i, e);
    this.#bytes += cost(data);
    this.evict(e);
    return e;
  }

  setData(e: Entry, data: Buffer | null): void {
    this.#bytes += cost(data) - cost(e.data);
    const cached = this.#entries.get(e.index) === e;
    if (cached) {
      hold(data);
      unhold(e.data);
    }
    e.data = data;
    leaveRun(e);
    if (cached) this.evict(e);
  }

  markDirty(e: Entry): void {
    this.#unstream(e);
    if (e.dirty) return;
    e.dirty = true;
    this.dirty.add(e);
    this.#dirtyBytes += this.#chunkLength(e.index);
  }

  markClean(e: Entry): void {
    if (!e.dirty) return;
    e.dirty = false;
    this.dirty.delete(e);
    this.#dirtyBytes -= this.#chunkLength(e.index);
  }

  /** Drop least recently used clean entries until within capacity (never `keep`). */
  evict(keep?: Entry): void {
    if (this.#bytes <= this.capacity) return;
    for (const e of this.#entries.values()) {
      if (this.#bytes <= this.capacity) break;
      if (e === keep || e.dirty || e.storing || e.pins > 0) continue;
      this.#remove(e);
      this.#stats.evictions++;
    }
  }

  /** Forget every clean entry (tests, and to re-read after an external change). */
  dropClean(): void {
    for (const e of [...this.#entries.values()]) {
      if (e.dirty || e.storing || e.pins > 0) continue;
      this.#remove(e);
    }
  }
}

function leaveRun(e: Entry): void {
  if (e.run) e.run.alive--;
  e.run = null;
}

function cost(data: Buffer | null): number {
  return (data?.length ?? 0) + ENTRY_OVERHEAD;
}
