/**
 * Filters: layers between the engine and a plugin (or another filter), as
 * nbdkit's filters. A filter implements only the callbacks it changes; every
 * other request passes through untouched (and costs nothing). Each callback
 * receives `next`: the layer below, bound to this connection, with every
 * callback present and the engine's defaults applied (emulated zero, FUA and
 * cache; all-data extents; capabilities derived as for plugins), so a filter
 * never checks whether the plugin below implements something.
 */
import type { z } from 'zod';
import type { FlagBits, Support } from './flags.ts';
import type { Awaitable, BlockSize, ExportInfo, Extent, PluginThreads, ReadResult, ServerInfo } from './types.ts';

/** Who is connecting, for filters that decide per client (ip, limit, log). */
export interface Client {
  /** Engine-wide connection number, as in the logs. */
  readonly id: number;
  /** 'tcp' (IPv4 or IPv6), 'unix' socket, 'vsock', or 'stdio' (-s, socket activation of a pipe). */
  readonly transport: 'tcp' | 'unix' | 'vsock' | 'stdio';
  /** Remote address for TCP ('192.0.2.7', '::1'); undefined otherwise. */
  readonly address?: string;
  readonly port?: number;
  /** Peer credentials of a Unix-socket client, where the platform tells them. */
  readonly uid?: number;
  readonly gid?: number;
  readonly pid?: number;
  /** The connection is (or, before the handshake, must become) encrypted. */
  readonly tls: boolean;
}

/**
 * The next layer for one connection. Every callback is present; results of
 * the capability queries are computed once per connection and cached.
 * Methods may return synchronously or a promise: always `await` them.
 */
export interface Next {
  /** The export this connection opened on the layer below (after any renaming by this filter). */
  readonly exportName: string;
  /** The layer below was opened read-only. */
  readonly readonly: boolean;

  getSize(): Awaitable<number>;
  blockSize(): Awaitable<BlockSize | undefined>;
  exportDescription(): Awaitable<string | undefined>;
  canWrite(): Awaitable<boolean>;
  canFlush(): Awaitable<boolean>;
  canTrim(): Awaitable<boolean>;
  canZero(): Awaitable<Support>;
  canFastZero(): Awaitable<boolean>;
  canFua(): Awaitable<Support>;
  canExtents(): Awaitable<boolean>;
  canCache(): Awaitable<Support>;
  canMultiConn(): Awaitable<boolean>;
  isRotational(): Awaitable<boolean>;

  /** Fill `buf` (buf.length bytes) from `offset`. */
  pread(buf: Buffer, offset: number, flags: FlagBits): Awaitable<void>;
  /**
   * The same bytes without a copy: the layer below's own buffers (lengths add
   * up to `count`), possibly lent (see lent()). Return them as they are from a
   * filter's pread to pass data through; copy what you keep.
   */
  read(count: number, offset: number, flags: FlagBits): Awaitable<Buffer | readonly Buffer[]>;
  /** Flags: FUA (emulated below with a flush where needed). */
  pwrite(buf: Buffer, offset: number, flags: FlagBits): Awaitable<void>;
  flush(flags: FlagBits): Awaitable<void>;
  trim(count: number, offset: number, flags: FlagBits): Awaitable<void>;
  /** Flags: MAY_TRIM, FUA, FAST_ZERO (ENOTSUP when zeroing below is emulated). */
  zero(count: number, offset: number, flags: FlagBits): Awaitable<void>;
  /** Extents from `offset` (all data when the layer below cannot tell). */
  extents(count: number, offset: number, flags: FlagBits): Awaitable<readonly Extent[]>;
  cache(count: number, offset: number, flags: FlagBits): Awaitable<void>;
}

/** A layer below opened by the filter itself (see NextOpen.openAnother): the filter closes it. */
export interface OwnedNext extends Next {
  /** Finalize and close everything this opened. */
  close(): Promise<void>;
}

/**
 * Opening the layer below, from a filter's open (as nbdkit's next_open):
 * call it once. `openAnother` opens a further, independent instance of
 * everything below this filter (prepared, capabilities known), which the
 * filter uses as it likes and must close; it may be kept and called later,
 * e.g. to reopen the plugin after errors (the retry filter), as nbdkit's
 * nbdkit_next_context_open.
 */
export interface NextOpen {
  (exportName: string, readonly: boolean): Awaitable<void>;
  openAnother(exportName: string, readonly: boolean): Promise<OwnedNext>;
}

/** Export queries on the layer below, before any connection has opened it. */
export interface NextExports {
  listExports(readonly: boolean): Awaitable<ExportInfo[]>;
  defaultExport(readonly: boolean): Awaitable<string>;
}

/**
 * A filter. C is its parsed config, H its per-connection handle (what open
 * returns; undefined when it has no open). Callbacks mirror the plugin's, with
 * `next` (and the handle) first. Throw NbdError to fail a request; throw from
 * preconnect or open to refuse a client.
 *
 * Parameters: filters see `key=value` parameters before the plugin; a key in a
 * filter's schema belongs to that filter (the first, outermost, if several
 * declare it). Filter state that spans connections lives in the module, as a
 * plugin's does (nbdkit's filters keep it in globals too).
 */
export interface Filter<C = unknown, H = unknown> {
  /** Short name, e.g. "cache": used in logs, --help and --dump-plugin. */
  name: string;
  version?: string;
  /** One-line summary shown by --help. */
  description?: string;
  /** Longer text shown by --help after the parameter list. */
  usage?: string;
  /** Parameters `key=value`, as a zod object with camelCase keys (kebab-case on the command line). */
  config?: z.ZodType<C, Record<string, string>>;
  /** Parameters parsed: check combinations. Throw ConfigError to refuse. Runs after the plugin's (inner layers first). */
  configComplete?(config: C): Awaitable<void>;
  /** About to serve (after the plugin's getReady): open files, start timers. */
  getReady?(config: C, server: ServerInfo): Awaitable<void>;
  /** The server is stopping, after every connection closed (before the plugin's unload). */
  unload?(): Awaitable<void>;
  /**
   * Opt in to worker threads (see PluginThreads): share() what a copy in
   * another thread needs (the config, shared memory), attach() it there
   * instead of configComplete and getReady. Without it, a stack that contains
   * this filter serves every connection on the main thread.
   */
  threads?: PluginThreads;

  /** A client connected (before the handshake). Throw (e.g. NbdError('EPERM')) to refuse it. */
  preconnect?(client: Client, readonly: boolean): Awaitable<void>;
  listExports?(next: NextExports, readonly: boolean): Awaitable<ExportInfo[]>;
  defaultExport?(next: NextExports, readonly: boolean): Awaitable<string>;

  /**
   * A client chose an export. Call `next(exportName, readonly)` to open the
   * layer below (a filter may pass another name, or readonly=true); return
   * this connection's handle. Default: open the layer below unchanged.
   */
  open?(next: NextOpen, exportName: string, readonly: boolean, client: Client): Awaitable<H>;
  /** Every layer is open (called inner to outer): I/O on `next` is allowed here. */
  prepare?(next: Next, handle: H, readonly: boolean): Awaitable<void>;
  /** The connection is closing, all layers still open (outer to inner): flush what you hold. */
  finalize?(next: Next, handle: H): Awaitable<void>;
  /** After finalize; the layer below is closed after this. */
  close?(handle: H): Awaitable<void>;

  exportDescription?(next: Next, handle: H): Awaitable<string | undefined>;
  getSize?(next: Next, handle: H): Awaitable<number | bigint>;
  blockSize?(next: Next, handle: H): Awaitable<BlockSize | undefined>;
  canWrite?(next: Next, handle: H): Awaitable<boolean>;
  canFlush?(next: Next, handle: H): Awaitable<boolean>;
  canTrim?(next: Next, handle: H): Awaitable<boolean>;
  /** 'emulate': the engine writes zeros through this filter's pwrite. */
  canZero?(next: Next, handle: H): Awaitable<Support>;
  canFastZero?(next: Next, handle: H): Awaitable<boolean>;
  /** 'emulate': the engine flushes through this filter after a FUA write. */
  canFua?(next: Next, handle: H): Awaitable<Support>;
  canExtents?(next: Next, handle: H): Awaitable<boolean>;
  /** 'emulate': the engine reads through this filter and discards the data. */
  canCache?(next: Next, handle: H): Awaitable<Support>;
  canMultiConn?(next: Next, handle: H): Awaitable<boolean>;
  isRotational?(next: Next, handle: H): Awaitable<boolean>;

  /**
   * Fill `buf` from `offset`, or return buffers of your own whose lengths add
   * up to buf.length (`return next.read(buf.length, offset, flags)` passes the
   * data through without a copy).
   */
  pread?(next: Next, handle: H, buf: Buffer, offset: number, flags: FlagBits): Awaitable<ReadResult>;
  /** `buf` is only valid until the returned promise settles: copy what you keep. */
  pwrite?(next: Next, handle: H, buf: Buffer, offset: number, flags: FlagBits): Awaitable<void>;
  flush?(next: Next, handle: H, flags: FlagBits): Awaitable<void>;
  trim?(next: Next, handle: H, count: number, offset: number, flags: FlagBits): Awaitable<void>;
  zero?(next: Next, handle: H, count: number, offset: number, flags: FlagBits): Awaitable<void>;
  extents?(next: Next, handle: H, count: number, offset: number, flags: FlagBits): Awaitable<readonly Extent[]>;
  cache?(next: Next, handle: H, count: number, offset: number, flags: FlagBits): Awaitable<void>;
}

/** Identity function that infers C from the config schema and checks the filter's shape. */
export function defineFilter<S extends z.ZodType<unknown, Record<string, string>>, H = undefined>(
  filter: Omit<Filter<z.output<S>, H>, 'config'> & { config: S },
): Filter<z.output<S>, H>;
export function defineFilter<H = undefined>(filter: Filter<Record<string, never>, H>): Filter<Record<string, never>, H>;
export function defineFilter(filter: Filter<unknown, unknown>): Filter<unknown, unknown> {
  return filter;
}
