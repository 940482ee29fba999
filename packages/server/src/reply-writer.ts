/**
 * Every byte the server sends on a connection goes through here: option
 * replies during the handshake, then simple or structured transmission
 * replies, built with the protocol package's encoders. Replies written in the
 * same event-loop turn are corked together and leave in one writev.
 */
import type { Duplex } from 'node:stream';
import { releaseOf } from '@nbdts/plugin-api';
import { type BufferPool } from '@nbdts/plugin-api/engine';
import {
  ReplyFlag,
  SIMPLE_REPLY_SIZE,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeOffsetDataHeader,
  writeSimpleReply,
} from '@nbdts/protocol';

/** What a reply answers: the request's cookie, as two 32-bit halves. */
export interface Cookie {
  cookieHi: number;
  cookieLo: number;
}

function uncork(w: ReplyWriter): void {
  w.corked = false;
  if (!w.stream.destroyed) w.stream.uncork();
}

export class ReplyWriter {
  readonly stream: Duplex;
  /** Structured replies were negotiated: errors and reads use chunks. */
  structured = false;
  corked = false;
  readonly #pool: BufferPool;
  /** Runs after the socket took the data of a read reply (flow control may resume). */
  readonly #onWritten: () => void;

  constructor(stream: Duplex, pool: BufferPool, onWritten: () => void) {
    this.stream = stream;
    this.#pool = pool;
    this.#onWritten = onWritten;
  }

  /** Bytes queued on the socket and not yet written (counted by flow control). */
  get queued(): number {
    return this.stream.writableLength;
  }

  write(buf: Buffer, cb?: (err?: Error | null) => void): void {
    if (this.stream.destroyed) return;
    this.cork();
    this.stream.write(buf, cb);
  }

  /**
   * Hold replies until this turn of the event loop has handled every socket
   * read it got (setImmediate, not nextTick): the replies to all requests
   * that arrived together leave in one writev. Measured: 4k random reads at
   * depth 64 went from 117K to 140K IOPS, from fewer write syscalls.
   */
  cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.stream.cork();
    setImmediate(uncork, this);
  }

  /** Send what is corked now (before ending the stream). */
  flushCorked(): void {
    if (!this.corked) return;
    this.corked = false;
    this.stream.uncork();
  }

  ok(c: Cookie): void {
    const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
    writeSimpleReply(b, 0, 0, c.cookieHi, c.cookieLo);
    this.write(b);
  }

  error(c: Cookie, errno: number): void {
    if (this.structured) {
      this.write(encodeErrorChunk(c.cookieHi, c.cookieLo, ReplyFlag.DONE, errno));
    } else {
      const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
      writeSimpleReply(b, 0, errno, c.cookieHi, c.cookieLo);
      this.write(b);
    }
  }

  /**
   * The data of a read at `offset`: one buffer or several, `total` bytes in
   * all. Buffers marked with plugin-api lent() are released once the socket
   * has written them. `pooled`: `data` is an engine pool buffer (the pread
   * target), which goes back to the pool once written.
   */
  read(c: Cookie, offset: number, data: Buffer | readonly Buffer[], total: number, pooled: boolean): void {
    const release = releaseOf(data);
    if (this.stream.destroyed) {
      // Nothing will be written.
      release?.();
      if (pooled) this.#pool.put(data as Buffer);
      return;
    }
    if (this.structured) {
      this.write(encodeOffsetDataHeader(c.cookieHi, c.cookieLo, ReplyFlag.DONE, offset, total));
    } else {
      const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
      writeSimpleReply(b, 0, 0, c.cookieHi, c.cookieLo);
      this.write(b);
    }
    if (pooled) {
      const buf = data as Buffer;
      this.write(buf, (err) => {
        if (!err) this.#pool.put(buf);
        this.#onWritten();
      });
      return;
    }
    const written = release
      ? () => {
          release();
          this.#onWritten();
        }
      : this.#onWritten;
    if (Buffer.isBuffer(data)) {
      this.write(data, written);
      return;
    }
    const list = data as readonly Buffer[];
    // The callback of the last write runs once every earlier one has too.
    let last = list.length - 1;
    while (last > 0 && list[last]!.length === 0) last--;
    for (let i = 0; i < last; i++) if (list[i]!.length) this.write(list[i]!);
    if (last >= 0) this.write(list[last]!, written);
    else written();
  }

  /** A block status chunk: `descriptors` is [length, flags, length, flags, ...]. */
  blockStatus(c: Cookie, contextId: number, descriptors: readonly number[]): void {
    this.write(encodeBlockStatusChunk(c.cookieHi, c.cookieLo, ReplyFlag.DONE, contextId, descriptors));
  }
}
