/** The connections one engine instance serves (the main thread's, or a worker thread's). */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Backend } from './backend.ts';
import { Connection } from './connection.ts';

export interface EngineSettings {
  readonly: boolean;
  maxPayload: number;
  maxInFlightBytes: number;
  handshakeTimeoutMs: number;
}

export class ConnectionSet {
  readonly #backend: Backend;
  readonly #log: Logger;
  readonly #settings: EngineSettings;
  readonly #open = new Set<Connection>();
  #stopping = false;

  constructor(plugin: ConstructorParameters<typeof Backend>[0], settings: EngineSettings, log: Logger) {
    this.#settings = settings;
    this.#log = log;
    this.#backend = new Backend(plugin, settings.readonly, settings.maxPayload, (m) => log.warn(m));
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
