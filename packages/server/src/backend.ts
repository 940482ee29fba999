/**
 * The plugin and its filters as the engine sees them: per connection, a stack
 * of layers (filters[0] outermost, nearest the client, as nbdkit orders
 * --filter; the plugin at the bottom), opened outer to inner, prepared and
 * asked for their capabilities inner to outer, finalized and closed outer to
 * inner. The top layer's capabilities become what the client is told.
 */
import {
  type BlockSize,
  type Client,
  type ExportInfo,
  type Extent,
  type Filter,
  type NextExports,
  type NextOpen,
  type OwnedNext,
  type Plugin,
  type Support,
} from '@nbdts/plugin-api';
import { BufferPool } from '@nbdts/plugin-api/engine';
import type { Awaitable } from '@nbdts/plugin-api';
import { FilterLayer } from './filter-layer.ts';
import type { Layer } from './layer.ts';
import { PluginLayer } from './plugin-layer.ts';

type AnyPlugin = Plugin<unknown, unknown>;
type AnyFilter = Filter<unknown, unknown>;

/** What one open connection can do, after defaults and -r: what the handshake advertises and validate.ts enforces. */
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
  /** Constraints the engine advertises and enforces (the stack's, or the defaults). */
  blockSize: BlockSize;
  /** True when the plugin or a filter declared constraints of its own. */
  pluginBlockSize: boolean;
}

/** `top` as a plain object (bound methods: a layer's private state is reached through its own `this`), plus close. */
export function ownedNext(t: Layer, close: () => Promise<void>): OwnedNext {
  return {
    exportName: t.exportName,
    readonly: t.readonly,
    close,
    getSize: () => t.getSize(),
    blockSize: () => t.blockSize(),
    exportDescription: () => t.exportDescription(),
    canWrite: () => t.canWrite(),
    canFlush: () => t.canFlush(),
    canTrim: () => t.canTrim(),
    canZero: () => t.canZero(),
    canFastZero: () => t.canFastZero(),
    canFua: () => t.canFua(),
    canExtents: () => t.canExtents(),
    canCache: () => t.canCache(),
    canMultiConn: () => t.canMultiConn(),
    isRotational: () => t.isRotational(),
    pread: (buf, offset, flags) => t.pread(buf, offset, flags),
    read: (count, offset, flags) => t.read(count, offset, flags),
    pwrite: (buf, offset, flags) => t.pwrite(buf, offset, flags),
    flush: (flags) => t.flush(flags),
    trim: (count, offset, flags) => t.trim(count, offset, flags),
    zero: (count, offset, flags) => t.zero(count, offset, flags),
    extents: (count, offset, flags) => t.extents(count, offset, flags),
    cache: (count, offset, flags) => t.cache(count, offset, flags),
  };
}

/** A connection used without a socket (tests, internal callers). */
const LOCAL_CLIENT: Client = { id: 0, transport: 'stdio', tls: false };

export class Backend {
  /** Shared by every connection of this server. */
  readonly pool: BufferPool;
  readonly plugin: AnyPlugin;
  readonly filters: readonly AnyFilter[];
  readonly #forceReadonly: boolean;
  readonly #maxPayload: number;
  readonly #warn: (msg: string) => void;

  constructor(
    plugin: AnyPlugin,
    filters: readonly AnyFilter[],
    forceReadonly: boolean,
    maxPayload: number,
    warn: (msg: string) => void,
    poolBytes = 64 * 1024 * 1024,
  ) {
    this.plugin = plugin;
    this.filters = filters;
    this.#forceReadonly = forceReadonly;
    this.#maxPayload = maxPayload;
    this.#warn = warn;
    this.pool = new BufferPool(poolBytes);
  }

  get readonly(): boolean {
    return this.#forceReadonly;
  }

  /** Every filter's preconnect, outer first; a throw refuses the client. */
  async preconnect(client: Client): Promise<void> {
    for (const f of this.filters) if (f.preconnect) await f.preconnect(client, this.#forceReadonly);
  }

  /** Export queries at layer `i` (the plugin past the last filter): a filter without its own passes them down. */
  #exportsAt(i: number): NextExports {
    const f = this.filters[i];
    if (!f) {
      const p = this.plugin;
      const defaultExport = async (ro: boolean): Promise<string> => (p.defaultExport ? await p.defaultExport(ro) : '');
      return {
        listExports: async (ro) => (p.listExports ? await p.listExports(ro) : [{ name: await defaultExport(ro) }]),
        defaultExport,
      };
    }
    const below = this.#exportsAt(i + 1);
    return {
      listExports: async (ro) => (f.listExports ? await f.listExports(below, ro) : await below.listExports(ro)),
      defaultExport: async (ro) => (f.defaultExport ? await f.defaultExport(below, ro) : await below.defaultExport(ro)),
    };
  }

  listExports(): Promise<ExportInfo[]> {
    return Promise.resolve(this.#exportsAt(0).listExports(this.#forceReadonly));
  }

  defaultExport(): Promise<string> {
    return Promise.resolve(this.#exportsAt(0).defaultExport(this.#forceReadonly));
  }

  /** Open the stack for one connection and compute its capabilities; whatever was opened is closed again on failure. */
  async open(name: string, client: Client = LOCAL_CLIENT): Promise<OpenHandle> {
    const { top, layers } = await this.#openFrom(0, name, this.#forceReadonly, client);
    return new OpenHandle(top, layers, this.#capabilities(top));
  }

  /**
   * Open layers `i` and below, then prepare them and compute their
   * capabilities inner to outer. Returns the layers outer first; on failure
   * whatever was opened is closed again.
   */
  async #openFrom(
    i: number,
    name: string,
    readonly: boolean,
    client: Client,
  ): Promise<{ top: Layer; layers: Layer[] }> {
    const opened: Layer[] = []; // inner first: each layer is added once its open has returned
    try {
      const top = await this.#openAt(i, name, readonly, client, opened);
      // Inner to outer: each layer prepares with everything below it ready.
      for (const layer of opened) {
        if (layer instanceof FilterLayer && layer.filter.prepare) {
          await layer.filter.prepare(layer.next, layer.handle, layer.readonly);
        }
        await layer.computeCaps();
      }
      return { top, layers: opened.reverse() };
    } catch (err) {
      await closeLayers(opened.reverse(), false, () => {});
      throw err;
    }
  }

  /** Open layer `i` (a filter, or the plugin past the last filter) and those below it. */
  async #openAt(i: number, name: string, readonly: boolean, client: Client, opened: Layer[]): Promise<Layer> {
    const f = this.filters[i];
    if (!f) {
      const p = this.plugin;
      const layer = new PluginLayer(p, await p.open(name, readonly), name, readonly, this.#warn);
      opened.push(layer);
      return layer;
    }
    let below: Layer | undefined;
    // A filter may open the layer below read-only, never writable under a read-only client.
    const next = async (exportName: string, ro: boolean): Promise<void> => {
      if (below) throw new Error(`filter ${f.name}: the layer below is already open`);
      below = await this.#openAt(i + 1, exportName, ro || readonly, client, opened);
    };
    const openAnother = async (exportName: string, ro: boolean): Promise<OwnedNext> => {
      const { top, layers } = await this.#openFrom(i + 1, exportName, ro || readonly, client);
      return ownedNext(top, () => closeLayers(layers, true, this.#warn));
    };
    const nextOpen: NextOpen = Object.assign(next, { openAnother });
    const handle = f.open ? await f.open(nextOpen, name, readonly, client) : await next(name, readonly);
    if (!below)
      throw new Error(`filter ${f.name}: open did not open the layer below (call next(exportName, readonly))`);
    const layer = new FilterLayer(f, handle, below, name, readonly, this.#warn);
    opened.push(layer);
    return layer;
  }

  /** The top layer's capabilities with the engine's block size defaults, never more than one payload carries. */
  #capabilities(top: Layer): Capabilities {
    const c = top.caps;
    const declared = c.blockSize;
    let blockSize: BlockSize = { minimum: 1, preferred: 4096, maximum: this.#maxPayload };
    if (declared) {
      const cap = Math.floor(this.#maxPayload / declared.minimum) * declared.minimum;
      blockSize = { ...declared, maximum: Math.min(declared.maximum, cap) };
    }
    return {
      size: c.size,
      canWrite: c.canWrite,
      canFlush: c.canFlush,
      canTrim: c.canTrim && c.canWrite,
      zero: c.canWrite ? c.zero : 'none',
      canFastZero: c.canWrite && c.zero !== 'none' && c.canFastZero,
      fua: c.canWrite ? c.fua : 'none',
      canExtents: c.canExtents,
      cache: c.cache,
      canMultiConn: c.canMultiConn,
      rotational: c.rotational,
      blockSize,
      pluginBlockSize: declared !== undefined,
    };
  }
}

/**
 * Finalize (outer to inner, with every layer still open) when asked, then
 * close outer to inner. Every layer gets its close even if one fails; the
 * first failure is rethrown afterwards.
 */
async function closeLayers(layers: readonly Layer[], finalize: boolean, warn: (msg: string) => void): Promise<void> {
  let first: unknown;
  if (finalize) {
    for (const l of layers) {
      if (!(l instanceof FilterLayer) || !l.filter.finalize) continue;
      try {
        await l.filter.finalize(l.next, l.handle);
      } catch (err) {
        first ??= err;
        warn(`filter ${l.filter.name}: finalize failed: ${(err as Error).message}`);
      }
    }
  }
  for (const l of layers) {
    try {
      await l.close();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined && finalize) throw first;
}

/** An open stack, as the connection uses it. Methods may throw synchronously or return promises. */
export class OpenHandle {
  readonly caps: Capabilities;
  readonly #top: Layer;
  readonly #layers: readonly Layer[];
  /** True when reads go through readInto with an engine buffer, false for read (the layer's own buffers). */
  readonly readsIntoBuffer: boolean;

  constructor(top: Layer, layers: readonly Layer[], caps: Capabilities) {
    this.#top = top;
    this.#layers = layers;
    this.caps = caps;
    this.readsIntoBuffer = top.readsIntoBuffer;
  }

  description(): Awaitable<string | undefined> {
    return this.#top.exportDescription();
  }

  /** `count` bytes from `offset`: one buffer or several (lengths add up to count). */
  read(count: number, offset: number): Awaitable<Buffer | readonly Buffer[]> {
    return this.#top.read(count, offset, 0);
  }

  /** Read into `buf`; resolves to undefined when `buf` was filled, else the layer's own buffers. */
  readInto(buf: Buffer, offset: number): Awaitable<void | Buffer | readonly Buffer[]> {
    return this.#top.readInto(buf, offset, 0);
  }

  write(buf: Buffer, offset: number, flags: number): Awaitable<void> {
    return this.#top.pwrite(buf, offset, flags);
  }

  flush(): Awaitable<void> {
    return this.#top.flush(0);
  }

  trim(count: number, offset: number, flags: number): Awaitable<void> {
    return this.#top.trim(count, offset, flags);
  }

  /** Flags: MAY_TRIM, FUA, FAST_ZERO. */
  zero(count: number, offset: number, flags: number): Awaitable<void> {
    return this.#top.zero(count, offset, flags);
  }

  extents(count: number, offset: number, flags: number): Awaitable<readonly Extent[]> {
    return this.#top.extents(count, offset, flags);
  }

  cache(count: number, offset: number): Awaitable<void> {
    return this.#top.cache(count, offset, 0);
  }

  /** The outermost layer as a filter above it would see it, with close() for the whole stack. */
  asNext(warn: (msg: string) => void = () => {}): OwnedNext {
    return ownedNext(this.#top, () => this.close(warn));
  }

  /** Finalize the filters, then close every layer (outer to inner). */
  close(warn: (msg: string) => void = () => {}): Promise<void> {
    return closeLayers(this.#layers, true, warn);
  }
}
