/**
 * A filter's layer for one connection. Callbacks the filter implements are
 * called with (next, handle, ...); the rest go straight to the layer below.
 * Where the filter changes neither an operation nor the capability it
 * depends on, the operation is the layer below's own method, so a filter
 * that only observes some requests adds nothing to the others.
 */
import type { Awaitable, Extent, Filter, FlagBits, ReadResult, Support } from '@nbdts/plugin-api';
import { after } from './awaitable.ts';
import { Layer, type LayerCaps } from './layer.ts';
import { toSize, validBlockSize } from './plugin-layer.ts';

type AnyFilter = Filter<unknown, unknown>;

export class FilterLayer extends Layer {
  readonly filter: AnyFilter;
  readonly handle: unknown;
  readonly next: Layer;
  readonly #warn: (msg: string) => void;
  readonly readsIntoBuffer: boolean;

  constructor(
    filter: AnyFilter,
    handle: unknown,
    next: Layer,
    exportName: string,
    readonly: boolean,
    warn: (msg: string) => void,
  ) {
    super(exportName, readonly);
    this.filter = filter;
    this.handle = handle;
    this.next = next;
    this.#warn = warn;
    this.readsIntoBuffer = filter.pread ? true : next.readsIntoBuffer;
    if (!filter.pread) {
      // Reads pass through untouched: the layer below's buffers, no copy.
      this.readInto = next.readInto.bind(next);
      this.read = next.read.bind(next);
      this.pread = next.pread.bind(next);
    }
  }

  protected async deriveCaps(): Promise<LayerCaps> {
    const f = this.filter;
    const n = this.next;
    const h = this.handle;
    const below = n.caps;
    const who = `filter ${f.name}`;
    const size = f.getSize ? toSize(await f.getSize(n, h), who) : below.size;
    const canWrite = !this.readonly && (f.canWrite ? await f.canWrite(n, h) : below.canWrite);
    const canFlush = f.canFlush ? await f.canFlush(n, h) : below.canFlush;
    const canTrim = canWrite && (f.canTrim ? await f.canTrim(n, h) : below.canTrim);
    let zero: Support = 'none';
    if (canWrite) zero = f.canZero ? await f.canZero(n, h) : below.zero;
    const canFastZero = zero !== 'none' && (f.canFastZero ? await f.canFastZero(n, h) : below.canFastZero);
    let fua: Support = 'none';
    if (canWrite) {
      fua = f.canFua ? await f.canFua(n, h) : below.fua;
      if (fua === 'emulate' && !canFlush) fua = 'none';
    }
    const canExtents = f.canExtents ? await f.canExtents(n, h) : below.canExtents;
    const cache = f.canCache ? await f.canCache(n, h) : below.cache;
    const canMultiConn = f.canMultiConn ? await f.canMultiConn(n, h) : below.canMultiConn;
    const rotational = f.isRotational ? await f.isRotational(n, h) : below.rotational;
    const blockSize = f.blockSize ? validBlockSize(await f.blockSize(n, h), who, this.#warn) : below.blockSize;
    const caps: LayerCaps = {
      size,
      canWrite,
      canFlush,
      canTrim,
      zero,
      canFastZero,
      fua,
      canExtents,
      cache,
      canMultiConn,
      rotational,
      blockSize,
    };
    this.#passThrough(caps, below);
    return caps;
  }

  /** Operations the filter leaves alone, with the same capabilities below, are the layer below's methods. */
  #passThrough(c: LayerCaps, b: LayerCaps): void {
    const f = this.filter;
    const n = this.next;
    const same = c.canWrite === b.canWrite && c.fua === b.fua;
    if (!f.pwrite && same) this.pwrite = n.pwrite.bind(n);
    if (!f.trim && same && c.canTrim === b.canTrim) this.trim = n.trim.bind(n);
    if (!f.zero && same && c.zero === b.zero && c.canFastZero === b.canFastZero) this.zero = n.zero.bind(n);
    if (!f.flush && c.canFlush === b.canFlush) this.flush = n.flush.bind(n);
    if (!f.extents && c.canExtents === b.canExtents) this.extents = n.extents.bind(n);
    if (!f.cache && c.cache === b.cache) this.cache = n.cache.bind(n);
  }

  exportDescription(): Awaitable<string | undefined> {
    const f = this.filter;
    return f.exportDescription ? f.exportDescription(this.next, this.handle) : this.next.exportDescription();
  }

  // Only used when the filter implements pread (the constructor binds the layer below's otherwise).
  readInto(buf: Buffer, offset: number, flags: FlagBits): Awaitable<ReadResult> {
    return this.filter.pread!(this.next, this.handle, buf, offset, flags);
  }

  read(count: number, offset: number, flags: FlagBits): Awaitable<Buffer | readonly Buffer[]> {
    const buf = Buffer.allocUnsafe(count);
    return after(this.filter.pread!(this.next, this.handle, buf, offset, flags), (r) => (r === undefined ? buf : r));
  }

  protected rawWrite(buf: Buffer, offset: number, flags: FlagBits): Awaitable<void> {
    const f = this.filter;
    return f.pwrite ? f.pwrite(this.next, this.handle, buf, offset, flags) : this.next.pwrite(buf, offset, flags);
  }
  protected rawFlush(flags: FlagBits): Awaitable<void> {
    const f = this.filter;
    return f.flush ? f.flush(this.next, this.handle, flags) : this.next.flush(flags);
  }
  protected rawTrim(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    const f = this.filter;
    return f.trim ? f.trim(this.next, this.handle, count, offset, flags) : this.next.trim(count, offset, flags);
  }
  protected rawZero(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    const f = this.filter;
    return f.zero ? f.zero(this.next, this.handle, count, offset, flags) : this.next.zero(count, offset, flags);
  }
  protected rawExtents(count: number, offset: number, flags: FlagBits): Awaitable<readonly Extent[]> {
    const f = this.filter;
    return f.extents
      ? f.extents(this.next, this.handle, count, offset, flags)
      : this.next.extents(count, offset, flags);
  }
  protected rawCache(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    const f = this.filter;
    return f.cache ? f.cache(this.next, this.handle, count, offset, flags) : this.next.cache(count, offset, flags);
  }

  async close(): Promise<void> {
    if (this.filter.close) await this.filter.close(this.handle);
  }
}
