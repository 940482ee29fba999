/**
 * Handshake messages (fixed newstyle): greeting, client flags, option
 * requests and replies, and the data of INFO/GO, meta-context and
 * EXPORT_NAME. Encoders for both directions so the server and test clients
 * share one definition.
 */
import {
  EXPORT_NAME_PAD,
  GREETING_SIZE,
  IHAVEOPT,
  Info,
  MAX_STRING,
  NBDMAGIC,
  OPTION_HEADER_SIZE,
  OPTION_REPLY_HEADER_SIZE,
  REPLY_MAGIC,
} from './constants.ts';

/** A structurally invalid message: the server answers NBD_REP_ERR_INVALID. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// ---- greeting and client flags -------------------------------------------

export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.allocUnsafe(GREETING_SIZE);
  b.writeBigUInt64BE(NBDMAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

/** Parse the server greeting; throws ProtocolError on bad magic. */
export function parseGreeting(b: Buffer): { handshakeFlags: number } {
  if (b.length < GREETING_SIZE) throw new ProtocolError('short greeting');
  if (b.readBigUInt64BE(0) !== NBDMAGIC) throw new ProtocolError('bad NBDMAGIC');
  if (b.readBigUInt64BE(8) !== IHAVEOPT) throw new ProtocolError('not a newstyle server');
  return { handshakeFlags: b.readUInt16BE(16) };
}

export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(flags >>> 0, 0);
  return b;
}

// ---- option requests ---------------------------------------------------------

export interface OptionHeader {
  magic: bigint;
  option: number;
  length: number;
}

export function parseOptionHeader(b: Buffer, offset = 0): OptionHeader {
  return {
    magic: b.readBigUInt64BE(offset),
    option: b.readUInt32BE(offset + 8),
    length: b.readUInt32BE(offset + 12),
  };
}

/** An option request: header plus data (the length field may be overridden to craft bad frames). */
export function encodeOption(option: number, data: Buffer = Buffer.alloc(0), length = data.length): Buffer {
  const b = Buffer.allocUnsafe(OPTION_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(length >>> 0, 12);
  data.copy(b, OPTION_HEADER_SIZE);
  return b;
}

// ---- option replies ------------------------------------------------------------

export function encodeOptionReply(option: number, type: number, data?: Buffer | string): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const len = payload ? payload.length : 0;
  const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_SIZE + len);
  b.writeBigUInt64BE(REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(len, 16);
  if (payload) payload.copy(b, OPTION_REPLY_HEADER_SIZE);
  return b;
}

export interface OptionReplyHeader {
  magic: bigint;
  option: number;
  type: number;
  length: number;
}

export function parseOptionReplyHeader(b: Buffer, offset = 0): OptionReplyHeader {
  return {
    magic: b.readBigUInt64BE(offset),
    option: b.readUInt32BE(offset + 8),
    type: b.readUInt32BE(offset + 12),
    length: b.readUInt32BE(offset + 16),
  };
}

/** NBD_REP_SERVER data: name length, name, then an optional description. */
export function encodeServerReplyData(name: string, description?: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = Buffer.from(description ?? '', 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function parseServerReplyData(b: Buffer): { name: string; description: string } {
  if (b.length < 4) throw new ProtocolError('short NBD_REP_SERVER');
  const len = b.readUInt32BE(0);
  if (len > b.length - 4) throw new ProtocolError('NBD_REP_SERVER name overruns reply');
  return { name: b.toString('utf8', 4, 4 + len), description: b.toString('utf8', 4 + len) };
}

// ---- EXPORT_NAME -------------------------------------------------------------

/** Reply to NBD_OPT_EXPORT_NAME: size, transmission flags, and 124 zeroes unless NO_ZEROES. */
export function encodeExportNameReply(size: number, txFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(10 + (noZeroes ? 0 : EXPORT_NAME_PAD));
  b.writeBigUInt64BE(BigInt(size), 0);
  b.writeUInt16BE(txFlags, 8);
  return b;
}

// ---- INFO / GO -----------------------------------------------------------------

export interface InfoRequest {
  name: string;
  infos: number[];
}

/** Data of NBD_OPT_INFO / NBD_OPT_GO. */
export function encodeInfoRequest(name: string, infos: readonly number[] = []): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length + 2 + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  let p = 4 + n.length;
  b.writeUInt16BE(infos.length, p);
  p += 2;
  for (const i of infos) {
    b.writeUInt16BE(i, p);
    p += 2;
  }
  return b;
}

export function parseInfoRequest(b: Buffer): InfoRequest {
  if (b.length < 6) throw new ProtocolError('INFO/GO data too short');
  const nameLen = b.readUInt32BE(0);
  if (nameLen > b.length - 6) throw new ProtocolError('export name overruns option data');
  if (nameLen > MAX_STRING) throw new ProtocolError('export name longer than 4096 bytes');
  const name = decodeString(b, 4, 4 + nameLen, 'export name');
  const count = b.readUInt16BE(4 + nameLen);
  if (b.length !== 6 + nameLen + 2 * count)
    throw new ProtocolError('information request count does not match option length');
  const infos: number[] = [];
  for (let i = 0, p = 6 + nameLen; i < count; i++, p += 2) infos.push(b.readUInt16BE(p));
  return { name, infos };
}

export function encodeInfoExport(size: number, txFlags: number): Buffer {
  const b = Buffer.allocUnsafe(12);
  b.writeUInt16BE(Info.EXPORT, 0);
  b.writeBigUInt64BE(BigInt(size), 2);
  b.writeUInt16BE(txFlags, 10);
  return b;
}

/** NBD_INFO_NAME or NBD_INFO_DESCRIPTION. */
export function encodeInfoString(type: number, text: string): Buffer {
  const s = Buffer.from(text, 'utf8');
  const b = Buffer.allocUnsafe(2 + s.length);
  b.writeUInt16BE(type, 0);
  s.copy(b, 2);
  return b;
}

export function encodeInfoBlockSize(minimum: number, preferred: number, maximum: number): Buffer {
  const b = Buffer.allocUnsafe(14);
  b.writeUInt16BE(Info.BLOCK_SIZE, 0);
  b.writeUInt32BE(minimum >>> 0, 2);
  b.writeUInt32BE(preferred >>> 0, 6);
  b.writeUInt32BE(maximum >>> 0, 10);
  return b;
}

export type InfoReply =
  | { type: typeof Info.EXPORT; size: bigint; flags: number }
  | { type: typeof Info.NAME | typeof Info.DESCRIPTION; text: string }
  | { type: typeof Info.BLOCK_SIZE; minimum: number; preferred: number; maximum: number }
  | { type: number; raw: Buffer };

/** Parse the data of an NBD_REP_INFO reply (client side). */
export function parseInfoReply(b: Buffer): InfoReply {
  if (b.length < 2) throw new ProtocolError('short NBD_REP_INFO');
  const type = b.readUInt16BE(0);
  switch (type) {
    case Info.EXPORT:
      if (b.length !== 12) throw new ProtocolError('NBD_INFO_EXPORT must be 12 bytes');
      return { type, size: b.readBigUInt64BE(2), flags: b.readUInt16BE(10) };
    case Info.NAME:
    case Info.DESCRIPTION:
      return { type, text: b.toString('utf8', 2) };
    case Info.BLOCK_SIZE:
      if (b.length !== 14) throw new ProtocolError('NBD_INFO_BLOCK_SIZE must be 14 bytes');
      return { type, minimum: b.readUInt32BE(2), preferred: b.readUInt32BE(6), maximum: b.readUInt32BE(10) };
    default:
      return { type, raw: b.subarray(2) };
  }
}

// ---- meta contexts -------------------------------------------------------------

export interface MetaContextRequest {
  name: string;
  queries: string[];
}

/** Data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT. */
export function encodeMetaContextRequest(name: string, queries: readonly string[]): Buffer {
  const n = Buffer.from(name, 'utf8');
  const qs = queries.map((q) => Buffer.from(q, 'utf8'));
  const b = Buffer.allocUnsafe(8 + n.length + qs.reduce((a, q) => a + 4 + q.length, 0));
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  let p = 4 + n.length;
  b.writeUInt32BE(qs.length, p);
  p += 4;
  for (const q of qs) {
    b.writeUInt32BE(q.length, p);
    q.copy(b, p + 4);
    p += 4 + q.length;
  }
  return b;
}

export function parseMetaContextRequest(b: Buffer): MetaContextRequest {
  if (b.length < 8) throw new ProtocolError('meta context data too short');
  const nameLen = b.readUInt32BE(0);
  if (nameLen > b.length - 8) throw new ProtocolError('export name overruns option data');
  if (nameLen > MAX_STRING) throw new ProtocolError('export name longer than 4096 bytes');
  const name = decodeString(b, 4, 4 + nameLen, 'export name');
  let p = 4 + nameLen;
  const count = b.readUInt32BE(p);
  p += 4;
  // Each query takes at least 4 bytes: a count that cannot fit is invalid (and must not drive a loop).
  if (count > (b.length - p) / 4) throw new ProtocolError('query count overruns option data');
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (b.length - p < 4) throw new ProtocolError('query length overruns option data');
    const len = b.readUInt32BE(p);
    p += 4;
    if (len > b.length - p) throw new ProtocolError('query overruns option data');
    if (len > MAX_STRING) throw new ProtocolError('query longer than 4096 bytes');
    queries.push(decodeString(b, p, p + len, 'query'));
    p += len;
  }
  if (p !== b.length) throw new ProtocolError('trailing bytes after queries');
  return { name, queries };
}

export function encodeMetaContextReply(id: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length);
  b.writeUInt32BE(id >>> 0, 0);
  n.copy(b, 4);
  return b;
}

export function parseMetaContextReply(b: Buffer): { id: number; name: string } {
  if (b.length < 4) throw new ProtocolError('short NBD_REP_META_CONTEXT');
  return { id: b.readUInt32BE(0), name: b.toString('utf8', 4) };
}

/** Strings on the wire are UTF-8 without NUL. */
function decodeString(b: Buffer, start: number, end: number, what: string): string {
  const s = b.subarray(start, end);
  if (s.includes(0)) throw new ProtocolError(`${what} contains NUL`);
  const text = s.toString('utf8');
  if (text.includes('\ufffd') && !Buffer.from(text, 'utf8').equals(s))
    throw new ProtocolError(`${what} is not valid UTF-8`);
  return text;
}
