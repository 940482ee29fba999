import { constants as bufferConstants } from 'node:buffer';
import { Pool, type Dispatcher } from 'undici';
import { StoreError } from './store.ts';
import { networkError, noAnswer } from './net-errors.ts';
import { PlainGets } from './plain-get.ts';
import { bigBuffer, own } from './buffers.ts';

export const DEFAULT_CONNECTIONS = 32;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export interface HttpTransportOptions {
  /** Sockets per origin (the most requests in flight to one host). Default 32. */
  connections?: number;
  /** Time limit for opening a TCP (and TLS) connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** How long an idle keep-alive socket is kept. Default 4 s (undici's), shortened by the server's Keep-Alive hint. */
  keepAliveTimeoutMs?: number;
  /**
   * GETs read their bodies straight into the returned buffer
   * (plain-get.ts). Default on; NBDTS_NO_PLAIN_GET=1 in the environment turns
   * it off, for comparison or if a store's answers trip it up.
   */
  plainGets?: boolean;
  /** Extra CA certificates to trust for https (besides Node's and NODE_EXTRA_CA_CERTS), e.g. a private CA's. */
  ca?: string | Buffer;
}

export interface TransportRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** The whole exchange, reading the body included. Default 30 s; 0 = none. */
  timeoutMs?: number;
  /** The caller's abort: rejects with the signal's reason, never as a transient error. */
  signal?: AbortSignal;
  /** For error messages, e.g. "GET disk.part/00000001 in c1". Never include secrets. */
  what: string;
}

export interface TransportResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". No prototype, so any name is safe to look up. */
  headers: Record<string, string>;
  body: Buffer;
}

/** A header value as a string: repeated headers joined, as fetch's Headers does. */
function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}

/**
 * Collects one response: status, headers and the body in one buffer. The body
 * is read in full even for error statuses, so the socket goes back to the pool.
 */
class Exchange implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  #done = false;
  #status = 0;
  #headers: Record<string, string> = Object.create(null) as Record<string, string>;
  /** Preallocated from Content-Length, filled at #received; or undefined with #chunks. */
  #body: Buffer | undefined;
  #expected = -1;
  #received = 0;
  #chunks: Buffer[] = [];
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.#abort(this.#signal!.reason ?? new Error('aborted'), true);

  readonly #req: TransportRequest;
  readonly #resolve: (res: TransportResponse) => void;
  readonly #reject: (err: unknown) => void;

  constructor(req: TransportRequest, resolve: (res: TransportResponse) => void, reject: (err: unknown) => void) {
    this.#req = req;
    this.#resolve = resolve;
    this.#reject = reject;
    const timeoutMs = req.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (timeoutMs > 0) {
      this.#timer = setTimeout(() => this.#abort(noAnswer(req.what, timeoutMs), false), timeoutMs);
    }
    if (req.signal) {
      this.#signal = req.signal;
      req.signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  /** Settle once: later callbacks (undici reporting the abort we asked for) are ignored. */
  #settle(): boolean {
    if (this.#done) return false;
    this.#done = true;
    clearTimeout(this.#timer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    return true;
  }

  /** A deadline or the caller's abort. Before the request has a socket, undici is told in onRequestStart. */
  #abort(reason: unknown, byCaller: boolean): void {
    if (!this.#settle()) return;
    const err = reason instanceof Error ? reason : new Error(String(reason));
    this.#controller?.abort(err);
    this.#reject(byCaller ? reason : networkError(err, this.#req.what));
  }

  #fail(err: StoreError): void {
    if (!this.#settle()) return;
    this.#controller?.abort(err);
    this.#reject(err);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#done) controller.abort(new Error('request ended before it was sent'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (status < 200) return; // 100 Continue and friends: the real answer follows
    this.#status = status;
    for (const name in headers) this.#headers[name] = headerValue(headers[name]);
    // No body whatever Content-Length says: HEAD answers, 204 and 304.
    if (this.#req.method === 'HEAD' || status === 204 || status === 304) {
      this.#expected = 0;
      return;
    }
    const cl = this.#headers['content-length'];
    if (cl !== undefined && /^\d+$/.test(cl)) {
      const n = Number(cl);
      if (n > bufferConstants.MAX_LENGTH) {
        this.#fail(new StoreError('fatal', `${this.#req.what}: the response is too large (${n} bytes)`, status));
        return;
      }
      this.#expected = n;
      // Exactly one copy, from the socket's chunks into the final buffer; every byte is written before it is returned.
      if (n > 0) this.#body = own(bigBuffer(n, false)); // never touched once returned: reusable (buffers.ts)
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#done) return;
    if (this.#expected < 0) {
      // Socket chunks are not reused by undici, so keeping them until the end is safe.
      this.#chunks.push(chunk);
      this.#received += chunk.length;
      return;
    }
    if (this.#received + chunk.length > this.#expected || this.#body === undefined) {
      this.#fail(this.#lengthError(this.#received + chunk.length, 'more than'));
      return;
    }
    chunk.copy(this.#body, this.#received);
    this.#received += chunk.length;
  }

  onResponseEnd(): void {
    if (this.#done) return;
    let body: Buffer;
    if (this.#expected < 0) {
      body = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#received);
    } else if (this.#received !== this.#expected) {
      this.#fail(this.#lengthError(this.#received, 'only'));
      return;
    } else {
      body = this.#body ?? Buffer.alloc(0);
    }
    if (!this.#settle()) return;
    this.#resolve({ status: this.#status, headers: this.#headers, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.refused(err);
  }

  /** The request failed before or during the exchange. */
  refused(err: unknown): void {
    if (!this.#settle()) return;
    this.#reject(networkError(err, this.#req.what));
  }

  #lengthError(got: number, how: string): StoreError {
    return new StoreError(
      'transient',
      `${this.#req.what}: the response body is ${how} its Content-Length (${got} bytes received, ${this.#expected} announced)`,
      this.#status,
    );
  }
}

/**
 * A lean HTTP/1.1 client for object stores: keep-alive sockets per origin
 * (no pipelining), each exchange read into one Buffer, network failures as
 * StoreErrors. It skips what fetch costs per request (WHATWG streams,
 * Headers, body mixins), which on a 2-core box is CPU the store needs.
 * Redirects are not followed: a 3xx is returned like any other status.
 */
export class HttpTransport {
  readonly #options: Pool.Options;
  /**
   * One Pool per origin, not an undici Agent: undici 7's Agent closes an
   * origin's pool whenever its last socket closes (after any HEAD, or an idle
   * timeout), and the late 'disconnect' of the closed pool is then counted
   * against its replacement, which it closes in turn, so from then on every
   * request opened a new connection.
   */
  readonly #pools = new Map<string, Pool>();
  readonly #plain = new Map<string, PlainGets>();
  readonly #plainOptions: ConstructorParameters<typeof PlainGets>[1] | undefined;
  #closed = false;

  constructor(opts: HttpTransportOptions = {}) {
    const connections = opts.connections ?? DEFAULT_CONNECTIONS;
    if (!Number.isInteger(connections) || connections < 1) {
      throw new RangeError(`HttpTransport: connections must be a positive integer, got ${connections}`);
    }
    this.#options = {
      connections,
      pipelining: 1,
      connect: {
        timeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      },
      ...(opts.keepAliveTimeoutMs !== undefined ? { keepAliveTimeout: opts.keepAliveTimeoutMs } : {}),
    };
    if ((opts.plainGets ?? true) && !process.env.NBDTS_NO_PLAIN_GET) {
      this.#plainOptions = {
        connections,
        connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
        requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
        ca: opts.ca,
      };
    }
  }

  #pool(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, this.#options);
      this.#pools.set(origin, pool);
    }
    return pool;
  }

  /** One exchange. Resolves with any HTTP status; rejects with StoreError for network failures, or the caller's abort reason. */
  async request(req: TransportRequest): Promise<TransportResponse> {
    if (req.signal?.aborted) throw req.signal.reason;
    if (this.#closed) throw new StoreError('fatal', `${req.what}: the HTTP client is closed`);
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      throw new StoreError('fatal', `${req.what}: not a valid URL: ${req.url}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new StoreError('fatal', `${req.what}: only http: and https: URLs are supported, not ${url.protocol}`);
    }
    if (this.#plainOptions && PlainGets.handles(req, url)) {
      let plain = this.#plain.get(url.origin);
      if (!plain) {
        plain = new PlainGets(url, this.#plainOptions);
        this.#plain.set(url.origin, plain);
      }
      const res = await plain.get(req, url);
      if (res) return res;
      // Not sent (an invalid header): undici refuses it with its own message.
    }
    return this.#dispatch(req, url);
  }

  #dispatch(req: TransportRequest, url: URL): Promise<TransportResponse> {
    return new Promise<TransportResponse>((resolve, reject) => {
      const handler = new Exchange(req, resolve, reject);
      try {
        this.#pool(url.origin).dispatch(
          {
            path: url.pathname + url.search,
            method: req.method as Dispatcher.HttpMethod,
            headers: req.headers,
            body: req.body,
          },
          handler,
        );
      } catch (err) {
        // undici validates synchronously (e.g. a header value with a newline): bad input, not the network.
        handler.refused(err);
      }
    });
  }

  /** Close idle sockets and refuse new requests; requests in flight finish first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const pools = [...this.#pools.values()];
    const plain = [...this.#plain.values()];
    this.#pools.clear();
    this.#plain.clear();
    await Promise.all([...pools.map((p) => p.close()), ...plain.map((p) => p.close())]);
  }
}
