/**
 * One layer of a connection's stack (a filter or the plugin), seen from the
 * layer above as plugin-api's `Next`: every callback present, capabilities
 * computed once, and the engine's defaults applied here, at every layer:
 *   - FUA 'emulate': the write without FUA, then a flush.
 *   - zero 'emulate': writes of zeros (FAST_ZERO fails at once with ENOTSUP);
 *     a native zero that answers ENOTSUP falls back to writing zeros too.
 *   - cache 'emulate': read and discard; 'none': nothing to do.
 *   - no extents: everything is data.
 * Subclasses supply the raw operations; `pread` always fills the caller's
 * buffer, `read`/`readInto` pass the layer's own buffers on without a copy.
 */
import {
  Flag,
  NbdError,
  releaseOf,
  type Awaitable,
  type BlockSize,
  type Extent,
  type FlagBits,
  type Next,
  type ReadResult,
  type Support,
} from '@nbdts/plugin-api';
import { after, isPromiseLike } from './awaitable.ts';
import { errnoName } from './errno.ts';

/** What one layer can do for one connection, after defaults. */
export interface LayerCaps {
  size: number;
  canWrite: boolean;
  canFlush: boolean;
  canTrim: boolean;
  zero: Support;
  canFastZero: boolean;
  fua: Support;
  canExtents: boolean;
  cache: Support;
  canMultiConn: boolean;
  rotational: boolean;
  /** Constraints this layer declared (validated), or undefined. */
  blockSize: BlockSize | undefined;
}

const ZERO_CHUNK = 1 << 20;
let zeroBuf: Buffer | undefined;
/** Shared read-only zeros for emulated zeroing (pwrite must not modify its buffer). */
function zeros(): Buffer {
  return (zeroBuf ??= Buffer.alloc(ZERO_CHUNK));
}

/** Copy a read result into `buf` (a no-op when the callee filled `buf` itself). */
export function fillFrom(buf: Buffer, r: ReadResult): void {
  if (r === undefined || r === buf) return;
  const release = releaseOf(r);
  let pos = 0;
  for (const b of Buffer.isBuffer(r) ? [r] : (r as readonly Buffer[])) {
    if (pos + b.length > buf.length) {
      release?.();
      throw new Error(`read returned more than the ${buf.length} bytes asked for`);
    }
    b.copy(buf, pos);
    pos += b.length;
  }
  release?.();
  if (pos !== buf.length) throw new Error(`read returned ${pos} bytes, not ${buf.length}`);
}

export abstract class Layer implements Next {
  readonly exportName: string;
  readonly readonly: boolean;
  #caps: LayerCaps | undefined;

  constructor(exportName: string, readonly: boolean) {
    this.exportName = exportName;
    this.readonly = readonly;
  }

  /** Computed by computeCaps once the layer (and every layer below it) is open and prepared. */
  get caps(): LayerCaps {
    if (!this.#caps) throw new Error('capabilities asked for before the layer was prepared');
    return this.#caps;
  }

  async computeCaps(): Promise<LayerCaps> {
    this.#caps = await this.deriveCaps();
    return this.#caps;
  }

  protected abstract deriveCaps(): Promise<LayerCaps>;

  /** True when reads are served by pread into a buffer the caller provides (the engine's pool). */
  abstract readonly readsIntoBuffer: boolean;
  /** Read into `buf`, or return the layer's own buffers (see ReadResult). */
  abstract readInto(buf: Buffer, offset: number, flags: FlagBits): Awaitable<ReadResult>;
  abstract read(count: number, offset: number, flags: FlagBits): Awaitable<Buffer | readonly Buffer[]>;
  abstract exportDescription(): Awaitable<string | undefined>;

  protected abstract rawWrite(buf: Buffer, offset: number, flags: FlagBits): Awaitable<void>;
  protected abstract rawFlush(flags: FlagBits): Awaitable<void>;
  protected abstract rawTrim(count: number, offset: number, flags: FlagBits): Awaitable<void>;
  protected abstract rawZero(count: number, offset: number, flags: FlagBits): Awaitable<void>;
  protected abstract rawExtents(count: number, offset: number, flags: FlagBits): Awaitable<readonly Extent[]>;
  protected abstract rawCache(count: number, offset: number, flags: FlagBits): Awaitable<void>;
  /** Release this layer's handle (after the layers above closed). */
  abstract close(): Promise<void>;

  // ---- Next: capabilities ---------------------------------------------------------

  getSize(): number {
    return this.caps.size;
  }
  blockSize(): BlockSize | undefined {
    return this.caps.blockSize;
  }
  canWrite(): boolean {
    return this.caps.canWrite;
  }
  canFlush(): boolean {
    return this.caps.canFlush;
  }
  canTrim(): boolean {
    return this.caps.canTrim;
  }
  canZero(): Support {
    return this.caps.zero;
  }
  canFastZero(): boolean {
    return this.caps.canFastZero;
  }
  canFua(): Support {
    return this.caps.fua;
  }
  canExtents(): boolean {
    return this.caps.canExtents;
  }
  canCache(): Support {
    return this.caps.cache;
  }
  canMultiConn(): boolean {
    return this.caps.canMultiConn;
  }
  isRotational(): boolean {
    return this.caps.rotational;
  }

  // ---- Next: data ---------------------------------------------------------------------

  pread(buf: Buffer, offset: number, flags: FlagBits): Awaitable<void> {
    return after(this.readInto(buf, offset, flags), (r) => fillFrom(buf, r));
  }

  pwrite(buf: Buffer, offset: number, flags: FlagBits): Awaitable<void> {
    const c = this.caps;
    if (!c.canWrite) throw new NbdError('EROFS', 'this layer is read-only');
    // The common case without a closure: no FUA, or FUA passed down.
    if (!(flags & Flag.FUA) || c.fua === 'native') return this.rawWrite(buf, offset, flags);
    return this.#withFua(flags, (f) => this.rawWrite(buf, offset, f));
  }

  flush(flags: FlagBits): Awaitable<void> {
    if (!this.caps.canFlush) throw new NbdError('EINVAL', 'flush is not supported here');
    return this.rawFlush(flags);
  }

  trim(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    if (!this.caps.canTrim) throw new NbdError('EINVAL', 'trim is not supported here');
    return this.#withFua(flags, (f) => this.rawTrim(count, offset, f));
  }

  zero(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    const z = this.caps.zero;
    if (z === 'none') throw new NbdError(this.caps.canWrite ? 'EINVAL' : 'EROFS', 'zeroing is not supported here');
    if (z === 'emulate') {
      if (flags & Flag.FAST_ZERO) throw new NbdError('ENOTSUP', 'zeroing is emulated, so not fast');
      return this.#withFua(flags, () => this.#writeZeros(count, offset));
    }
    return this.#withFua(flags, (f) => {
      if (flags & Flag.FAST_ZERO) return this.rawZero(count, offset, f);
      // A layer that cannot zero this range natively falls back to writing zeros.
      const fallback = (err: unknown): Awaitable<void> => {
        const name = errnoName(err);
        if (name === 'ENOTSUP' || name === 'EOPNOTSUPP') return this.#writeZeros(count, offset);
        throw err;
      };
      let r: Awaitable<void>;
      try {
        r = this.rawZero(count, offset, f);
      } catch (err) {
        return fallback(err);
      }
      return isPromiseLike(r) ? Promise.resolve(r).catch(fallback) : r;
    });
  }

  extents(count: number, offset: number, flags: FlagBits): Awaitable<readonly Extent[]> {
    if (!this.caps.canExtents) return [{ offset, length: count, type: 0 }];
    return this.rawExtents(count, offset, flags);
  }

  cache(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    const c = this.caps.cache;
    if (c === 'native') return this.rawCache(count, offset, flags);
    if (c === 'emulate') return this.#emulateCache(count, offset);
  }

  async #writeZeros(count: number, offset: number): Promise<void> {
    const z = zeros();
    while (count > 0) {
      const n = Math.min(count, z.length);
      await this.rawWrite(n === z.length ? z : z.subarray(0, n), offset, 0);
      count -= n;
      offset += n;
    }
  }

  async #emulateCache(count: number, offset: number): Promise<void> {
    const step = 4 << 20;
    while (count > 0) {
      const n = Math.min(count, step);
      releaseOf(await this.read(n, offset, 0))?.(); // only the fetch matters: lent memory goes back at once
      count -= n;
      offset += n;
    }
  }

  /** Pass FUA down when native, turn it into a flush when emulated, drop it otherwise. */
  #withFua(flags: FlagBits, op: (flags: FlagBits) => Awaitable<void>): Awaitable<void> {
    if (!(flags & Flag.FUA)) return op(flags);
    const fua = this.caps.fua;
    if (fua === 'native') return op(flags);
    const r = op(flags & ~Flag.FUA);
    if (fua !== 'emulate') return r;
    return after(r, () => this.rawFlush(0));
  }
}
