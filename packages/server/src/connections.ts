/** The connections one engine instance serves (the main thread's, or a worker thread's). */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Client } from '@nbdts/plugin-api';
import type { Stack } from './api.ts';
import { Backend } from './backend.ts';
import { Connection } from './connection.ts';

export interface EngineSettings {
  readonly: boolean;
  maxPayload: number;
  maxInFlightBytes: number;
  handshakeTimeoutMs: number;
}

/** Who is at the other end of `stream`, for filters (ip, limit, log). */
function clientOf(stream: Duplex, id: number): Client {
  if (!(stream instanceof net.Socket)) return { id, transport: 'stdio', tls: false };
  const address = stream.remoteAddress;
  if (address === undefined) return { id, transport: 'unix', tls: false };
  return { id, transport: 'tcp', address, port: stream.remotePort ?? 0, tls: false };
}

export class ConnectionSet {
  readonly #backend: Backend;
  readonly #log: Logger;
  readonly #settings: EngineSettings;
  readonly #open = new Set<Connection>();
  #stopping = false;

  constructor(stack: Stack, settings: EngineSettings, log: Logger) {
    this.#settings = settings;
    this.#log = log;
    this.#backend = new Backend(stack.plugin, stack.filters ?? [], settings.readonly, settings.maxPayload, (m) =>
      log.warn(m),
    );
  }

  get size(): number {
    return this.#open.size;
  }
  get stopping(): boolean {
    return this.#stopping;
  }

  /** Serve one connection; `onClosed` runs once it has fully closed. */
  serve(stream: Duplex, peer: string, id: number, onClosed?: () => void): Connection {
    const clog = this.#log.child({ conn: id });
    clog.debug({ peer }, 'connection');
    const s = this.#settings;
    const conn = new Connection(stream, {
      backend: this.#backend,
      client: clientOf(stream, id),
      log: clog,
      maxInFlightBytes: s.maxInFlightBytes,
      maxPayload: s.maxPayload,
      handshakeTimeoutMs: s.handshakeTimeoutMs,
      shuttingDown: () => this.#stopping,
      fastRead: stream instanceof net.Socket,
    });
    this.#open.add(conn);
    void conn.closed.then(() => {
      this.#open.delete(conn);
      clog.debug('connection closed');
      onClosed?.();
    });
    return conn;
  }

  /** Graceful: stop reading requests, finish and flush, close. */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#open].map((c) => c.shutdown()));
  }

  destroy(): void {
    this.#stopping = true;
    for (const c of this.#open) c.destroy();
  }
}
