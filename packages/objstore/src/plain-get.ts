import net from 'node:net';
import tls from 'node:tls';
import { constants as bufferConstants } from 'node:buffer';
import { StoreError } from './store.ts';
import { bigBuffer, own } from './buffers.ts';
import { networkError, noAnswer } from './net-errors.ts';
import type { TransportRequest, TransportResponse } from './http.ts';

/**
 * GETs over HTTP/1.1 whose bodies the kernel reads straight into the
 * buffer that is returned, with no socket chunks in between: sockets made
 * with net's `onread` option, the response head parsed here, then each read
 * aimed at the unfilled rest of the body.
 *
 * Why by hand: a general client (undici, node:http) hands over the body as
 * 64 KiB chunks, each a fresh allocation, copied once more by its parser and
 * once by us into the final buffer. Measured on the 2-core box, 64 GETs of
 * 4 MiB from Ceph RGW, 16 at once: undici 1.3-1.7 ms of CPU per MiB (after
 * JIT warm-up; 2.8-3.2 in a fresh process), this 0.7-0.9, and throughput up
 * 15-20% because the store gets the CPU. Object reads are what a served disk
 * does most.
 *
 * Deliberately narrow: only GET without a request body, no pipelining (one
 * exchange per socket at a time). Over https the same happens to the
 * decrypted bytes (certificates checked as undici checks them: Node's CAs,
 * NODE_EXTRA_CA_CERTS, the `ca` option; SNI for host names). Answers framed
 * by Content-Length take the fast path; chunked and close-delimited ones
 * (small in practice: errors, listings) are decoded through a scratch buffer. A request whose header undici would refuse is
 * handed back unsent, so undici reports it in its words.
 */

/** Room for a response head; most are a few hundred bytes. */
const HEAD_BUFFER = 8 * 1024;
/** A larger head is refused, as undici's default maxHeaderSize does. */
const MAX_HEAD = 64 * 1024;
const DEFAULT_KEEP_ALIVE_MS = 4_000;
const EMPTY = Buffer.alloc(0);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE = /[\r\n\0]/;

export interface PlainGetOptions {
  connections: number;
  connectTimeoutMs: number;
  keepAliveTimeoutMs?: number;
  /** Time limit of an exchange whose request names none (TransportRequest.timeoutMs). */
  requestTimeoutMs: number;
  /** For https: extra trusted CAs (Node's defaults and NODE_EXTRA_CA_CERTS apply as well). */
  ca?: string | Buffer;
}

/** Where one origin's sockets connect. */
interface Endpoint {
  host: string;
  port: number;
  tls: boolean;
  ca?: string | Buffer;
}

/** A reused socket that closed before any answer: the server had dropped it while idle. */
class StaleSocket extends Error {}

interface Exchange {
  what: string;
  resolve(res: TransportResponse): void;
  reject(err: unknown): void;
  /** Bytes of the answer seen so far (a reused socket that closes before any is stale, not failed). */
  seen: number;
  status: number;
  headers: Record<string, string>;
  keepAlive: boolean;
  keepAliveHintMs: number | undefined;
  /** Content-Length framing: the final buffer, filled up to `received`. */
  body: Buffer | undefined;
  received: number;
  /** Chunked or close-delimited framing: the body so far, in pieces. */
  parts: Buffer[];
  partsLength: number;
  /** Chunked framing: data bytes left in this chunk, a CRLF due after it, in the trailer section. */
  chunkLeft: number;
  crlfDue: boolean;
  trailers: boolean;
}

/**
 * How the current answer is read. 'length' is the fast one: reads go into
 * the body itself. The others (small answers in practice: errors, listings)
 * read into the scratch buffer and copy out.
 */
type Mode = 'head' | 'length' | 'chunked' | 'eof';

/** One keep-alive socket and the exchange on it. */
class Conn {
  readonly socket: net.Socket;
  /** Scratch: bytes of the head (or of a chunked body) not yet parsed, from #buf[0]. */
  #buf = Buffer.allocUnsafe(HEAD_BUFFER);
  #bufLen = 0;
  #mode: Mode = 'head';
  /** Where the next socket read lands: the free part of #buf, or the unfilled rest of the body. */
  #target: Buffer;
  #ex: Exchange | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  /** Served an exchange before: a close before the next answer means the server dropped it. */
  reused = false;
  closed = false;
  /** The server's Keep-Alive: timeout= from the last answer, in ms. */
  keepAliveHintMs: number | undefined;

  readonly #onGone: (c: Conn) => void;

  constructor(at: Endpoint, connectTimeoutMs: number, onGone: (c: Conn) => void) {
    this.#onGone = onGone;
    this.#target = this.#buf;
    // Node asks for the next read's buffer after each callback; over TLS the buffer gets the decrypted bytes.
    const onread = {
      buffer: () => this.#target,
      callback: (n: number) => {
        this.#onRead(n);
        return true;
      },
    };
    this.socket = at.tls
      ? // tls.connect documents onread (used when it makes the socket itself); @types/node leaves it out.
        tls.connect({
          host: at.host,
          port: at.port,
          servername: net.isIP(at.host) ? undefined : at.host,
          ca: at.ca,
          onread,
        } as tls.ConnectionOptions)
      : net.connect({ host: at.host, port: at.port, onread });
    this.socket.setNoDelay(true);
    this.#connectTimer = setTimeout(
      () => this.#destroy(new StoreError('transient', `connect timed out after ${connectTimeoutMs / 1000} s`)),
      connectTimeoutMs,
    );
    this.socket.once(at.tls ? 'secureConnect' : 'connect', () => clearTimeout(this.#connectTimer));
    this.socket.on('error', (err) => this.#destroy(err));
    // A clean end of stream is the end of a close-delimited body; otherwise 'close' reports it.
    this.socket.on('end', () => {
      if (this.#ex && this.#mode === 'eof') this.#finish(this.#ex, true);
    });
    this.socket.on('close', () => this.#destroy(new StoreError('transient', 'other side closed the connection')));
  }

  get busy(): boolean {
    return this.#ex !== undefined;
  }

  /** Send one GET; the exchange settles through its resolve/reject. */
  send(head: string, ex: Exchange): void {
    clearTimeout(this.#idleTimer);
    this.socket.ref();
    this.#ex = ex;
    this.#mode = 'head';
    this.#bufLen = 0;
    this.#target = this.#buf;
    this.socket.write(head);
  }

  /** End the exchange early (its deadline, the caller's abort, close): the socket cannot be reused. */
  abandon(): void {
    this.#ex = undefined;
    this.#destroy(new Error('abandoned'));
  }

  #onRead(n: number): void {
    const ex = this.#ex;
    if (!ex) {
      // Nothing was asked: a server talking out of turn cannot be trusted with the next request.
      this.#destroy(new Error('data on an idle connection'));
      return;
    }
    ex.seen += n;
    if (this.#mode === 'length') {
      ex.received += n;
      if (ex.received < ex.body!.length) this.#target = ex.body!.subarray(ex.received);
      else this.#finish(ex, false);
      return;
    }
    this.#bufLen += n;
    try {
      if (this.#mode === 'head') this.#parseHead(ex);
      if (this.#mode === 'chunked') this.#parseChunks(ex);
      else if (this.#mode === 'eof') this.#takeAll(ex);
      if (this.#ex === ex && (this.#mode as Mode) !== 'length') this.#makeRoom(ex);
    } catch (err) {
      this.#ex = undefined;
      this.#destroy(err);
      ex.reject(err instanceof StoreError ? err : new StoreError('transient', `${ex.what}: ${(err as Error).message}`));
    }
  }

  /** Aim the next read at the free end of the scratch buffer, growing it for a long head or line. */
  #makeRoom(ex: Exchange): void {
    if (this.#bufLen === this.#buf.length) {
      if (this.#buf.length >= MAX_HEAD)
        throw new StoreError(
          'transient',
          `${ex.what}: a response header or chunk line is longer than ${MAX_HEAD / 1024} KiB`,
        );
      const bigger = Buffer.allocUnsafe(Math.min(MAX_HEAD, this.#buf.length * 2));
      this.#buf.copy(bigger, 0, 0, this.#bufLen);
      this.#buf = bigger;
    }
    this.#target = this.#buf.subarray(this.#bufLen);
  }

  /** Drop the first `n` scratch bytes (parsed). */
  #consume(n: number): void {
    this.#buf.copy(this.#buf, 0, n, this.#bufLen);
    this.#bufLen -= n;
  }

  /** Parse the head if it is complete, and choose how to read the body. */
  #parseHead(ex: Exchange): void {
    for (;;) {
      const end = this.#buf.subarray(0, this.#bufLen).indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.#buf.toString('latin1', 0, end).split('\r\n');
      const m = /^HTTP\/1\.([01]) (\d{3})(?: |$)/.exec(lines[0]!);
      if (!m) throw new StoreError('transient', `${ex.what}: not an HTTP/1.x response`);
      const status = Number(m[2]);
      this.#consume(end + 4);
      if (status < 200) continue; // 100 Continue and friends: the real answer follows
      const headers = Object.create(null) as Record<string, string>;
      for (let i = 1; i < lines.length; i++) {
        const line = lines[i]!;
        const colon = line.indexOf(':');
        // Obsolete line folding or a line without a name: undici refuses these too.
        if (colon <= 0 || line[0] === ' ' || line[0] === '\t')
          throw new StoreError('transient', `${ex.what}: malformed response header`);
        const name = line.slice(0, colon).toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      const connection = (headers['connection'] ?? '').toLowerCase();
      ex.status = status;
      ex.headers = headers;
      ex.keepAlive = m[1] === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
      const hint = /\btimeout=(\d+)/i.exec(headers['keep-alive'] ?? '');
      ex.keepAliveHintMs = hint ? Number(hint[1]) * 1000 : undefined;
      if (status === 204 || status === 304) return this.#lengthBody(ex, 0);
      const te = headers['transfer-encoding'];
      if (te !== undefined) {
        if (!/(^|,)\s*chunked\s*$/i.test(te))
          throw new StoreError('transient', `${ex.what}: unsupported Transfer-Encoding '${te}'`);
        this.#mode = 'chunked';
        return;
      }
      const cl = headers['content-length'];
      if (cl === undefined) {
        this.#mode = 'eof';
        ex.keepAlive = false;
        return;
      }
      if (!/^\d+$/.test(cl)) throw new StoreError('transient', `${ex.what}: bad Content-Length '${cl}'`);
      const length = Number(cl);
      if (length > bufferConstants.MAX_LENGTH)
        throw new StoreError('fatal', `${ex.what}: the response is too large (${length} bytes)`, status);
      return this.#lengthBody(ex, length);
    }
  }

  /** A body of known length: at most the bytes that came with the head are copied, the rest is read in place. */
  #lengthBody(ex: Exchange, length: number): void {
    // Owned (buffers.ts): once returned, this object never touches the body again.
    const body = length > 0 ? own(bigBuffer(length, false)) : EMPTY;
    const take = Math.min(this.#bufLen, length);
    this.#buf.copy(body, 0, 0, take);
    // Bytes beyond the body answer nothing we asked: finish, and do not reuse the socket.
    const extra = this.#bufLen > length;
    this.#bufLen = 0;
    ex.body = body;
    ex.received = take;
    if (take < length) {
      this.#mode = 'length';
      this.#target = body.subarray(take);
    } else {
      this.#finish(ex, extra);
    }
  }

  /** Decode what the scratch buffer holds of a chunked body. */
  #parseChunks(ex: Exchange): void {
    let pos = 0;
    while (pos < this.#bufLen) {
      if (ex.chunkLeft > 0) {
        const take = Math.min(ex.chunkLeft, this.#bufLen - pos);
        ex.parts.push(Buffer.from(this.#buf.subarray(pos, pos + take)));
        ex.partsLength += take;
        ex.chunkLeft -= take;
        ex.crlfDue = ex.chunkLeft === 0;
        pos += take;
        continue;
      }
      const eol = this.#buf.subarray(pos, this.#bufLen).indexOf('\r\n');
      if (eol < 0) break;
      const line = this.#buf.toString('latin1', pos, pos + eol);
      pos += eol + 2;
      if (ex.crlfDue) {
        if (line !== '') throw new StoreError('transient', `${ex.what}: malformed chunked body`);
        ex.crlfDue = false;
      } else if (ex.trailers) {
        if (line !== '') continue;
        this.#consume(pos);
        const extra = this.#bufLen > 0;
        this.#bufLen = 0;
        ex.body = Buffer.concat(ex.parts, ex.partsLength);
        this.#finish(ex, extra);
        return;
      } else {
        const size = /^([0-9a-fA-F]{1,12})[ \t]*(;.*)?$/.exec(line);
        if (!size) throw new StoreError('transient', `${ex.what}: malformed chunk size '${line.slice(0, 40)}'`);
        ex.chunkLeft = parseInt(size[1]!, 16);
        if (ex.partsLength + ex.chunkLeft > bufferConstants.MAX_LENGTH)
          throw new StoreError('fatal', `${ex.what}: the response is too large`);
        if (ex.chunkLeft === 0) ex.trailers = true;
      }
    }
    this.#consume(pos);
  }

  /** A close-delimited body: everything until the server closes. */
  #takeAll(ex: Exchange): void {
    if (this.#bufLen === 0) return;
    ex.parts.push(Buffer.from(this.#buf.subarray(0, this.#bufLen)));
    ex.partsLength += this.#bufLen;
    this.#bufLen = 0;
  }

  #finish(ex: Exchange, poisoned: boolean): void {
    this.#ex = undefined;
    this.#mode = 'head';
    this.#target = this.#buf;
    ex.body ??= Buffer.concat(ex.parts, ex.partsLength);
    ex.resolve({ status: ex.status, headers: ex.headers, body: ex.body });
    if (poisoned || !ex.keepAlive) {
      this.#destroy(new Error('not reusable'));
      return;
    }
    this.reused = true;
    this.keepAliveHintMs = ex.keepAliveHintMs;
    this.#onGone(this);
  }

  /** Idle in the pool: unreferenced, closed after `ms`. */
  idle(ms: number): void {
    this.socket.unref();
    this.#idleTimer = setTimeout(() => this.#destroy(new Error('idle')), ms);
  }

  #destroy(err: unknown): void {
    const ex = this.#ex;
    this.#ex = undefined;
    if (ex) {
      // Nothing of an answer came on a socket that served before: the server closed it while idle.
      if (this.reused && ex.seen === 0) ex.reject(new StaleSocket());
      else
        ex.reject(
          err instanceof StoreError
            ? new StoreError(err.kind, `${ex.what}: ${err.message}`, err.status)
            : networkError(err, ex.what),
        );
    }
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#idleTimer);
    this.socket.destroy();
    this.#onGone(this);
  }
}

/** The plain-HTTP GET sockets of one origin. */
export class PlainGets {
  readonly #at: Endpoint;
  readonly #hostHeader: string;
  readonly #opts: PlainGetOptions;
  readonly #idle: Conn[] = [];
  readonly #all = new Set<Conn>();
  readonly #waiters: Array<(c: Conn) => void> = [];
  #closed = false;
  #drained: (() => void) | undefined;

  constructor(url: URL, opts: PlainGetOptions) {
    const secure = url.protocol === 'https:';
    this.#at = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : secure ? 443 : 80,
      tls: secure,
      ca: opts.ca,
    };
    this.#hostHeader = url.host;
    this.#opts = opts;
  }

  /** Whether this client takes the request at all. */
  static handles(req: TransportRequest, url: URL): boolean {
    return req.method === 'GET' && req.body === undefined && (url.protocol === 'http:' || url.protocol === 'https:');
  }

  /**
   * The exchange, or undefined (nothing sent) when a header name or value is
   * not valid HTTP. Rejects as HttpTransport.request does.
   */
  async get(req: TransportRequest, url: URL): Promise<TransportResponse | undefined> {
    const head = this.#requestHead(req, url);
    if (head === undefined) return undefined;
    const timeoutMs = req.timeoutMs ?? this.#opts.requestTimeoutMs;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#exchange(req, head, timeoutMs, deadline);
      } catch (err) {
        // A socket the server dropped while idle: once more on a new one, as undici does.
        if (err instanceof StaleSocket && attempt === 0) continue;
        if (err instanceof StaleSocket)
          throw new StoreError('transient', `${req.what}: the server closed the connection`);
        throw err;
      }
    }
  }

  #requestHead(req: TransportRequest, url: URL): string | undefined {
    let host = this.#hostHeader;
    let head = '';
    for (const [name, value] of Object.entries(req.headers ?? {})) {
      if (!TOKEN.test(name) || BAD_VALUE.test(value)) return undefined; // undici gives the precise error
      if (name.toLowerCase() === 'host') host = value;
      else head += `${name}: ${value}\r\n`;
    }
    return `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${host}\r\n${head}\r\n`;
  }

  #exchange(req: TransportRequest, head: string, timeoutMs: number, deadline: number): Promise<TransportResponse> {
    return new Promise<TransportResponse>((resolve, reject) => {
      let conn: Conn | undefined;
      let waiter: ((c: Conn) => void) | undefined;
      let done = false;
      const settle = (): boolean => {
        if (done) return false;
        done = true;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const giveUp = (err: unknown): void => {
        if (!settle()) return;
        if (waiter) this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        conn?.abandon();
        reject(err);
      };
      const onAbort = (): void => giveUp(req.signal!.reason);
      const ms = deadline - Date.now();
      const timer = Number.isFinite(deadline)
        ? setTimeout(() => giveUp(noAnswer(req.what, timeoutMs)), Math.max(0, ms))
        : undefined;
      req.signal?.addEventListener('abort', onAbort, { once: true });
      const ex: Exchange = {
        what: req.what,
        seen: 0,
        status: 0,
        headers: {},
        keepAlive: false,
        keepAliveHintMs: undefined,
        body: undefined,
        received: 0,
        parts: [],
        partsLength: 0,
        chunkLeft: 0,
        crlfDue: false,
        trailers: false,
        resolve: (res) => {
          if (settle()) resolve(res);
        },
        reject: (err) => {
          if (settle()) reject(err);
        },
      };
      const start = (c: Conn): void => {
        waiter = undefined;
        if (done) {
          this.#release(c);
          return;
        }
        conn = c;
        c.send(head, ex);
      };
      const idle = this.#idle.pop();
      if (idle) start(idle);
      else if (this.#all.size < this.#opts.connections) start(this.#open());
      else {
        waiter = start;
        this.#waiters.push(start);
      }
    });
  }

  #open(): Conn {
    const c = new Conn(this.#at, this.#opts.connectTimeoutMs, (gone) => this.#onConnDone(gone));
    this.#all.add(c);
    return c;
  }

  /** A socket finished an exchange (back to the pool or the next waiter) or closed. */
  #onConnDone(c: Conn): void {
    if (c.closed) {
      this.#all.delete(c);
      const at = this.#idle.indexOf(c);
      if (at >= 0) this.#idle.splice(at, 1);
      // A waiter may now open a socket of its own.
      if (this.#waiters.length > 0 && this.#all.size < this.#opts.connections) this.#waiters.shift()!(this.#open());
      if (this.#all.size === 0) this.#drained?.();
      return;
    }
    this.#release(c);
  }

  #release(c: Conn): void {
    if (c.closed || c.busy) return;
    const next = this.#waiters.shift();
    if (next) {
      next(c);
      return;
    }
    if (this.#closed) {
      c.abandon();
      return;
    }
    this.#idle.push(c);
    // Close it a second before the server would (its Keep-Alive hint), so a request never meets a closing socket.
    const ms = Math.min(this.#opts.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_MS, (c.keepAliveHintMs ?? Infinity) - 1000);
    if (ms <= 0) c.abandon();
    else c.idle(ms);
  }

  /** Close idle sockets now, the others when their exchange is done. */
  close(): Promise<void> {
    this.#closed = true;
    for (const c of [...this.#idle]) c.abandon();
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
  }
}
