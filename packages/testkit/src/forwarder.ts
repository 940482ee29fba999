import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP forwarder on 127.0.0.1 (a port chosen at the first up(), kept afterwards) to a
 * local service, that a test can take down and bring back: simulates the service going
 * away without stopping the real one, which other tests may be using meanwhile.
 * down() closes the listening socket and resets every connection through it, which is
 * what a client sees when the service dies: connection reset, then connection refused.
 */
export class Forwarder {
  /** http://127.0.0.1:PORT, valid once up() has run. */
  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  port = 0;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  readonly #targetPort: number;
  readonly #targetHost;

  constructor(targetPort: number, targetHost = '127.0.0.1') {
    this.#targetPort = targetPort;
    this.#targetHost = targetHost;
  }

  /** Listen (again, on the same port once one was chosen) and forward new connections. */
  async up(): Promise<void> {
    if (this.#server) return;
    const server = createServer((client) => {
      const upstream = connect(this.#targetPort, this.#targetHost);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  /** Stop listening (new connections are refused) and reset every open connection. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.#sockets) s.resetAndDestroy();
    await closed;
  }
}
