/**
 * The plugin as the engine sees it: plugin-api defaults applied (see the
 * Plugin doc comment), capabilities computed once per connection, emulation
 * of zero, FUA and cache, and the per-handle concurrency limit.
 */
import {
  BufferPool,
  Flag,
  NbdError,
  releaseOf,
  type Awaitable,
  type BlockSize,
  type Extent,
  type ExportInfo,
  type Plugin,
  type Support,
} from '@nbdts/plugin-api';
import { after, isPromiseLike, Limiter } from './awaitable.ts';
import { errnoName } from './errno.ts';

type AnyPlugin = Plugin<unknown, unknown>;

/** What one open handle can do, after defaults and -r. */
export interface Capabilities {
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
  /** Constraints the engine advertises and enforces (plugin's, or the defaults). */
  blockSize: BlockSize;
  /** True when the plugin declared constraints of its own. */
  pluginBlockSize: boolean;
}

const ZERO_CHUNK = 1 << 20;
let zeroBuf: Buffer | undefined;
/** Shared read-only zeros for emulated zeroing (pwrite must not modify its buffer). */
function zeros(): Buffer {
  return (zeroBuf ??= Buffer.alloc(ZERO_CHUNK));
}

function toSize(v: number | bigint): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isSafeInteger(n) || n < 0 || (typeof v === 'bigint' && BigInt(n) !== v)) {
    throw new NbdError('EINVAL', `plugin returned an invalid size: ${String(v)}`);
  }
  return n;
}

const isPow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

function checkBlockSize(b: BlockSize): string | undefined {
  if (!isPow2(b.minimum) || b.minimum > 65536) return 'minimum must be a power of two from 1 to 65536';
  if (!isPow2(b.preferred) || b.preferred < Math.max(512, b.minimum) || b.preferred > 32 * 1024 * 1024) {
    return 'preferred must be a power of two from max(512, minimum) to 32 MiB';
  }
  if (
    b.maximum !== 0xffffffff &&
    (!Number.isInteger(b.maximum) || b.maximum % b.minimum !== 0 || b.maximum < b.minimum)
  ) {
    return 'maximum must be a multiple of minimum, or 0xffffffff';
  }
  return undefined;
}

export class Backend {
  /** Shared by every connection of this server. */
  readonly pool: BufferPool;

  readonly plugin: AnyPlugin;
  readonly #forceReadonly: boolean;
  readonly #maxPayload: number;
  readonly #warn: (msg: string) => void;

  constructor(
    plugin: AnyPlugin,
    forceReadonly: boolean,
    maxPayload: number,
    warn: (msg: string) => void,
    poolBytes = 64 * 1024 * 1024,
  ) {
    this.plugin = plugin;
    this.#forceReadonly = forceReadonly;
    this.#maxPayload = maxPayload;
    this.#warn = warn;
    this.pool = new BufferPool(poolBytes);
  }

  get readonly(): boolean {
    return this.#forceReadonly;
  }

  async listExports(): Promise<ExportInfo[]> {
    if (this.plugin.listExports) return await this.plugin.listExports(this.#forceReadonly);
    return [{ name: await this.defaultExport() }];
  }

  async defaultExport(): Promise<string> {
    return this.plugin.defaultExport ? await this.plugin.defaultExport(this.#forceReadonly) : '';
  }

  /** Open a handle and compute its capabilities; the handle is closed again if that fails. */
  async open(name: string): Promise<OpenHandle> {
    const p = this.plugin;
    const h = await p.open(name, this.#forceReadonly);
    try {
      const size = toSize(await p.getSize(h));
      const canWrite = !this.#forceReadonly && !!p.pwrite && (p.canWrite ? await p.canWrite(h) : true);
      const canFlush = !!p.flush && (p.canFlush ? await p.canFlush(h) : true);
      const canTrim = canWrite && !!p.trim && (p.canTrim ? await p.canTrim(h) : true);
      let zero: Support = 'none';
      if (canWrite) {
        zero = p.canZero ? await p.canZero(h) : p.zero ? 'native' : 'emulate';
        if (zero === 'native' && !p.zero) zero = 'emulate';
      }
      const canFastZero = zero !== 'none' && (p.canFastZero ? await p.canFastZero(h) : true);
      let fua: Support = 'none';
      if (canWrite) {
        fua = p.canFua ? await p.canFua(h) : p.flush ? 'emulate' : 'none';
        if (fua === 'emulate' && !p.flush) fua = 'none';
      }
      const canExtents = !!p.extents && (p.canExtents ? await p.canExtents(h) : true);
      let cache: Support = p.canCache ? await p.canCache(h) : p.cache ? 'native' : 'none';
      if (cache === 'native' && !p.cache) cache = 'emulate';
      const canMultiConn = p.canMultiConn ? await p.canMultiConn(h) : false;
      const rotational = p.isRotational ? await p.isRotational(h) : false;

      const declared = p.blockSize ? await p.blockSize(h) : undefined;
      let blockSize: BlockSize = { minimum: 1, preferred: 4096, maximum: this.#maxPayload };
      let pluginBlockSize = false;
      if (declared) {
        const problem = checkBlockSize(declared);
        if (problem) {
          this.#warn(`plugin ${p.name}: ignoring block size ${JSON.stringify(declared)}: ${problem}`);
        } else {
          // Never advertise more than the engine will carry in one payload.
          const cap = Math.floor(this.#maxPayload / declared.minimum) * declared.minimum;
          blockSize = { ...declared, maximum: Math.min(declared.maximum, cap) };
          pluginBlockSize = true;
        }
      }
      const caps: Capabilities = {
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
        pluginBlockSize,
      };
      return new OpenHandle(p, h, caps);
    } catch (err) {
      try {
        await p.close?.(h);
      } catch {
        /* the open error is the one to report */
      }
      throw err;
    }
  }
}

/** A handle with the engine's defaults applied. Methods may throw synchronously or return promises. */
export class OpenHandle {
  readonly #limiter: Limiter | undefined;

  readonly #p: AnyPlugin;
  readonly handle: unknown;
  readonly caps: Capabilities;

  constructor(p: AnyPlugin, handle: unknown, caps: Capabilities) {
    this.#p = p;
    this.handle = handle;
    this.caps = caps;
    const c = p.concurrency;
    this.#limiter = c !== undefined && Number.isFinite(c) && c >= 1 ? new Limiter(Math.floor(c)) : undefined;
  }

  description(): Awaitable<string | undefined> {
    return this.#p.exportDescription ? this.#p.exportDescription(this.handle) : undefined;
  }

  #run<T>(fn: () => Awaitable<T>): Awaitable<T> {
    return this.#limiter ? this.#limiter.run(fn) : fn();
  }

  /** True when reads go through pread into an engine buffer (see readInto), false for plugin.read. */
  get readsIntoBuffer(): boolean {
    return !this.#p.read;
  }

  /** `count` bytes from `offset` via plugin.read: one buffer or several (lengths add up to count). */
  read(count: number, offset: number): Awaitable<Buffer | readonly Buffer[]> {
    const p = this.#p;
    if (p.read) return this.#run(() => p.read!(this.handle, count, offset, 0));
    const buf = Buffer.allocUnsafe(count);
    return this.#run(() => after(p.pread!(this.handle, buf, offset, 0), (r) => (r === undefined ? buf : r)));
  }

  /** pread into `buf`; resolves to undefined when `buf` was filled, else the plugin's own buffers. */
  readInto(buf: Buffer, offset: number): Awaitable<void | Buffer | readonly Buffer[]> {
    return this.#run(() => this.#p.pread!(this.handle, buf, offset, 0));
  }

  write(buf: Buffer, offset: number, flags: number): Awaitable<void> {
    return this.#withFua(flags, (f) => this.#run(() => this.#p.pwrite!(this.handle, buf, offset, f)));
  }

  flush(): Awaitable<void> {
    return this.#run(() => this.#p.flush!(this.handle, 0));
  }

  trim(count: number, offset: number, flags: number): Awaitable<void> {
    return this.#withFua(flags, (f) => this.#run(() => this.#p.trim!(this.handle, count, offset, f)));
  }

  /** Flags: MAY_TRIM, FUA, FAST_ZERO. */
  zero(count: number, offset: number, flags: number): Awaitable<void> {
    if (this.caps.zero === 'native') {
      return this.#withFua(flags, (f) => {
        if (flags & Flag.FAST_ZERO) return this.#run(() => this.#p.zero!(this.handle, count, offset, f));
        // A plugin that cannot zero this range natively falls back to writing zeros.
        const fallback = (err: unknown): Awaitable<void> => {
          const name = errnoName(err);
          if (name === 'ENOTSUP' || name === 'EOPNOTSUPP') return this.#writeZeros(count, offset);
          throw err;
        };
        let r: Awaitable<void>;
        try {
          r = this.#run(() => this.#p.zero!(this.handle, count, offset, f));
        } catch (err) {
          return fallback(err);
        }
        return isPromiseLike(r) ? Promise.resolve(r).catch(fallback) : r;
      });
    }
    if (flags & Flag.FAST_ZERO) throw new NbdError('ENOTSUP', 'zeroing is emulated, so not fast');
    return this.#withFua(flags, () => this.#writeZeros(count, offset));
  }

  async #writeZeros(count: number, offset: number): Promise<void> {
    const z = zeros();
    while (count > 0) {
      const n = Math.min(count, z.length);
      await this.#run(() => this.#p.pwrite!(this.handle, n === z.length ? z : z.subarray(0, n), offset, 0));
      count -= n;
      offset += n;
    }
  }

  extents(count: number, offset: number, flags: number): Awaitable<readonly Extent[]> {
    if (!this.caps.canExtents) return [{ offset, length: count, type: 0 }];
    return this.#run(() => this.#p.extents!(this.handle, count, offset, flags));
  }

  cache(count: number, offset: number): Awaitable<void> {
    if (this.caps.cache === 'native') return this.#run(() => this.#p.cache!(this.handle, count, offset, 0));
    return this.#emulateCache(count, offset);
  }

  async #emulateCache(count: number, offset: number): Promise<void> {
    const step = 4 << 20;
    while (count > 0) {
      const n = Math.min(count, step);
      releaseOf(await this.read(n, offset))?.(); // only the fetch matters: lent memory goes back at once
      count -= n;
      offset += n;
    }
  }

  async close(): Promise<void> {
    if (this.#p.close) await this.#p.close(this.handle);
  }

  /** Pass FUA to the plugin when native, turn it into a flush when emulated, drop it otherwise. */
  #withFua(flags: number, op: (pluginFlags: number) => Awaitable<void>): Awaitable<void> {
    const fua = (flags & Flag.FUA) !== 0;
    if (!fua) return op(flags);
    if (this.caps.fua === 'native') return op(flags);
    const r = op(flags & ~Flag.FUA);
    if (this.caps.fua !== 'emulate') return r;
    return after(r, () => this.flush());
  }
}
