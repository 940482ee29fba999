/**
 * One client connection: handshake, then the transmission phase.
 *
 * Hot path design: requests are parsed straight out of incoming chunks by a
 * small state machine (a header split across chunks is assembled in a fixed
 * 28-byte scratch buffer). Sockets are read into one reused buffer
 * (fastread.ts); a large write payload's tail is read straight into its
 * pooled buffer, and what arrived with the header is copied once. Reads go
 * through plugin.read (zero copy) or pread into a pooled buffer. Synchronous
 * plugin results are answered without a promise. Replies written in the
 * same event-loop turn are corked together and leave in one writev.
 * Flow control: reading stops while in-flight payload bytes plus replies
 * queued on the socket exceed maxInFlightBytes.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Flag, releaseOf, type Extent } from '@nbdts/plugin-api';
import {
  Cmd,
  CmdFlag,
  NbdErr,
  REQUEST_MAGIC,
  REQUEST_SIZE,
  ReplyFlag,
  cmdName,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeOffsetDataHeader,
  errName,
  newRequestHeader,
  parseRequestInto,
  writeSimpleReply,
  type RequestHeader,
} from '@nbdts/protocol';
import { isPromiseLike } from './awaitable.ts';
import type { Backend, Capabilities, OpenHandle } from './backend.ts';
import { errnoName, toNbdError } from './errno.ts';
import { negotiate, type Negotiated } from './handshake.ts';
import { installReadBuffer, type ReadTarget } from './fastread.ts';
import { ByteReader, ConnectionClosed } from './reader.ts';

export interface ConnectionOptions {
  backend: Backend;
  log: Logger;
  maxInFlightBytes: number;
  maxPayload: number;
  handshakeTimeoutMs: number;
  shuttingDown(): boolean;
  /** The stream is an accepted net.Socket not yet reading: try the reused read buffer. */
  fastRead?: boolean;
}

/** Where the connection is; a plain object rather than an enum, so Node can strip the types. */
const State = {
  Handshake: 0,
  Header: 1,
  Payload: 2,
  Discard: 3,
  /** Not reading any more (DISC, protocol error, shutdown, end of input). */
  Stopped: 4,
} as const;
type State = (typeof State)[keyof typeof State];

/** Payload tails at least this long are read straight into the payload buffer. */
const DIRECT_READ_MIN = 32 * 1024;

/** Most descriptors sent in one block status reply (bounds reply size). */
const MAX_EXTENTS = 1 << 16;

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

function uncork(c: Connection): void {
  c.corked = false;
  if (!c.dead) c.stream.uncork();
}

export class Connection {
  readonly stream: Duplex;
  readonly #o: ConnectionOptions;
  readonly #log: Logger;
  readonly #debug: boolean;
  #state: State = State.Handshake;
  readonly #reader: ByteReader;
  #handshakeTimer: NodeJS.Timeout | undefined;

  // transmission state
  #handle: OpenHandle | undefined;
  #caps!: Capabilities;
  #structured = false;
  #contextId = 0;
  #allowedFua = 0;
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
  corked = false;
  dead = false;
  #handshaking = true;
  #finishing = false;
  #finished = false;
  #ending = false;
  #shutdownFlush = false;
  readonly #done: Promise<void>;
  #resolveDone!: () => void;

  constructor(stream: Duplex, o: ConnectionOptions) {
    this.stream = stream;
    this.#o = o;
    this.#log = o.log;
    this.#debug = o.log.isLevelEnabled('debug');
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
      result = await negotiate({
        reader: this.#reader,
        write: (b) => this.#write(b),
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
    this.#handshaking = false;
    if (result) this.#handle = result.handle;
    if (!result || this.dead || this.#state === State.Stopped) {
      // Aborted, refused, or closed/shut down while the export was being opened.
      this.#state = State.Stopped;
      this.#maybeFinish();
      return;
    }
    this.#caps = result.handle.caps;
    this.#structured = result.structured;
    this.#contextId = result.contextId;
    this.#allowedFua = this.#caps.fua !== 'none' ? CmdFlag.FUA : 0;
    this.#log.debug(
      { export: result.exportName, size: this.#caps.size, structured: result.structured, flags: result.txFlags },
      'transmission',
    );
    this.#state = State.Header;
    const rest = this.#reader.drain();
    for (const c of rest) this.#onData(c, false);
    this.#maybeResume();
  }

  // ---- input ---------------------------------------------------------------------

  /** `reused`: the chunk's memory is overwritten by the next read, so anything kept must be copied. */
  #onData(chunk: Buffer, reused: boolean): void {
    if (this.#state === State.Handshake) {
      this.#reader.push(reused ? Buffer.from(chunk) : chunk);
      return;
    }
    if (this.#state === State.Stopped) return;
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
    return this.#inFlightBytes + this.stream.writableLength > this.#o.maxInFlightBytes;
  }

  /**
   * Called before each socket read: while a large write payload is being
   * received, read the rest of it straight into its buffer instead of
   * copying it out of the shared read buffer.
   */
  #nextReadTarget(): Buffer | undefined {
    const req = this.#cur;
    if (this.#state !== State.Payload || !req || this.#stash !== undefined) return undefined;
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
    while (pos < end) {
      if (this.#blocked()) {
        const rest = pos === 0 ? chunk : chunk.subarray(pos);
        this.#stash = this.#reused ? Buffer.from(rest) : rest;
        this.stream.pause();
        return;
      }
      switch (this.#state) {
        case State.Header: {
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
          if (h.type === Cmd.WRITE) {
            const err = this.#check(h);
            if (err !== 0) {
              this.#replyErrno(h.cookieHi, h.cookieLo, err);
              // Consume the rejected payload so the stream stays in sync.
              if (h.length > 0) {
                this.#discardLeft = h.length;
                this.#state = State.Discard;
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
              this.#state = State.Payload;
              this.#inFlightBytes += len;
            }
          } else {
            this.#onRequest(h);
          }
          break;
        }
        case State.Payload: {
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
            this.#state = State.Header;
            this.#inFlightBytes -= req.length; // dispatch counts it again
            this.#dispatch(req);
          }
          break;
        }
        case State.Discard: {
          const n = Math.min(this.#discardLeft, end - pos);
          this.#discardLeft -= n;
          pos += n;
          if (this.#discardLeft === 0) this.#state = State.Header;
          break;
        }
        default:
          return;
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

  /** A non-write request header arrived. */
  #onRequest(h: RequestHeader): void {
    if (h.type === Cmd.DISC) {
      if (this.#debug) this.#log.debug('NBD_CMD_DISC');
      this.#stop();
      return;
    }
    const err = this.#check(h);
    if (err !== 0) {
      this.#replyErrno(h.cookieHi, h.cookieLo, err);
      return;
    }
    this.#dispatch(this.#newReq(h, h.type === Cmd.READ ? h.length : 0));
  }

  /** Validate a request against the spec and the export; 0 if it may run, else the NBD error. */
  #check(h: RequestHeader): number {
    const c = this.#caps;
    const type = h.type;
    let allowed = this.#allowedFua;
    switch (type) {
      case Cmd.READ:
        if (this.#structured) allowed |= CmdFlag.DF;
        break;
      case Cmd.WRITE:
      case Cmd.TRIM:
      case Cmd.FLUSH:
      case Cmd.CACHE:
        break;
      case Cmd.WRITE_ZEROES:
        allowed |= CmdFlag.NO_HOLE | (c.canFastZero ? CmdFlag.FAST_ZERO : 0);
        break;
      case Cmd.BLOCK_STATUS:
        allowed |= CmdFlag.REQ_ONE;
        break;
      default:
        return NbdErr.EINVAL; // unknown command
    }
    if ((h.flags & ~allowed) !== 0) return NbdErr.EINVAL;
    switch (type) {
      case Cmd.WRITE:
        if (!c.canWrite) return NbdErr.EPERM;
        break;
      case Cmd.TRIM:
        if (!c.canWrite) return NbdErr.EPERM;
        if (!c.canTrim) return NbdErr.EINVAL;
        break;
      case Cmd.WRITE_ZEROES:
        if (!c.canWrite) return NbdErr.EPERM;
        if (c.zero === 'none') return NbdErr.EINVAL;
        break;
      case Cmd.FLUSH:
        if (!c.canFlush) return NbdErr.EINVAL;
        return h.offset !== 0 || h.length !== 0 ? NbdErr.EINVAL : 0;
      case Cmd.CACHE:
        if (c.cache === 'none') return NbdErr.EINVAL;
        break;
      case Cmd.BLOCK_STATUS:
        if (this.#contextId === 0) return NbdErr.EINVAL;
        break;
    }
    const len = h.length;
    const off = h.offset;
    if (len === 0) return NbdErr.EINVAL;
    // offset is inexact only above 2^53, where it is past the end anyway (covers 64-bit wrap).
    if (off + len > c.size) return type === Cmd.WRITE || type === Cmd.WRITE_ZEROES ? NbdErr.ENOSPC : NbdErr.EINVAL;
    const bs = c.blockSize;
    if (bs.minimum > 1 && (off % bs.minimum !== 0 || len % bs.minimum !== 0)) return NbdErr.EINVAL;
    if ((type === Cmd.READ || type === Cmd.WRITE) && len > bs.maximum) return NbdErr.EINVAL;
    return 0;
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
      else if (req.type === Cmd.BLOCK_STATUS) this.#replyExtents(req, value as readonly Extent[]);
      else this.#replyOk(req);
    } catch (err) {
      this.#fail(req, err);
      return;
    }
    this.#retire(req);
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
    this.#replyErrno(req.cookieHi, req.cookieLo, errno);
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
    if (this.#state === State.Stopped) this.#maybeFinish();
    else if (this.#stash !== undefined) this.#maybeResume();
  }

  // ---- replies ---------------------------------------------------------------------

  #write(buf: Buffer, cb?: () => void): void {
    if (this.dead) return;
    this.#cork();
    this.stream.write(buf, cb);
  }

  /**
   * Hold replies until this turn of the event loop has handled every socket
   * read it got (setImmediate, not nextTick): the replies to all requests
   * that arrived together leave in one writev. Measured: 4k random reads at
   * depth 64 went from 117K to 140K IOPS, from fewer write syscalls.
   */
  #cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.stream.cork();
    setImmediate(uncork, this);
  }

  #replyOk(req: Req): void {
    const b = Buffer.allocUnsafe(16);
    writeSimpleReply(b, 0, 0, req.cookieHi, req.cookieLo);
    this.#write(b);
  }

  #replyErrno(cookieHi: number, cookieLo: number, errno: number): void {
    if (this.#structured) {
      this.#write(encodeErrorChunk(cookieHi, cookieLo, ReplyFlag.DONE, errno));
    } else {
      const b = Buffer.allocUnsafe(16);
      writeSimpleReply(b, 0, errno, cookieHi, cookieLo);
      this.#write(b);
    }
  }

  #replyRead(req: Req, data: Buffer | readonly Buffer[]): void {
    let total = 0;
    const many = !Buffer.isBuffer(data);
    if (many) for (const b of data as readonly Buffer[]) total += b.length;
    else total = (data as Buffer).length;
    // Lent buffers (plugin-api lent()) go back once the socket is done with them.
    const release = releaseOf(data);
    if (total !== req.length) {
      release?.();
      throw new Error(`plugin returned ${total} bytes for a read of ${req.length}`);
    }
    if (this.dead) {
      release?.();
      return;
    } // nothing will be written
    const written = release
      ? () => {
          release();
          this.#onWritten();
        }
      : this.#onWritten;
    if (this.#structured) {
      this.#write(encodeOffsetDataHeader(req.cookieHi, req.cookieLo, ReplyFlag.DONE, req.offset, total));
    } else {
      const b = Buffer.allocUnsafe(16);
      writeSimpleReply(b, 0, 0, req.cookieHi, req.cookieLo);
      this.#write(b);
    }
    if (many) {
      const list = data as readonly Buffer[];
      // The callback of the last write runs once every earlier one has too.
      let last = list.length - 1;
      while (last > 0 && list[last]!.length === 0) last--;
      for (let i = 0; i < last; i++) if (list[i]!.length) this.#write(list[i]!);
      if (last >= 0) this.#write(list[last]!, written);
      else written();
    } else if (data === req.pooled) {
      // The socket holds the pool buffer until it is sent: recycle it then, not at retire.
      req.pooled = undefined;
      this.#writeThenRecycle(data);
    } else {
      this.#write(data as Buffer, written);
    }
  }

  #writeThenRecycle(buf: Buffer): void {
    const pool = this.#o.backend.pool;
    if (this.dead) {
      pool.put(buf);
      return;
    }
    this.#cork();
    this.stream.write(buf, (err) => {
      if (!err) pool.put(buf);
      this.#onWritten();
    });
  }

  #replyExtents(req: Req, extents: readonly Extent[]): void {
    const reqOne = (req.flags & CmdFlag.REQ_ONE) !== 0;
    const end = req.offset + req.length;
    let pos = req.offset;
    const desc: number[] = [];
    for (const e of extents) {
      const eEnd = e.offset + e.length;
      if (!(e.length > 0) || eEnd <= pos) continue;
      if (e.offset > pos) break; // a gap: report what is contiguous so far
      const type = e.type & 3;
      const take = Math.min(eEnd, end) - pos;
      const n = desc.length;
      if (n > 0 && desc[n - 1] === type) desc[n - 2]! += take;
      else {
        if (n / 2 >= MAX_EXTENTS || (reqOne && n > 0)) break;
        desc.push(take, type);
      }
      pos += take;
      if (pos >= end) break;
    }
    if (desc.length === 0) throw new Error(`plugin returned no extent covering offset ${req.offset}`);
    this.#write(encodeBlockStatusChunk(req.cookieHi, req.cookieLo, ReplyFlag.DONE, this.#contextId, desc));
  }

  // ---- flow control and closing ------------------------------------------------------

  #maybeResume(): void {
    if (this.#feeding || this.dead || this.#state === State.Handshake || this.#state === State.Stopped) return;
    if (this.#blocked()) return;
    const s = this.#stash;
    if (s) {
      // The parser state moves on without a read: the next read must not land in an old target.
      this.#readTarget?.set(undefined);
      this.#stash = undefined;
      this.#reused = false;
      this.#feed(s);
      if (this.#stash || (this.#state as State) === State.Stopped) return;
      if (this.#endAfterStash) {
        this.#stop();
        return;
      }
    }
    this.stream.resume();
  }

  /** Stop reading requests; finish what is in flight, then close. */
  #stop(): void {
    const wasHandshake = this.#state === State.Handshake;
    this.#state = State.Stopped;
    this.#readTarget?.set(undefined);
    this.#stash = undefined;
    this.stream.pause();
    // The handshake notices through the reader and closes on its own.
    if (wasHandshake) this.#reader.fail(new ConnectionClosed('stopped'));
    else this.#maybeFinish();
  }

  #maybeFinish(): void {
    if (this.#inFlight > 0 || this.#finishing || this.#handshaking) return;
    this.#finishing = true;
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
    this.#finished = true;
    this.#endStream();
    if (this.dead) this.#resolveDone();
  }

  /** End our side once queued replies are out, then close the socket (a half-open peer must not keep it). */
  #endStream(): void {
    if (this.dead || this.#ending) return;
    this.#ending = true;
    if (this.corked) {
      this.corked = false;
      this.stream.uncork();
    }
    this.stream.end(() => this.stream.destroy());
  }

  #onEnd(): void {
    // Requests held back by flow control still count: serve them before stopping.
    if (this.#stash !== undefined) this.#endAfterStash = true;
    else if (this.#state !== State.Stopped) this.#stop();
  }

  #onClose(): void {
    this.dead = true;
    clearTimeout(this.#handshakeTimer);
    this.#reader.fail(new ConnectionClosed());
    this.#state = State.Stopped;
    this.#stash = undefined;
    this.#cur = undefined;
    if (this.#finished) this.#resolveDone();
    else this.#maybeFinish();
  }

  /** Graceful stop for server shutdown: drain, flush, close handle, end. */
  shutdown(): Promise<void> {
    this.#shutdownFlush = true;
    if (this.#state !== State.Stopped) this.#stop();
    else this.#maybeFinish();
    const timer = setTimeout(() => this.destroy(), 10_000);
    timer.unref?.();
    return this.#done.finally(() => clearTimeout(timer));
  }

  destroy(): void {
    this.stream.destroy();
  }
}
