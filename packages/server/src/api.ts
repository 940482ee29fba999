/**
 * The engine's public surface, used by the CLI (and by tests that embed a server).
 * The engine never imports a plugin: it is handed a Plugin object.
 */
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Plugin, Filter } from '@nbdts/plugin-api';

/** A plugin and the filters stacked on it (filters[0] outermost, nearest the client, as nbdkit orders --filter). */
export interface Stack {
  plugin: Plugin<unknown, unknown>;
  filters?: readonly Filter<unknown, unknown>[];
}
import type { ThreadSpec } from './threads.ts';

export type { ThreadSpec };

export interface ServerOptions {
  /** A plugin whose configComplete/getReady already ran. */
  plugin: Plugin<unknown, unknown>;
  /** Filters stacked on it, ready too (filters[0] outermost, nearest the client). */
  filters?: readonly Filter<unknown, unknown>[];
  /** -r: every export is read-only whatever the plugin says. */
  readonly?: boolean;
  logger: Logger;
  /** A connection stops reading requests while this many payload bytes are in flight. Default 64 MiB. */
  maxInFlightBytes?: number;
  /** Largest request payload served (writes, reads). Default 32 MiB. */
  maxPayload?: number;
  /** Handshake must finish within this many ms, else the connection is dropped. Default 60 s. */
  handshakeTimeoutMs?: number;
  /**
   * Serve listener connections on worker threads, each with its own copy of
   * the plugin (see PluginThreads in the plugin API). Connections from
   * serveStream stay on the main thread, as does everything when the threads
   * cannot start (a warning says why).
   */
  threads?: ThreadSpec;
}

export interface ServerHandle {
  /** Listen on TCP. host undefined = all addresses (IPv4 and IPv6). Resolves with the bound addresses (port 0 picks one). */
  listenTcp(host: string | undefined, port: number): Promise<AddressInfo[]>;
  /** Listen on a Unix socket (removes a stale socket file first). */
  listenUnix(path: string): Promise<void>;
  /** Serve one connection on an existing stream (-s on stdin/stdout, or a socket a test made). Resolves when it ends. */
  serveStream(stream: Duplex): Promise<void>;
  /** Number of open client connections. */
  readonly connectionCount: number;
  /** Called whenever a connection ends (for --run / -s bookkeeping). */
  onConnectionClosed(cb: () => void): void;
  /**
   * Graceful stop: stop accepting, stop reading new requests, let in-flight
   * requests finish and their replies go out, flush every writable handle,
   * close handles, close connections. Does not call plugin.unload (the caller does).
   */
  shutdown(): Promise<void>;
  /** Immediate stop: destroy every connection and listener. */
  destroy(): void;
}

export type CreateServer = (opts: ServerOptions) => ServerHandle;
