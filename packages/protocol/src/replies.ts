/**
 * Transmission replies: the 16-byte simple reply and structured reply chunks
 * (20-byte header + payload). Server-side writers take the cookie as two
 * 32-bit halves and write into caller-provided buffers where it matters for speed.
 */
import {
  ReplyFlag,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  SIMPLE_REPLY_SIZE,
  STRUCTURED_HEADER_SIZE,
  STRUCTURED_REPLY_MAGIC,
} from './constants.ts';
import { ProtocolError } from './handshake.ts';

// ---- simple replies ------------------------------------------------------

export function writeSimpleReply(b: Buffer, pos: number, error: number, cookieHi: number, cookieLo: number): void {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, pos);
  b.writeUInt32BE(error >>> 0, pos + 4);
  b.writeUInt32BE(cookieHi >>> 0, pos + 8);
  b.writeUInt32BE(cookieLo >>> 0, pos + 12);
}

export function encodeSimpleReply(error: number, cookieHi: number, cookieLo: number): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
  writeSimpleReply(b, 0, error, cookieHi, cookieLo);
  return b;
}

export interface SimpleReply {
  magic: number;
  error: number;
  cookie: bigint;
}

export function parseSimpleReply(b: Buffer, pos = 0): SimpleReply {
  return { magic: b.readUInt32BE(pos), error: b.readUInt32BE(pos + 4), cookie: b.readBigUInt64BE(pos + 8) };
}

// ---- structured chunks ---------------------------------------------------------

export function writeChunkHeader(
  b: Buffer,
  pos: number,
  flags: number,
  type: number,
  cookieHi: number,
  cookieLo: number,
  length: number,
): void {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, pos);
  b.writeUInt16BE(flags, pos + 4);
  b.writeUInt16BE(type, pos + 6);
  b.writeUInt32BE(cookieHi >>> 0, pos + 8);
  b.writeUInt32BE(cookieLo >>> 0, pos + 12);
  b.writeUInt32BE(length >>> 0, pos + 16);
}

/** Header of an OFFSET_DATA chunk (chunk header + 64-bit offset); `dataLength` bytes of data follow. */
export function encodeOffsetDataHeader(
  cookieHi: number,
  cookieLo: number,
  flags: number,
  offset: number,
  dataLength: number,
): Buffer {
  const b = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + 8);
  writeChunkHeader(b, 0, flags, ReplyType.OFFSET_DATA, cookieHi, cookieLo, 8 + dataLength);
  writeU64(b, STRUCTURED_HEADER_SIZE, offset);
  return b;
}

export function encodeOffsetHole(
  cookieHi: number,
  cookieLo: number,
  flags: number,
  offset: number,
  holeSize: number,
): Buffer {
  const b = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + 12);
  writeChunkHeader(b, 0, flags, ReplyType.OFFSET_HOLE, cookieHi, cookieLo, 12);
  writeU64(b, STRUCTURED_HEADER_SIZE, offset);
  b.writeUInt32BE(holeSize >>> 0, STRUCTURED_HEADER_SIZE + 8);
  return b;
}

/** NBD_REPLY_TYPE_ERROR with an optional message (truncated to the 4096-byte string limit). */
export function encodeErrorChunk(
  cookieHi: number,
  cookieLo: number,
  flags: number,
  error: number,
  message = '',
): Buffer {
  let msg = Buffer.from(message, 'utf8');
  if (msg.length > 4096) msg = msg.subarray(0, 4096);
  const b = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + 6 + msg.length);
  writeChunkHeader(b, 0, flags, ReplyType.ERROR, cookieHi, cookieLo, 6 + msg.length);
  b.writeUInt32BE(error >>> 0, STRUCTURED_HEADER_SIZE);
  b.writeUInt16BE(msg.length, STRUCTURED_HEADER_SIZE + 4);
  msg.copy(b, STRUCTURED_HEADER_SIZE + 6);
  return b;
}

export function encodeNoneChunk(cookieHi: number, cookieLo: number): Buffer {
  const b = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE);
  writeChunkHeader(b, 0, ReplyFlag.DONE, ReplyType.NONE, cookieHi, cookieLo, 0);
  return b;
}

/**
 * NBD_REPLY_TYPE_BLOCK_STATUS: context id then (length, flags) descriptors.
 * `descriptors` is a flat list [len0, flags0, len1, flags1, ...] to avoid an object per extent.
 */
export function encodeBlockStatusChunk(
  cookieHi: number,
  cookieLo: number,
  flags: number,
  contextId: number,
  descriptors: readonly number[],
): Buffer {
  const payload = 4 + descriptors.length * 4;
  const b = Buffer.allocUnsafe(STRUCTURED_HEADER_SIZE + payload);
  writeChunkHeader(b, 0, flags, ReplyType.BLOCK_STATUS, cookieHi, cookieLo, payload);
  b.writeUInt32BE(contextId >>> 0, STRUCTURED_HEADER_SIZE);
  let p = STRUCTURED_HEADER_SIZE + 4;
  for (let i = 0; i < descriptors.length; i++, p += 4) b.writeUInt32BE(descriptors[i]! >>> 0, p);
  return b;
}

export interface ChunkHeader {
  magic: number;
  flags: number;
  type: number;
  cookie: bigint;
  length: number;
}

export function parseChunkHeader(b: Buffer, pos = 0): ChunkHeader {
  return {
    magic: b.readUInt32BE(pos),
    flags: b.readUInt16BE(pos + 4),
    type: b.readUInt16BE(pos + 6),
    cookie: b.readBigUInt64BE(pos + 8),
    length: b.readUInt32BE(pos + 16),
  };
}

export function parseOffsetData(payload: Buffer): { offset: bigint; data: Buffer } {
  if (payload.length < 9) throw new ProtocolError('OFFSET_DATA payload shorter than 9 bytes');
  return { offset: payload.readBigUInt64BE(0), data: payload.subarray(8) };
}

export function parseOffsetHole(payload: Buffer): { offset: bigint; size: number } {
  if (payload.length !== 12) throw new ProtocolError('OFFSET_HOLE payload must be 12 bytes');
  return { offset: payload.readBigUInt64BE(0), size: payload.readUInt32BE(8) };
}

export function parseErrorChunk(payload: Buffer): { error: number; message: string } {
  if (payload.length < 6) throw new ProtocolError('ERROR payload shorter than 6 bytes');
  const len = payload.readUInt16BE(4);
  if (len > payload.length - 6) throw new ProtocolError('error message overruns chunk');
  return { error: payload.readUInt32BE(0), message: payload.toString('utf8', 6, 6 + len) };
}

export function parseBlockStatus(payload: Buffer): { contextId: number; extents: { length: number; flags: number }[] } {
  if (payload.length < 12 || (payload.length - 4) % 8 !== 0) throw new ProtocolError('bad BLOCK_STATUS payload length');
  const extents: { length: number; flags: number }[] = [];
  for (let p = 4; p < payload.length; p += 8)
    extents.push({ length: payload.readUInt32BE(p), flags: payload.readUInt32BE(p + 4) });
  return { contextId: payload.readUInt32BE(0), extents };
}

/** Write a non-negative integer below 2^53 as 64 bits without BigInt. */
export function writeU64(b: Buffer, pos: number, value: number): void {
  const hi = Math.floor(value / 0x100000000);
  b.writeUInt32BE(hi >>> 0, pos);
  b.writeUInt32BE((value - hi * 0x100000000) >>> 0, pos + 4);
}
