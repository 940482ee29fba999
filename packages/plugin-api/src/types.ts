import type { z } from 'zod';
import type { FlagBits, Support } from './flags.ts';

/** Offsets and lengths are byte counts as JS numbers (exact up to 2^53). */
export type Awaitable<T> = T | Promise<T>;

/** NBD_STATE_* bits of an extent in the base:allocation context. */
export const ExtentType = {
  DATA: 0,
  /** Unallocated; reads may or may not return zeros unless ZERO is also set. */
  HOLE: 1,
  /** Reads return zeros. */
  ZERO: 2,
  /** HOLE | ZERO: a sparse region that reads as zeros. */
  SPARSE: 3,
} as const;

export interface Extent {
  offset: number;
  length: number;
  /** Bitwise OR of ExtentType.HOLE and ExtentType.ZERO (0 = allocated data). */
  type: number;
}

/** What the server was asked to do, as getReady sees it. */
export interface ServerInfo {
  /** -r: every export is served read-only, so no write will come (a plugin need not lock). */
  readonly: boolean;
}

export interface ExportInfo {
  name: string;
  description?: string;
}

export interface BlockSize {
  /** Smallest request size the plugin handles (a power of two, 1 to 64 KiB). */
  minimum: number;
  /** Preferred request size (a power of two, at least 512, up to 32 MiB). */
  preferred: number;
  /** Largest request size (a multiple of minimum, or 0xffffffff for "no limit"). */
  maximum: number;
}

/**
 * What a read may return: nothing (the plugin filled the engine's buffer), or
 * buffers of its own whose lengths add up to the request's count. Returned
 * buffers are written to the socket as they are, without a copy; the plugin
 * must not change them afterwards. A plugin that wants such memory back for
 * other data marks the result with lent() and is told when it is free.
 */
export type ReadResult = void | Buffer | readonly Buffer[];

/**
 * A plugin: the engine calls these, in nbdkit's order. Only `open`, `getSize`
 * and one of `pread`/`read` are required; the engine derives the rest:
 *   - canWrite: true when pwrite exists (and the export is not read-only).
 *   - canFlush / canTrim / canExtents / canMultiConn: true when the callback exists (multi-conn: false).
 *   - canZero: 'native' when zero exists, else 'emulate' (pwrite of zeros) when writable.
 *   - canFastZero: true; an emulated zero with FAST_ZERO fails at once with ENOTSUP.
 *   - canFua: 'emulate' (flush after the write) when flush exists, else 'none'.
 *   - canCache: 'native' when cache exists, else 'none' ('emulate' reads and discards).
 *   - extents: without the callback, everything is reported as data.
 *
 * C is the parsed config (the output of `config`), H the handle type returned by open.
 * Callbacks may be sync or async. Throw NbdError (or an error with a Node `code`
 * such as 'ENOSPC') to fail one request; anything else becomes EIO.
 */
export interface Plugin<C = unknown, H = unknown> {
  /** Short name, e.g. "memory": used in logs and by --dump-plugin. */
  name: string;
  version?: string;
  /** One-line summary shown by --help. */
  description?: string;
  /** Longer text shown by --help after the parameter list. */
  usage?: string;

  /** Parameters `key=value`, as a zod object with camelCase keys (kebab-case on the command line). */
  config?: z.ZodType<C, Record<string, string>>;
  /** A bare argument without `=` is taken as this key (e.g. `nbdts file disk.img`). */
  magicConfigKey?: string;

  /** The config is parsed: check combinations of parameters. Throw ConfigError to refuse. */
  configComplete?(config: C): Awaitable<void>;
  /** About to serve: connect to stores, take locks (not when `server.readonly`). Throw ConfigError for one clear line at start. */
  getReady?(config: C, server: ServerInfo): Awaitable<void>;
  /** The server is stopping (after every handle was flushed and closed): release everything. */
  unload?(): Awaitable<void>;

  /** Exports for NBD_OPT_LIST. Default: one export, the default one. */
  listExports?(readonly: boolean): Awaitable<ExportInfo[]>;
  /** The name the empty export name "" means. Default: "". */
  defaultExport?(readonly: boolean): Awaitable<string>;

  /** A client connected and chose an export. `readonly` is true with -r or when the client may not write. */
  open(exportName: string, readonly: boolean): Awaitable<H>;
  /** The connection is closing; in-flight requests have finished. */
  close?(handle: H): Awaitable<void>;
  /** Shown to clients that ask for it (NBD_INFO_DESCRIPTION). */
  exportDescription?(handle: H): Awaitable<string | undefined>;

  getSize(handle: H): Awaitable<number | bigint>;
  blockSize?(handle: H): Awaitable<BlockSize | undefined>;

  canWrite?(handle: H): Awaitable<boolean>;
  canFlush?(handle: H): Awaitable<boolean>;
  canTrim?(handle: H): Awaitable<boolean>;
  canZero?(handle: H): Awaitable<Support>;
  canFastZero?(handle: H): Awaitable<boolean>;
  canFua?(handle: H): Awaitable<Support>;
  canExtents?(handle: H): Awaitable<boolean>;
  canCache?(handle: H): Awaitable<Support>;
  canMultiConn?(handle: H): Awaitable<boolean>;
  isRotational?(handle: H): Awaitable<boolean>;

  /**
   * How many requests one handle may have running at once. Default: unlimited
   * (the plugin is safe for concurrent calls). 1 serialises a handle's requests.
   */
  concurrency?: number;

  /**
   * Opt in to serving connections on several threads (see PluginThreads).
   * Without it every connection is served on the main thread.
   */
  threads?: PluginThreads;

  /** Fill `buf` (buf.length bytes) from `offset`, or return buffers of your own (see ReadResult). */
  pread?(handle: H, buf: Buffer, offset: number, flags: FlagBits): Awaitable<ReadResult>;
  /** Alternative to pread for plugins that hold data in memory: return `count` bytes without a copy. */
  read?(handle: H, count: number, offset: number, flags: FlagBits): Awaitable<Buffer | readonly Buffer[]>;
  /** `buf` is only valid until the returned promise settles: copy what you keep. Flags: FUA. */
  pwrite?(handle: H, buf: Buffer, offset: number, flags: FlagBits): Awaitable<void>;
  /** Make every completed write durable. */
  flush?(handle: H, flags: FlagBits): Awaitable<void>;
  /** Discard a range (advisory: later reads may return old data or zeros). Flags: FUA. */
  trim?(handle: H, count: number, offset: number, flags: FlagBits): Awaitable<void>;
  /** Write zeros. Flags: MAY_TRIM, FUA, FAST_ZERO (throw ENOTSUP if it cannot be fast). */
  zero?(handle: H, count: number, offset: number, flags: FlagBits): Awaitable<void>;
  /**
   * Allocation status from `offset` for at least one byte (up to `count`).
   * Return extents in order, contiguous, starting at or before `offset`;
   * the engine clips, merges and honours REQ_ONE.
   */
  extents?(handle: H, count: number, offset: number, flags: FlagBits): Awaitable<readonly Extent[]>;
  /** Prefetch a range (NBD_CMD_CACHE). */
  cache?(handle: H, count: number, offset: number, flags: FlagBits): Awaitable<void>;
}

/**
 * How a plugin lets the engine serve connections on worker threads. Each
 * worker loads the plugin module afresh (its own module state), so the
 * workers' copies must reach the same data as the main thread's: a file by
 * its path, memory shared between threads, a store by its address.
 *
 *   1. Main thread, once, after getReady: `share()` returns what a copy needs,
 *      as a structured-clonable value (numbers, strings, SharedArrayBuffers...).
 *      Return undefined to decline; then connections stay on the main thread.
 *   2. Each worker: `attach(shared)` instead of config parsing and getReady.
 *      Then open, the callbacks and close run in that worker as usual.
 *
 * Requests from different threads run truly at the same time: shared data
 * must tolerate it (NBD leaves overlapping requests in flight unordered, but
 * nothing may corrupt memory or metadata). unload runs on the main thread
 * only, after every worker has stopped.
 */
export interface PluginThreads {
  share(): unknown;
  attach(shared: unknown): Awaitable<void>;
}

/** Identity function that infers C from the config schema and checks the plugin's shape. */
export function definePlugin<S extends z.ZodType<unknown, Record<string, string>>, H>(
  plugin: Omit<Plugin<z.output<S>, H>, 'config'> & { config: S },
): Plugin<z.output<S>, H>;
export function definePlugin<H>(plugin: Plugin<Record<string, never>, H>): Plugin<Record<string, never>, H>;
export function definePlugin(plugin: Plugin<unknown, unknown>): Plugin<unknown, unknown> {
  return plugin;
}
