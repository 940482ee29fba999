/** Round trips and malformed-input checks for the wire format. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Info,
  ProtocolError,
  REQUEST_MAGIC,
  REQUEST_SIZE,
  ReplyFlag,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  cookieOf,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoRequest,
  encodeInfoString,
  encodeMetaContextReply,
  encodeMetaContextRequest,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHole,
  encodeOption,
  encodeOptionReply,
  encodeRequest,
  encodeServerReplyData,
  encodeSimpleReply,
  parseBlockStatus,
  parseChunkHeader,
  parseErrorChunk,
  parseGreeting,
  parseInfoReply,
  parseInfoRequest,
  parseMetaContextReply,
  parseMetaContextRequest,
  parseOffsetData,
  parseOffsetHole,
  parseOptionHeader,
  parseOptionReplyHeader,
  parseRequest,
  parseServerReplyData,
  parseSimpleReply,
  IHAVEOPT,
  REPLY_MAGIC,
  writeU64,
} from '../src/index.ts';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
/** Strings as the spec allows them: UTF-8 without NUL, at most 4096 bytes. */
const nbdString = fc
  .string({ unit: 'grapheme', maxLength: 64 })
  .filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= 4096);

describe('requests', () => {
  it('round-trip the 28-byte header', () => {
    fc.assert(
      fc.property(u16, u16, u64, u64, u32, (flags, type, cookie, offset, length) => {
        const b = encodeRequest({ flags, type, cookie, offset, length });
        expect(b.length).toBe(REQUEST_SIZE);
        const h = parseRequest(b);
        expect(h.magic).toBe(REQUEST_MAGIC);
        expect([h.flags, h.type, h.length]).toEqual([flags, type, length]);
        expect(cookieOf(h)).toBe(cookie);
        // exact below 2^53, and never below the true value above it
        if (offset <= BigInt(Number.MAX_SAFE_INTEGER)) expect(h.offset).toBe(Number(offset));
        else expect(h.offset).toBeGreaterThan(Number.MAX_SAFE_INTEGER - 1);
      }),
    );
  });

  it('carries a payload after the header', () => {
    const b = encodeRequest({ type: 1, cookie: 5n, offset: 0, length: 3 }, Buffer.from('abc'));
    expect(b.subarray(REQUEST_SIZE).toString()).toBe('abc');
  });
});

describe('replies', () => {
  it('simple reply round trip', () => {
    fc.assert(
      fc.property(u32, u32, u32, (error, hi, lo) => {
        const r = parseSimpleReply(encodeSimpleReply(error, hi, lo));
        expect(r).toEqual({ magic: SIMPLE_REPLY_MAGIC, error, cookie: (BigInt(hi) << 32n) | BigInt(lo) });
      }),
    );
  });

  it('OFFSET_DATA header and OFFSET_HOLE round trip', () => {
    fc.assert(
      fc.property(u32, u32, safe, fc.integer({ min: 1, max: 1 << 25 }), (hi, lo, offset, len) => {
        const h = encodeOffsetDataHeader(hi, lo, ReplyFlag.DONE, offset, len);
        const c = parseChunkHeader(h);
        expect(c).toEqual({
          magic: STRUCTURED_REPLY_MAGIC,
          flags: ReplyFlag.DONE,
          type: ReplyType.OFFSET_DATA,
          cookie: (BigInt(hi) << 32n) | BigInt(lo),
          length: 8 + len,
        });
        expect(parseOffsetData(Buffer.concat([h.subarray(20), Buffer.alloc(1)])).offset).toBe(BigInt(offset));
        const hole = encodeOffsetHole(hi, lo, 0, offset, len);
        expect(parseChunkHeader(hole).type).toBe(ReplyType.OFFSET_HOLE);
        expect(parseOffsetHole(hole.subarray(20))).toEqual({ offset: BigInt(offset), size: len });
      }),
    );
  });

  it('ERROR chunk round trip (message capped at 4096 bytes)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0xffffffff }), fc.string({ maxLength: 5000 }), (error, message) => {
        const b = encodeErrorChunk(0, 1, ReplyFlag.DONE, error, message);
        const h = parseChunkHeader(b);
        expect(h.type).toBe(ReplyType.ERROR);
        expect(h.length).toBe(b.length - 20);
        const e = parseErrorChunk(b.subarray(20));
        expect(e.error).toBe(error);
        expect(Buffer.byteLength(e.message)).toBeLessThanOrEqual(4096);
        if (Buffer.byteLength(message) <= 4096) expect(e.message).toBe(message);
      }),
    );
  });

  it('BLOCK_STATUS round trip', () => {
    fc.assert(
      fc.property(
        u32,
        fc.array(fc.tuple(fc.integer({ min: 1, max: 0xffffffff }), u32), { minLength: 1, maxLength: 50 }),
        (id, ext) => {
          const b = encodeBlockStatusChunk(0, 0, ReplyFlag.DONE, id, ext.flat());
          expect(parseChunkHeader(b).length).toBe(4 + 8 * ext.length);
          expect(parseBlockStatus(b.subarray(20))).toEqual({
            contextId: id,
            extents: ext.map(([length, flags]) => ({ length, flags })),
          });
        },
      ),
    );
  });

  it('NONE chunk has DONE and no payload', () => {
    expect(parseChunkHeader(encodeNoneChunk(1, 2))).toEqual({
      magic: STRUCTURED_REPLY_MAGIC,
      flags: ReplyFlag.DONE,
      type: ReplyType.NONE,
      cookie: (1n << 32n) | 2n,
      length: 0,
    });
  });

  it('writeU64 matches BigInt encoding', () => {
    fc.assert(
      fc.property(safe, (v) => {
        const b = Buffer.alloc(8);
        writeU64(b, 0, v);
        expect(b.readBigUInt64BE(0)).toBe(BigInt(v));
      }),
    );
  });
});

describe('handshake messages', () => {
  it('greeting and option headers', () => {
    expect(parseGreeting(encodeGreeting(3))).toEqual({ handshakeFlags: 3 });
    expect(() => parseGreeting(Buffer.alloc(18))).toThrow(ProtocolError);
    fc.assert(
      fc.property(u32, fc.uint8Array({ maxLength: 64 }), (opt, data) => {
        const b = encodeOption(opt, Buffer.from(data));
        expect(parseOptionHeader(b)).toEqual({ magic: IHAVEOPT, option: opt, length: data.length });
      }),
    );
    fc.assert(
      fc.property(u32, u32, fc.uint8Array({ maxLength: 64 }), (opt, type, data) => {
        const b = encodeOptionReply(opt, type, Buffer.from(data));
        expect(parseOptionReplyHeader(b)).toEqual({ magic: REPLY_MAGIC, option: opt, type, length: data.length });
        expect(b.subarray(20).equals(Buffer.from(data))).toBe(true);
      }),
    );
  });

  it('INFO/GO data round trip', () => {
    fc.assert(
      fc.property(nbdString, fc.array(u16, { maxLength: 20 }), (name, infos) => {
        expect(parseInfoRequest(encodeInfoRequest(name, infos))).toEqual({ name, infos });
      }),
    );
  });

  it('INFO/GO data: malformed inputs are ProtocolErrors, never crashes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (raw) => {
        try {
          parseInfoRequest(Buffer.from(raw));
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
      }),
    );
    const b = encodeInfoRequest('abc', [1]);
    b.writeUInt32BE(0xffffffff, 0);
    expect(() => parseInfoRequest(b)).toThrow(ProtocolError);
    expect(() => parseInfoRequest(encodeInfoRequest('a\0b'))).toThrow(/NUL/);
  });

  it('meta context data round trip and malformed inputs', () => {
    fc.assert(
      fc.property(nbdString, fc.array(nbdString, { maxLength: 10 }), (name, queries) => {
        expect(parseMetaContextRequest(encodeMetaContextRequest(name, queries))).toEqual({ name, queries });
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (raw) => {
        try {
          parseMetaContextRequest(Buffer.from(raw));
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
      }),
    );
    const huge = encodeMetaContextRequest('', ['base:allocation']);
    huge.writeUInt32BE(0xffffffff, 4);
    expect(() => parseMetaContextRequest(huge)).toThrow(ProtocolError);
    expect(parseMetaContextReply(encodeMetaContextReply(7, 'base:allocation'))).toEqual({
      id: 7,
      name: 'base:allocation',
    });
  });

  it('info replies and NBD_REP_SERVER round trip', () => {
    fc.assert(
      fc.property(safe, u16, (size, flags) => {
        expect(parseInfoReply(encodeInfoExport(size, flags))).toEqual({ type: Info.EXPORT, size: BigInt(size), flags });
      }),
    );
    expect(parseInfoReply(encodeInfoString(Info.NAME, 'disk'))).toEqual({ type: Info.NAME, text: 'disk' });
    expect(parseInfoReply(encodeInfoBlockSize(512, 4096, 1 << 25))).toEqual({
      type: Info.BLOCK_SIZE,
      minimum: 512,
      preferred: 4096,
      maximum: 1 << 25,
    });
    fc.assert(
      fc.property(nbdString, nbdString, (name, description) => {
        expect(parseServerReplyData(encodeServerReplyData(name, description))).toEqual({ name, description });
      }),
    );
  });

  it('EXPORT_NAME reply with and without zeroes', () => {
    expect(encodeExportNameReply(1024, 1, true).length).toBe(10);
    const z = encodeExportNameReply(1024, 1, false);
    expect(z.length).toBe(134);
    expect(z.readBigUInt64BE(0)).toBe(1024n);
    expect(z.subarray(10).every((x) => x === 0)).toBe(true);
  });
});
