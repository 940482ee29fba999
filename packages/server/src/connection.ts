/**
 * One client connection: handshake, then the transmission phase.
 *
 * Hot path design: requests are parsed straight out of incoming chunks by a
 * small state machine (a header split across chunks is assembled in a fixed
 * 28-byte scratch buffer). Sockets are read into one reused buffer
 * (fastread.ts); a large write payload's tail is read straight into its
 * pooled buffer, and what arrived with the header is copied once. Reads go
 * through plugin.read (zero copy) or pread into a pooled buffer. Synchronous
 * plugin results are answered without a promise. Requests are checked by
 * validate.ts; every reply is written by reply-writer.ts.
 * Flow control: reading stops while in-flight payload bytes plus replies
 * queued on the socket exceed maxInFlightBytes.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Flag, releaseOf, type Client, type Extent } from '@nbdts/plugin-api';
import {
  Cmd,
  CmdFlag,
  REQUEST_MAGIC,
  REQUEST_SIZE,
  cmdName,
  errName,
  newRequestHeader,
  parseRequestInto,
  type RequestHeader,
} from '@nbdts/protocol';
import { isPromiseLike } from './awaitable.ts';
import type { Backend, OpenHandle } from './backend.ts';
import { extentDescriptors } from './block-status.ts';
import { errnoName, toNbdError } from './errno.ts';
import { negotiate, type Negotiated } from './handshake.ts';
import { installReadBuffer, type ReadTarget } from './fastread.ts';
import { ByteReader, ConnectionClosed } from './reader.ts';
import { ReplyWriter } from './reply-writer.ts';
import { validateRequest, type Session } from './validate.ts';

export interface ConnectionOptions {
  backend: Backend;
  /** Who connected: filters' preconnect and open see it. */
  client: Client;
  log: Logger;
  maxInFlightBytes: number;
  maxPayload: number;
  handshakeTimeoutMs: number;
  shuttingDown(): boolean;
  /** The stream is an accepted net.Socket not yet reading: try the reused read buffer. */
  fastRead?: boolean;
}

/**
 * Where a connection is in its life. It only moves forward, except that the
 * socket closing early moves it straight to Draining.
 */
const Phase = {
  /** Option negotiation. */
  Handshake: 0,
  /** Reading and serving requests. */
  Serving: 1,
  /** No more requests are read (DISC, end of input, protocol error, shutdown, socket closed); those in flight finish. */
  Draining: 2,
  /** Nothing in flight: flushing (at shutdown) and closing the plugin handle. */
  Closing: 3,
  /** The handle is closed and our side of the stream ended; waiting for the socket to close. */
  Ended: 4,
  /** Socket and handle closed: `closed` has resolved. */
  Closed: 5,
} as const;
type Phase = (typeof Phase)[keyof typeof Phase];

/** What the request parser expects next while serving. */
const Input = {
  Header: 0,
  Payload: 1,
  /** The payload of a refused write, read and dropped. */
  Discard: 2,
} as const;
type Input = (typeof Input)[keyof typeof Input];

/** Payload tails at least this long are read straight into the payload buffer. */
const DIRECT_READ_MIN = 32 * 1024;

/** A request being served. */
interface Req {
  type: number;
  flags: number;
  cookieHi: number;
  cookieLo: number;
  offset: number;
  length: number;
  /** Bytes counted against maxInFlightBytes. */
  bytes: number;
  payload: Buffer | undefined;
  /** An engine buffer from the pool (write payload or pread target), returned when done. */
  pooled: Buffer | undefined;
}

export class Connection {
  readonly stream: Duplex;
  readonly #o: ConnectionOptions;
  readonly #log: Logger;
  readonly #debug: boolean;
  readonly #replies: ReplyWriter;
  #phase: Phase = Phase.Handshake;
  readonly #reader: ByteReader;
  #handshakeTimer: NodeJS.Timeout | undefined;

  // transmission state
  #handle: OpenHandle | undefined;
  #session: Session | undefined;
  #contextId = 0;
  #input: Input = Input.Header;
  readonly #hdr: RequestHeader = newRequestHeader();
  readonly #scratch = Buffer.allocUnsafe(REQUEST_SIZE);
  #hdrFill = 0;
  #cur: Req | undefined;
  #curFill = 0;
  #discardLeft = 0;
  #stash: Buffer | undefined;
  #feeding = false;
  /** The chunk being parsed lives in the reused read buffer. */
  #reused = false;
  /** The client finished sending while requests were held back. */
  #endAfterStash = false;
  /** Where the next socket read lands, when reads go into our own buffers. */
  #readTarget: ReadTarget | undefined;

  #inFlight = 0;
  #inFlightBytes = 0;
  /** The server is shutting down: flush before closing the handle. */
  #shutdownFlush = false;
  readonly #done: Promise<void>;
  #resolveDone!: () => void;

  constructor(stream: Duplex, o: ConnectionOptions) {
    this.stream = stream;
    this.#o = o;
    this.#log = o.log;
    this.#debug = o.log.isLevelEnabled('debug');
    this.#replies = new ReplyWriter(stream, o.backend.pool, this.#onWritten);
    this.#done = new Promise((r) => {
      this.#resolveDone = r;
    });
    this.#reader = new ByteReader((on) => {
      if (on) stream.resume();
      else stream.pause();
    });

    const target = o.fastRead
      ? installReadBuffer(
          stream as net.Socket,
          (chunk) => this.#onData(chunk, true),
          () => this.#nextReadTarget(),
        )
      : undefined;
    if (target) {
      this.#readTarget = target;
      stream.resume();
    } else {
      stream.on('data', (chunk: Buffer) => this.#onData(chunk, false));
    }
    stream.on('end', () => this.#onEnd());
    stream.on('error', (err: Error) => this.#log.debug({ err: err.message }, 'connection error'));
    stream.on('close', () => this.#onClose());
    stream.on('drain', () => this.#maybeResume());

    this.#handshakeTimer = setTimeout(() => {
      this.#log.warn('handshake timed out; closing');
      this.destroy();
    }, o.handshakeTimeoutMs);
    this.#handshakeTimer.unref?.();
    void this.#runHandshake();
  }

  /** Resolves when the connection is fully closed (socket closed, handle closed). */
  get closed(): Promise<void> {
    return this.#done;
  }

  // ---- handshake ---------------------------------------------------------------

  async #runHandshake(): Promise<void> {
    let result: Negotiated | undefined;
    try {
      await this.#o.backend.preconnect(this.#o.client);
    } catch (err) {
      // A filter refused this client (ip, limit...): say who and why, then close without a greeting.
      const c = this.#o.client;
      this.#log.warn(
        { transport: c.transport, address: c.address, err: (err as Error)?.message ?? String(err) },
        'client refused before the handshake; closing',
      );
      this.#phase = Phase.Draining;
      this.#reader.fail(new ConnectionClosed('refused'));
      this.#maybeFinish();
      return;
    }
    try {
      result = await negotiate({
        reader: this.#reader,
        client: this.#o.client,
        write: (b) => this.#replies.write(b),
        backend: this.#o.backend,
        log: this.#log,
        shuttingDown: this.#o.shuttingDown,
      });
    } catch (err) {
      if (!(err instanceof ConnectionClosed)) this.#log.warn({ err: (err as Error).message }, 'handshake failed');
      result = undefined;
    }
    clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = undefined;
    if (result) this.#handle = result.handle;
    // Aborted, refused, or closed/stopped (the reader failed) while the export was being opened.
    if (!result || this.#reader.failed || this.stream.destroyed) {
      this.#phase = Phase.Draining;
      this.#maybeFinish();
      return;
    }
    const caps = result.handle.caps;
    this.#session = { caps, structured: result.structured, contexts: result.contextId !== 0 };
    this.#contextId = result.contextId;
    this.#replies.structured = result.structured;
    this.#log.debug(
      { export: result.exportName, size: caps.size, structured: result.structured, flags: result.txFlags },
      'transmission',
    );
    this.#phase = Phase.Serving;
    const rest = this.#reader.drain();
    for (const c of rest) this.#onData(c, false);
    this.#maybeResume();
  }

  // ---- input ---------------------------------------------------------------------

  /** `reused`: the chunk's memory is overwritten by the next read, so anything kept must be copied. */
  #onData(chunk: Buffer, reused: boolean): void {
    if (this.#phase === Phase.Handshake) {
      this.#reader.push(reused ? Buffer.from(chunk) : chunk);
      return;
    }
    if (this.#phase !== Phase.Serving) return;
    if (this.#stash) {
      // Arrived before the stream noticed the pause: queue behind the stash.
      this.#stash = Buffer.concat([this.#stash, chunk]);
      return;
    }
    this.#reused = reused;
    this.#feed(chunk);
  }

  /**
   * Stop reading requests while payloads in flight plus replies still queued
   * on the socket exceed the budget. Counting the socket's queue (rather than
   * waiting for 'drain', which only fires once it is empty) keeps the
   * pipeline full while still bounding memory when the client stops reading.
   */
  #blocked(): boolean {
    return this.#inFlightBytes + this.#replies.queued > this.#o.maxInFlightBytes;
  }

  /**
   * Called before each socket read: while a large write payload is being
   * received, read the rest of it straight into its buffer instead of
   * copying it out of the shared read buffer.
   */
  #nextReadTarget(): Buffer | undefined {
    const req = this.#cur;
    if (this.#input !== Input.Payload || !req || this.#stash !== undefined || this.#phase !== Phase.Serving) {
      return undefined;
    }
    const left = req.length - this.#curFill;
    if (left < DIRECT_READ_MIN) return undefined;
    return req.payload!.subarray(this.#curFill, req.length);
  }

  readonly #onWritten = (): void => {
    if (this.#stash !== undefined) this.#maybeResume();
  };

  #feed(chunk: Buffer): void {
    this.#feeding = true;
    try {
      this.#parse(chunk);
    } catch (err) {
      // Never let a parsing bug escape into the event loop.
      this.#log.error({ err: (err as Error).stack }, 'internal error while parsing requests; closing');
      this.#stop();
    } finally {
      this.#feeding = false;
    }
  }

  #parse(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end && this.#phase === Phase.Serving) {
      if (this.#blocked()) {
        const rest = pos === 0 ? chunk : chunk.subarray(pos);
        this.#stash = this.#reused ? Buffer.from(rest) : rest;
        this.stream.pause();
        return;
      }
      switch (this.#input) {
        case Input.Header: {
          const h = this.#hdr;
          if (this.#hdrFill === 0 && end - pos >= REQUEST_SIZE) {
            parseRequestInto(chunk, pos, h);
            pos += REQUEST_SIZE;
          } else {
            const n = Math.min(REQUEST_SIZE - this.#hdrFill, end - pos);
            chunk.copy(this.#scratch, this.#hdrFill, pos, pos + n);
            this.#hdrFill += n;
            pos += n;
            if (this.#hdrFill < REQUEST_SIZE) return;
            this.#hdrFill = 0;
            parseRequestInto(this.#scratch, 0, h);
          }
          if (h.magic !== REQUEST_MAGIC) {
            this.#log.warn({ magic: h.magic.toString(16) }, 'bad request magic; closing connection');
            this.#stop();
            return;
          }
          if (h.type !== Cmd.WRITE) {
            this.#onRequest(h);
            break;
          }
          if (!this.#accept(h)) {
            // Consume the refused payload so the stream stays in sync.
            if (h.length > 0) {
              this.#discardLeft = h.length;
              this.#input = Input.Discard;
            }
            break;
          }
          const len = h.length;
          const req = this.#newReq(h, len);
          if (end - pos >= len && !this.#reused) {
            req.payload = chunk.subarray(pos, pos + len);
            pos += len;
            this.#dispatch(req);
          } else if (end - pos >= len) {
            const buf = this.#o.backend.pool.get(len);
            chunk.copy(buf, 0, pos, pos + len);
            pos += len;
            req.payload = buf;
            req.pooled = buf;
            this.#dispatch(req);
          } else {
            const buf = this.#o.backend.pool.get(len);
            const n = end - pos;
            chunk.copy(buf, 0, pos, end);
            pos = end;
            req.payload = buf;
            req.pooled = buf;
            this.#cur = req;
            this.#curFill = n;
            this.#input = Input.Payload;
            this.#inFlightBytes += len;
          }
          break;
        }
        case Input.Payload: {
          const req = this.#cur!;
          const dst = req.payload!;
          const n = Math.min(req.length - this.#curFill, end - pos);
          // A read aimed at the payload (see nextReadTarget) is already in place.
          if (chunk.buffer !== dst.buffer || chunk.byteOffset + pos !== dst.byteOffset + this.#curFill) {
            chunk.copy(dst, this.#curFill, pos, pos + n);
          }
          this.#curFill += n;
          pos += n;
          if (this.#curFill === req.length) {
            this.#cur = undefined;
            this.#input = Input.Header;
            this.#inFlightBytes -= req.length; // dispatch counts it again
            this.#dispatch(req);
          }
          break;
        }
        case Input.Discard: {
          const n = Math.min(this.#discardLeft, end - pos);
          this.#discardLeft -= n;
          pos += n;
          if (this.#discardLeft === 0) this.#input = Input.Header;
          break;
        }
      }
    }
  }

  #newReq(h: RequestHeader, bytes: number): Req {
    return {
      type: h.type,
      flags: h.flags,
      cookieHi: h.cookieHi,
      cookieLo: h.cookieLo,
      offset: h.offset,
      length: h.length,
      bytes,
      payload: undefined,
      pooled: undefined,
    };
  }

  /** True when `h` may run; else it has been answered with the error (the reason goes to the debug log). */
  #accept(h: RequestHeader): boolean {
    const invalid = validateRequest(h, this.#session!);
    if (invalid === undefined) return true;
    if (this.#debug) {
      this.#log.debug(
        { cmd: cmdName(h.type), offset: h.offset, length: h.length, flags: h.flags, reason: invalid.reason },
        `invalid request: ${errName(invalid.errno)}`,
      );
    }
    this.#replies.error(h, invalid.errno);
    return false;
  }

  /** A non-write request header arrived. */
  #onRequest(h: RequestHeader): void {
    if (h.type === Cmd.DISC) {
      if (this.#debug) this.#log.debug('NBD_CMD_DISC');
      this.#stop();
      return;
    }
    if (this.#accept(h)) this.#dispatch(this.#newReq(h, h.type === Cmd.READ ? h.length : 0));
  }

  // ---- running requests ----------------------------------------------------------

  #dispatch(req: Req): void {
    this.#inFlight++;
    this.#inFlightBytes += req.bytes;
    if (this.#debug) {
      this.#log.debug({ cmd: cmdName(req.type), offset: req.offset, length: req.length, flags: req.flags }, 'request');
    }
    const h = this.#handle!;
    let r: unknown;
    try {
      switch (req.type) {
        case Cmd.READ:
          if (h.readsIntoBuffer) {
            const buf = this.#o.backend.pool.get(req.length);
            req.pooled = buf;
            r = h.readInto(buf, req.offset);
          } else {
            r = h.read(req.length, req.offset);
          }
          break;
        case Cmd.WRITE:
          r = h.write(req.payload!, req.offset, req.flags & CmdFlag.FUA ? Flag.FUA : 0);
          break;
        case Cmd.FLUSH:
          r = h.flush();
          break;
        case Cmd.TRIM:
          r = h.trim(req.length, req.offset, req.flags & CmdFlag.FUA ? Flag.FUA : 0);
          break;
        case Cmd.CACHE:
          r = h.cache(req.length, req.offset);
          break;
        case Cmd.WRITE_ZEROES: {
          let f = 0;
          if (req.flags & CmdFlag.FUA) f |= Flag.FUA;
          if (!(req.flags & CmdFlag.NO_HOLE)) f |= Flag.MAY_TRIM;
          if (req.flags & CmdFlag.FAST_ZERO) f |= Flag.FAST_ZERO;
          r = h.zero(req.length, req.offset, f);
          break;
        }
        case Cmd.BLOCK_STATUS:
          r = h.extents(req.length, req.offset, req.flags & CmdFlag.REQ_ONE ? Flag.REQ_ONE : 0);
          break;
      }
    } catch (err) {
      this.#fail(req, err);
      return;
    }
    if (isPromiseLike(r)) {
      (r as Promise<unknown>).then(
        (v) => this.#complete(req, v),
        (err: unknown) => this.#fail(req, err),
      );
    } else {
      this.#complete(req, r);
    }
  }

  #complete(req: Req, value: unknown): void {
    try {
      if (req.type === Cmd.READ) this.#replyRead(req, (value ?? req.pooled) as Buffer | readonly Buffer[]);
      else if (req.type === Cmd.BLOCK_STATUS) {
        const reqOne = (req.flags & CmdFlag.REQ_ONE) !== 0;
        const desc = extentDescriptors(value as readonly Extent[], req.offset, req.length, reqOne);
        this.#replies.blockStatus(req, this.#contextId, desc);
      } else this.#replies.ok(req);
    } catch (err) {
      this.#fail(req, err);
      return;
    }
    this.#retire(req);
  }

  #replyRead(req: Req, data: Buffer | readonly Buffer[]): void {
    let total = 0;
    if (Buffer.isBuffer(data)) total = data.length;
    else for (const b of data as readonly Buffer[]) total += b.length;
    if (total !== req.length) {
      // Lent buffers (plugin-api lent()) go back even when the reply cannot be sent.
      releaseOf(data)?.();
      throw new Error(`plugin returned ${total} bytes for a read of ${req.length}`);
    }
    const pooled = data === req.pooled;
    // The socket holds the pool buffer until it is sent: the writer recycles it then, not retire.
    if (pooled) req.pooled = undefined;
    this.#replies.read(req, req.offset, data, total, pooled);
  }

  #fail(req: Req, err: unknown): void {
    const errno = toNbdError(err);
    if (this.#debug || errnoName(err) === undefined) {
      // Errors without an errno are plugin bugs: worth a warning.
      const fn = errnoName(err) === undefined ? this.#log.warn.bind(this.#log) : this.#log.debug.bind(this.#log);
      fn(
        { cmd: cmdName(req.type), offset: req.offset, length: req.length, err: (err as Error)?.message ?? String(err) },
        `request failed: ${errName(errno)}`,
      );
    }
    this.#replies.error(req, errno);
    this.#retire(req);
  }

  #retire(req: Req): void {
    this.#inFlight--;
    this.#inFlightBytes -= req.bytes;
    req.payload = undefined;
    if (req.pooled) {
      this.#o.backend.pool.put(req.pooled);
      req.pooled = undefined;
    }
    if (this.#phase === Phase.Draining) this.#maybeFinish();
    else if (this.#stash !== undefined) this.#maybeResume();
  }

  // ---- flow control and closing ------------------------------------------------------

  #maybeResume(): void {
    if (this.#feeding || this.stream.destroyed || this.#phase !== Phase.Serving) return;
    if (this.#blocked()) return;
    const s = this.#stash;
    if (s) {
      // The parser state moves on without a read: the next read must not land in an old target.
      this.#readTarget?.set(undefined);
      this.#stash = undefined;
      this.#reused = false;
      this.#feed(s);
      if (this.#stash || (this.#phase as Phase) !== Phase.Serving) return;
      if (this.#endAfterStash) {
        this.#stop();
        return;
      }
    }
    this.stream.resume();
  }

  /** Stop reading requests; finish what is in flight, then close. */
  #stop(): void {
    if (this.#phase === Phase.Handshake) {
      // The handshake notices through the reader and ends on its own.
      this.stream.pause();
      this.#reader.fail(new ConnectionClosed('stopped'));
      return;
    }
    if (this.#phase !== Phase.Serving) return;
    this.#phase = Phase.Draining;
    this.#readTarget?.set(undefined);
    this.#stash = undefined;
    this.stream.pause();
    this.#maybeFinish();
  }

  #maybeFinish(): void {
    if (this.#inFlight > 0 || this.#phase !== Phase.Draining) return;
    this.#phase = Phase.Closing;
    void this.#finish();
  }

  async #finish(): Promise<void> {
    const h = this.#handle;
    if (h) {
      if (this.#shutdownFlush && h.caps.canWrite && h.caps.canFlush) {
        try {
          await h.flush();
        } catch (err) {
          this.#log.warn({ err: (err as Error).message }, 'flush at shutdown failed');
        }
      }
      try {
        await h.close();
      } catch (err) {
        this.#log.warn({ err: (err as Error).message }, 'plugin close failed');
      }
      this.#handle = undefined;
    }
    this.#phase = Phase.Ended;
    if (this.stream.destroyed) {
      this.#closedNow();
      return;
    }
    // End our side once queued replies are out, then close the socket (a half-open peer must not keep it).
    this.#replies.flushCorked();
    this.stream.end(() => this.stream.destroy());
  }

  #closedNow(): void {
    this.#phase = Phase.Closed;
    this.#resolveDone();
  }

  #onEnd(): void {
    // Requests held back by flow control still count: serve them before stopping.
    if (this.#stash !== undefined) this.#endAfterStash = true;
    else this.#stop();
  }

  #onClose(): void {
    clearTimeout(this.#handshakeTimer);
    this.#reader.fail(new ConnectionClosed());
    this.#stash = undefined;
    this.#cur = undefined;
    if (this.#phase === Phase.Ended) this.#closedNow();
    else if (this.#phase === Phase.Serving) {
      this.#phase = Phase.Draining;
      this.#maybeFinish();
    }
  }

  /** Graceful stop for server shutdown: drain, flush, close handle, end. */
  shutdown(): Promise<void> {
    this.#shutdownFlush = true;
    this.#stop();
    const timer = setTimeout(() => this.destroy(), 10_000);
    timer.unref?.();
    return this.#done.finally(() => clearTimeout(timer));
  }

  destroy(): void {
    this.stream.destroy();
  }
}
