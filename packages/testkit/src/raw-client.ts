/**
 * A raw-socket NBD client for tests: every handshake step and transmission
 * frame is explicit, so tests can send exactly what a misbehaving client
 * would (bad magics, unknown flags, oversized options, pipelined requests,
 * abrupt closes) and check the bytes the server sends back.
 */
import net from 'node:net';
import {
  ClientFlag,
  Cmd,
  IHAVEOPT,
  Info,
  NBDMAGIC,
  Opt,
  REPLY_MAGIC,
  Rep,
  ReplyFlag,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  encodeClientFlags,
  encodeInfoRequest,
  encodeMetaContextRequest,
  encodeOption,
  encodeRequest,
  isRepError,
  parseBlockStatus,
  parseErrorChunk,
  parseInfoReply,
  parseMetaContextReply,
  parseOffsetData,
  parseOffsetHole,
  type RequestFields,
} from '@nbdts/protocol';

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface ExportDetails {
  size: bigint;
  flags: number;
  name?: string;
  description?: string;
  blockSize?: { minimum: number; preferred: number; maximum: number };
}

/** One reply, simple or structured (all chunks of it gathered). */
export interface Reply {
  cookie: bigint;
  /** 0 on success, else the NBD error (the first error chunk's for structured replies). */
  error: number;
  structured: boolean;
  /** READ data reassembled in request order (holes as zeros). */
  data?: Buffer;
  /** BLOCK_STATUS descriptors per context id. */
  extents?: Map<number, { length: number; flags: number }[]>;
  /** Raw chunk types seen, in order (structured only). */
  chunkTypes?: number[];
  errorMessage?: string;
}

export class RawClient {
  #chunks: Buffer[] = [];
  #total = 0;
  #waiters: Array<() => void> = [];
  #ended = false;
  /** Set once the server closed the connection (or it failed). */
  closed = false;
  /** Replies gathered per cookie, for structured replies that arrive in several chunks. */
  readonly #reads = new Map<bigint, { offset: bigint; length: number }>();
  structured = false;

  readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c);
      this.#total += c.length;
      this.#wake();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#ended = true;
      this.#wake();
    });
    socket.on('error', () => {
      /* reported as close */
    });
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawClient(s));
      });
      s.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Exactly n bytes; rejects if the connection ends first or after timeoutMs. */
  async read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#total < n) {
      if (this.#ended) throw new Error(`connection closed after ${this.#total} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.#total})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    // Join only the chunks needed (joining everything buffered each time would be quadratic).
    let have = 0;
    let k = 0;
    while (have < n) have += this.#chunks[k++]!.length;
    const joined = k === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks.slice(0, k), have);
    this.#chunks.splice(0, k);
    if (have > n) this.#chunks.unshift(joined.subarray(n));
    this.#total -= n;
    return joined.subarray(0, n);
  }

  /** Resolves true when the server closes the connection within timeoutMs (buffered data is ignored). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  get buffered(): number {
    return this.#total;
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- handshake -------------------------------------------------------------------

  /** Read the 18-byte greeting; returns the handshake flags. */
  async readGreeting(): Promise<number> {
    const b = await this.read(18);
    if (b.readBigUInt64BE(0) !== NBDMAGIC || b.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('bad greeting');
    return b.readUInt16BE(16);
  }

  sendClientFlags(flags = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES): void {
    this.write(encodeClientFlags(flags));
  }

  /** Greeting plus client flags. */
  async start(flags?: number): Promise<number> {
    const hf = await this.readGreeting();
    this.sendClientFlags(flags);
    return hf;
  }

  sendOption(option: number, data?: Buffer, length?: number): void {
    this.write(encodeOption(option, data, length));
  }

  async readOptionReply(): Promise<OptionReply> {
    const h = await this.read(20);
    if (h.readBigUInt64BE(0) !== REPLY_MAGIC) throw new Error('bad option reply magic');
    const option = h.readUInt32BE(8);
    const type = h.readUInt32BE(12);
    const len = h.readUInt32BE(16);
    return { option, type, data: len ? await this.read(len) : Buffer.alloc(0) };
  }

  /** Send an option and collect replies up to the final one (ACK or an error). */
  async option(option: number, data?: Buffer): Promise<{ final: OptionReply; replies: OptionReply[] }> {
    this.sendOption(option, data);
    const replies: OptionReply[] = [];
    for (;;) {
      const r = await this.readOptionReply();
      if (r.type === Rep.ACK || isRepError(r.type)) return { final: r, replies };
      replies.push(r);
    }
  }

  async structuredReply(): Promise<number> {
    const { final } = await this.option(Opt.STRUCTURED_REPLY);
    if (final.type === Rep.ACK) this.structured = true;
    return final.type;
  }

  async setMetaContext(
    name: string,
    queries: string[],
  ): Promise<{ type: number; contexts: { id: number; name: string }[] }> {
    const { final, replies } = await this.option(Opt.SET_META_CONTEXT, encodeMetaContextRequest(name, queries));
    return { type: final.type, contexts: replies.map((r) => parseMetaContextReply(r.data)) };
  }

  async listMetaContext(name: string, queries: string[]): Promise<{ type: number; contexts: string[] }> {
    const { final, replies } = await this.option(Opt.LIST_META_CONTEXT, encodeMetaContextRequest(name, queries));
    return { type: final.type, contexts: replies.map((r) => parseMetaContextReply(r.data).name) };
  }

  /** NBD_OPT_INFO or NBD_OPT_GO; returns the final reply type and the details. */
  async info(
    name: string,
    infos: number[] = [Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE],
    go = false,
  ): Promise<{ type: number; details: ExportDetails; message: string }> {
    const { final, replies } = await this.option(go ? Opt.GO : Opt.INFO, encodeInfoRequest(name, infos));
    const details: ExportDetails = { size: -1n, flags: 0 };
    for (const r of replies) {
      if (r.type !== Rep.INFO) continue;
      const i = parseInfoReply(r.data);
      if ('size' in i) {
        details.size = i.size;
        details.flags = i.flags;
      } else if ('text' in i) {
        if (i.type === Info.NAME) details.name = i.text;
        else details.description = i.text;
      } else if ('minimum' in i) details.blockSize = { minimum: i.minimum, preferred: i.preferred, maximum: i.maximum };
    }
    return { type: final.type, details, message: final.data.toString('utf8') };
  }

  go(name = '', infos?: number[]): Promise<{ type: number; details: ExportDetails; message: string }> {
    return this.info(name, infos, true);
  }

  /**
   * Typical modern negotiation: fixed newstyle, optional structured replies and
   * base:allocation, then GO. Throws unless GO succeeds.
   */
  static async open(
    path: string,
    o: { structured?: boolean; meta?: boolean; name?: string } = {},
  ): Promise<{ c: RawClient; details: ExportDetails }> {
    const c = await RawClient.connect(path);
    await c.start();
    if (o.structured ?? true) {
      if ((await c.structuredReply()) !== Rep.ACK) throw new Error('structured replies refused');
      if (o.meta ?? true) await c.setMetaContext(o.name ?? '', ['base:allocation']);
    }
    const r = await c.go(o.name ?? '');
    if (r.type !== Rep.ACK) throw new Error(`GO failed: ${r.type >>> 0} ${r.message}`);
    return { c, details: r.details };
  }

  // ---- transmission ----------------------------------------------------------------

  /** Send a request (header plus optional payload). READ lengths are remembered to parse simple replies. */
  request(r: RequestFields, payload?: Buffer): void {
    if (r.type === Cmd.READ)
      this.#reads.set(BigInt.asUintN(64, r.cookie), { offset: BigInt(r.offset), length: r.length });
    this.write(encodeRequest(r, payload));
  }

  /** Read one complete reply (for structured replies, chunks until DONE). */
  async reply(timeoutMs = 10_000): Promise<Reply> {
    const magic = (await this.read(4, timeoutMs)).readUInt32BE(0);
    if (magic === SIMPLE_REPLY_MAGIC) {
      const b = await this.read(12, timeoutMs);
      const error = b.readUInt32BE(0);
      const cookie = b.readBigUInt64BE(4);
      const rd = this.#reads.get(cookie);
      this.#reads.delete(cookie);
      const reply: Reply = { cookie, error, structured: false };
      if (rd && error === 0) reply.data = await this.read(rd.length, timeoutMs);
      return reply;
    }
    if (magic !== STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    let cookie: bigint;
    let error = 0;
    let errorMessage: string | undefined;
    const chunkTypes: number[] = [];
    let data: Buffer | undefined;
    let extents: Map<number, { length: number; flags: number }[]> | undefined;
    for (let first = true; ; first = false) {
      if (!first) {
        const m = (await this.read(4, timeoutMs)).readUInt32BE(0);
        if (m !== STRUCTURED_REPLY_MAGIC) throw new Error(`bad chunk magic 0x${m.toString(16)}`);
      }
      const h = await this.read(16, timeoutMs);
      const flags = h.readUInt16BE(0);
      const type = h.readUInt16BE(2);
      cookie = h.readBigUInt64BE(4);
      const len = h.readUInt32BE(12);
      const payload = len ? await this.read(len, timeoutMs) : Buffer.alloc(0);
      chunkTypes.push(type);
      const rd = this.#reads.get(cookie);
      if (type === ReplyType.OFFSET_DATA || type === ReplyType.OFFSET_HOLE) {
        if (!rd) throw new Error('content chunk for a request that is not a read');
        data ??= Buffer.alloc(rd.length);
        if (type === ReplyType.OFFSET_DATA) {
          const d = parseOffsetData(payload);
          d.data.copy(data, Number(d.offset - rd.offset));
        } else {
          const hole = parseOffsetHole(payload);
          data.fill(0, Number(hole.offset - rd.offset), Number(hole.offset - rd.offset) + hole.size);
        }
      } else if (type === ReplyType.BLOCK_STATUS) {
        const bs = parseBlockStatus(payload);
        (extents ??= new Map()).set(bs.contextId, bs.extents);
      } else if (type & 0x8000) {
        const e = parseErrorChunk(payload);
        if (error === 0) {
          error = e.error;
          errorMessage = e.message;
        }
      } else if (type !== ReplyType.NONE) {
        throw new Error(`unknown chunk type ${type}`);
      }
      if (flags & ReplyFlag.DONE) break;
    }
    this.#reads.delete(cookie);
    const reply: Reply = { cookie, error, structured: true, chunkTypes };
    if (data && error === 0) reply.data = data;
    if (extents) reply.extents = extents;
    if (errorMessage !== undefined) reply.errorMessage = errorMessage;
    return reply;
  }

  /** Send one request and wait for its reply. */
  async call(r: RequestFields, payload?: Buffer): Promise<Reply> {
    this.request(r, payload);
    return this.reply();
  }

  disconnect(): void {
    this.request({ type: Cmd.DISC, cookie: 0n, offset: 0, length: 0 });
  }
}
