/**
 * Request validation against the spec and the open export, as a pure
 * function (nbdkit's validate_request). The connection answers an invalid
 * request with the error and logs the reason at debug level; the plugin never
 * sees it. Reasons are constants, so a valid request allocates nothing.
 */
import { Cmd, CmdFlag, NbdErr, type RequestHeader } from '@nbdts/protocol';
import type { Capabilities } from './backend.ts';

/** What the negotiated session allows, besides the export's capabilities. */
export interface Session {
  caps: Capabilities;
  /** Structured replies were negotiated (DF is allowed on reads). */
  structured: boolean;
  /** A meta context was selected (BLOCK_STATUS is allowed). */
  contexts: boolean;
}

export interface Invalid {
  /** The NBD error to reply with. */
  errno: number;
  /** Why, for the debug log. */
  reason: string;
}

const bad = (errno: number, reason: string): Invalid => Object.freeze({ errno, reason });

const UNKNOWN_COMMAND = bad(NbdErr.EINVAL, 'unknown command');
const BAD_FLAGS = bad(NbdErr.EINVAL, 'flags not allowed for this command or export');
const READ_ONLY = bad(NbdErr.EPERM, 'the export is read-only');
const NO_TRIM = bad(NbdErr.EINVAL, 'the export does not support trim');
const NO_ZERO = bad(NbdErr.EINVAL, 'the export does not support write zeroes');
const NO_FLUSH = bad(NbdErr.EINVAL, 'the export does not support flush');
const FLUSH_RANGE = bad(NbdErr.EINVAL, 'flush must have offset and length 0');
const NO_CACHE = bad(NbdErr.EINVAL, 'the export does not support cache');
const NO_CONTEXT = bad(NbdErr.EINVAL, 'block status without a negotiated meta context');
const ZERO_LENGTH = bad(NbdErr.EINVAL, 'length 0');
const PAST_END_WRITE = bad(NbdErr.ENOSPC, 'write past the end of the export');
const PAST_END = bad(NbdErr.EINVAL, 'request past the end of the export');
const UNALIGNED = bad(NbdErr.EINVAL, 'offset or length not a multiple of the minimum block size');
const TOO_LARGE = bad(NbdErr.EINVAL, 'longer than the maximum block size');

/** The flags each command accepts in this session (FUA only when the export takes it). */
function allowedFlags(type: number, s: Session): number {
  const c = s.caps;
  const fua = c.fua !== 'none' ? CmdFlag.FUA : 0;
  switch (type) {
    case Cmd.READ:
      return fua | (s.structured ? CmdFlag.DF : 0);
    case Cmd.WRITE:
    case Cmd.TRIM:
    case Cmd.FLUSH:
    case Cmd.CACHE:
      return fua;
    case Cmd.WRITE_ZEROES:
      return fua | CmdFlag.NO_HOLE | (c.canFastZero ? CmdFlag.FAST_ZERO : 0);
    case Cmd.BLOCK_STATUS:
      return fua | CmdFlag.REQ_ONE;
    default:
      return -1;
  }
}

/** undefined when `h` (any command but DISC) may run, else the error and why. */
export function validateRequest(h: RequestHeader, s: Session): Invalid | undefined {
  const c = s.caps;
  const type = h.type;
  const allowed = allowedFlags(type, s);
  if (allowed < 0) return UNKNOWN_COMMAND;
  if ((h.flags & ~allowed) !== 0) return BAD_FLAGS;
  switch (type) {
    case Cmd.WRITE:
      if (!c.canWrite) return READ_ONLY;
      break;
    case Cmd.TRIM:
      if (!c.canWrite) return READ_ONLY;
      if (!c.canTrim) return NO_TRIM;
      break;
    case Cmd.WRITE_ZEROES:
      if (!c.canWrite) return READ_ONLY;
      if (c.zero === 'none') return NO_ZERO;
      break;
    case Cmd.FLUSH:
      if (!c.canFlush) return NO_FLUSH;
      return h.offset !== 0 || h.length !== 0 ? FLUSH_RANGE : undefined;
    case Cmd.CACHE:
      if (c.cache === 'none') return NO_CACHE;
      break;
    case Cmd.BLOCK_STATUS:
      if (!s.contexts) return NO_CONTEXT;
      break;
  }
  const len = h.length;
  const off = h.offset;
  if (len === 0) return ZERO_LENGTH;
  // offset is inexact only above 2^53, where it is past the end anyway (covers 64-bit wrap).
  if (off + len > c.size) return type === Cmd.WRITE || type === Cmd.WRITE_ZEROES ? PAST_END_WRITE : PAST_END;
  const bs = c.blockSize;
  if (bs.minimum > 1 && (off % bs.minimum !== 0 || len % bs.minimum !== 0)) return UNALIGNED;
  if ((type === Cmd.READ || type === Cmd.WRITE) && len > bs.maximum) return TOO_LARGE;
  return undefined;
}
