/**
 * Transmission requests: the 28-byte header
 *   magic(32) flags(16) type(16) cookie(64) offset(64) length(32).
 * The server parses into a reused object and keeps the cookie as two 32-bit
 * halves so the hot path allocates nothing (no BigInt per request).
 */
import { REQUEST_MAGIC, REQUEST_SIZE } from './constants.ts';

export interface RequestHeader {
  magic: number;
  flags: number;
  type: number;
  cookieHi: number;
  cookieLo: number;
  /**
   * Offset as a JS number: exact below 2^53, and above that certainly past
   * the end of any export (sizes are at most 2^53 - 1), which is all the
   * server needs to know.
   */
  offset: number;
  length: number;
}

export function newRequestHeader(): RequestHeader {
  return { magic: 0, flags: 0, type: 0, cookieHi: 0, cookieLo: 0, offset: 0, length: 0 };
}

/** Parse 28 bytes at `pos` into `out` (no allocation). */
export function parseRequestInto(b: Buffer, pos: number, out: RequestHeader): RequestHeader {
  out.magic = b.readUInt32BE(pos);
  out.flags = b.readUInt16BE(pos + 4);
  out.type = b.readUInt16BE(pos + 6);
  out.cookieHi = b.readUInt32BE(pos + 8);
  out.cookieLo = b.readUInt32BE(pos + 12);
  out.offset = b.readUInt32BE(pos + 16) * 0x100000000 + b.readUInt32BE(pos + 20);
  out.length = b.readUInt32BE(pos + 24);
  return out;
}

export function parseRequest(b: Buffer, pos = 0): RequestHeader {
  return parseRequestInto(b, pos, newRequestHeader());
}

export interface RequestFields {
  flags?: number;
  type: number;
  cookie: bigint;
  offset: bigint | number;
  length: number;
  /** Override the magic (to craft bad frames in tests). */
  magic?: number;
}

/** Encode a request header (client side), optionally followed by a payload. */
export function encodeRequest(r: RequestFields, payload?: Buffer): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_SIZE + (payload ? payload.length : 0));
  writeRequest(b, 0, r);
  if (payload) payload.copy(b, REQUEST_SIZE);
  return b;
}

export function writeRequest(b: Buffer, pos: number, r: RequestFields): void {
  b.writeUInt32BE((r.magic ?? REQUEST_MAGIC) >>> 0, pos);
  b.writeUInt16BE(r.flags ?? 0, pos + 4);
  b.writeUInt16BE(r.type, pos + 6);
  b.writeBigUInt64BE(BigInt.asUintN(64, r.cookie), pos + 8);
  b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(r.offset)), pos + 16);
  b.writeUInt32BE(r.length >>> 0, pos + 24);
}

/** The 64-bit cookie of a parsed header. */
export function cookieOf(h: Pick<RequestHeader, 'cookieHi' | 'cookieLo'>): bigint {
  return (BigInt(h.cookieHi) << 32n) | BigInt(h.cookieLo);
}
