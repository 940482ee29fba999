/**
 * NBD wire constants, named after the spec (doc/proto.md in NetworkBlockDevice/nbd)
 * without the NBD_ prefix. Every field on the wire is big-endian.
 */

/** "NBDMAGIC": first 8 bytes the server sends. */
export const NBDMAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": newstyle magic, also the prefix of every option request. */
export const IHAVEOPT = 0x49484156454f5054n;
/** Prefix of every option reply. */
export const REPLY_MAGIC = 0x0003e889045565a9n;

export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
/** Extended headers (not negotiated by nbdts; recognised so a stray one is rejected cleanly). */
export const EXTENDED_REQUEST_MAGIC = 0x21e41c71;

/** Handshake flags (server, 16 bits). */
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Client flags (32 bits). */
export const ClientFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Option types. */
export const Opt = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;

const ERR = 0x80000000;
/** Option reply types; errors have bit 31 set. */
export const Rep = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: ERR + 1,
  ERR_POLICY: ERR + 2,
  ERR_INVALID: ERR + 3,
  ERR_PLATFORM: ERR + 4,
  ERR_TLS_REQD: ERR + 5,
  ERR_UNKNOWN: ERR + 6,
  ERR_SHUTDOWN: ERR + 7,
  ERR_BLOCK_SIZE_REQD: ERR + 8,
  ERR_TOO_BIG: ERR + 9,
  ERR_EXT_HEADER_REQD: ERR + 10,
} as const;

export function isRepError(type: number): boolean {
  return (type & ERR) !== 0;
}

/** NBD_INFO_* types in NBD_REP_INFO replies to INFO/GO. */
export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Transmission flags (16 bits). */
export const TxFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
  BLOCK_STATUS_PAYLOAD: 1 << 12,
} as const;

/** Request types. */
export const Cmd = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

/** Command flags (16 bits). */
export const CmdFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
  PAYLOAD_LEN: 1 << 5,
} as const;

/** Error values in replies (a fixed subset of Linux errno numbers). */
export const NbdErr = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Structured reply flags. */
export const ReplyFlag = {
  DONE: 1 << 0,
} as const;

/** Structured reply chunk types; error types have bit 15 set. */
export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  BLOCK_STATUS_EXT: 6,
  ERROR: (1 << 15) + 1,
  ERROR_OFFSET: (1 << 15) + 2,
} as const;

/** NBD_STATE_* bits for base:allocation. */
export const State = {
  HOLE: 1 << 0,
  ZERO: 1 << 1,
} as const;

export const BASE_ALLOCATION = 'base:allocation';

/** Sizes of fixed-length messages, in bytes. */
export const GREETING_SIZE = 18;
export const OPTION_HEADER_SIZE = 16;
export const OPTION_REPLY_HEADER_SIZE = 20;
export const REQUEST_SIZE = 28;
export const SIMPLE_REPLY_SIZE = 16;
export const STRUCTURED_HEADER_SIZE = 20;
/** Trailing zeroes after the NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was negotiated. */
export const EXPORT_NAME_PAD = 124;
/** Strings (export names, queries, messages) MUST NOT exceed this. */
export const MAX_STRING = 4096;

/** Names for logs and error messages. */
export function cmdName(type: number): string {
  for (const [k, v] of Object.entries(Cmd)) if (v === type) return k;
  return `CMD_${type}`;
}

export function optName(opt: number): string {
  for (const [k, v] of Object.entries(Opt)) if (v === opt) return k;
  return `OPT_${opt}`;
}

export function repName(rep: number): string {
  for (const [k, v] of Object.entries(Rep)) if (v === rep) return k;
  return `REP_${rep >>> 0}`;
}

export function errName(err: number): string {
  for (const [k, v] of Object.entries(NbdErr)) if (v === err) return k;
  return `E${err}`;
}
