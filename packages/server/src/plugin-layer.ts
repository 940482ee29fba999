/**
 * The bottom of every stack: a plugin handle, with plugin-api's defaults for
 * what the plugin leaves out (see the Plugin doc comment) and the plugin's
 * per-handle concurrency limit.
 */
import type { Awaitable, BlockSize, Extent, FlagBits, Plugin, ReadResult, Support } from '@nbdts/plugin-api';
import { after, Limiter } from './awaitable.ts';
import { Layer, type LayerCaps } from './layer.ts';

type AnyPlugin = Plugin<unknown, unknown>;

const isPow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** Why a declared block size is unusable, or undefined when it is fine. */
export function checkBlockSize(b: BlockSize): string | undefined {
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

/** A size from a plugin or filter as a safe integer, or an error saying what was wrong. */
export function toSize(v: number | bigint, who: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isSafeInteger(n) || n < 0 || (typeof v === 'bigint' && BigInt(n) !== v)) {
    throw new Error(`${who} returned an invalid size: ${String(v)}`);
  }
  return n;
}

/** A declared block size, or undefined (with a warning) when it breaks the rules. */
export function validBlockSize(
  declared: BlockSize | undefined,
  who: string,
  warn: (msg: string) => void,
): BlockSize | undefined {
  if (!declared) return undefined;
  const problem = checkBlockSize(declared);
  if (!problem) return declared;
  warn(`${who}: ignoring block size ${JSON.stringify(declared)}: ${problem}`);
  return undefined;
}

export class PluginLayer extends Layer {
  readonly #p: AnyPlugin;
  readonly handle: unknown;
  readonly #limiter: Limiter | undefined;
  readonly #warn: (msg: string) => void;
  readonly readsIntoBuffer: boolean;

  constructor(p: AnyPlugin, handle: unknown, exportName: string, readonly: boolean, warn: (msg: string) => void) {
    super(exportName, readonly);
    this.#p = p;
    this.handle = handle;
    this.#warn = warn;
    this.readsIntoBuffer = !p.read;
    const c = p.concurrency;
    this.#limiter = c !== undefined && Number.isFinite(c) && c >= 1 ? new Limiter(Math.floor(c)) : undefined;
  }

  protected async deriveCaps(): Promise<LayerCaps> {
    const p = this.#p;
    const h = this.handle;
    const size = toSize(await p.getSize(h), `plugin ${p.name}`);
    const canWrite = !this.readonly && !!p.pwrite && (p.canWrite ? await p.canWrite(h) : true);
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
    const blockSize = validBlockSize(declared, `plugin ${p.name}`, this.#warn);
    return {
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
  }

  #run<T>(fn: () => Awaitable<T>): Awaitable<T> {
    return this.#limiter ? this.#limiter.run(fn) : fn();
  }

  exportDescription(): Awaitable<string | undefined> {
    return this.#p.exportDescription ? this.#p.exportDescription(this.handle) : undefined;
  }

  readInto(buf: Buffer, offset: number, flags: FlagBits): Awaitable<ReadResult> {
    const p = this.#p;
    if (p.pread) return this.#run(() => p.pread!(this.handle, buf, offset, flags));
    return this.#run(() => p.read!(this.handle, buf.length, offset, flags));
  }

  read(count: number, offset: number, flags: FlagBits): Awaitable<Buffer | readonly Buffer[]> {
    const p = this.#p;
    if (p.read) return this.#run(() => p.read!(this.handle, count, offset, flags));
    const buf = Buffer.allocUnsafe(count);
    return this.#run(() => after(p.pread!(this.handle, buf, offset, flags), (r) => (r === undefined ? buf : r)));
  }

  protected rawWrite(buf: Buffer, offset: number, flags: FlagBits): Awaitable<void> {
    return this.#run(() => this.#p.pwrite!(this.handle, buf, offset, flags));
  }
  protected rawFlush(flags: FlagBits): Awaitable<void> {
    return this.#run(() => this.#p.flush!(this.handle, flags));
  }
  protected rawTrim(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    return this.#run(() => this.#p.trim!(this.handle, count, offset, flags));
  }
  protected rawZero(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    return this.#run(() => this.#p.zero!(this.handle, count, offset, flags));
  }
  protected rawExtents(count: number, offset: number, flags: FlagBits): Awaitable<readonly Extent[]> {
    return this.#run(() => this.#p.extents!(this.handle, count, offset, flags));
  }
  protected rawCache(count: number, offset: number, flags: FlagBits): Awaitable<void> {
    return this.#run(() => this.#p.cache!(this.handle, count, offset, flags));
  }

  async close(): Promise<void> {
    if (this.#p.close) await this.#p.close(this.handle);
  }
}
