/** Map what a plugin threw to an NBD error number. */
import { NbdErr } from '@nbdts/protocol';

const MAP: Record<string, number> = {
  EPERM: NbdErr.EPERM,
  EROFS: NbdErr.EPERM,
  EACCES: NbdErr.EPERM,
  EIO: NbdErr.EIO,
  ENOMEM: NbdErr.ENOMEM,
  EAGAIN: NbdErr.ENOMEM,
  EINVAL: NbdErr.EINVAL,
  ENOSPC: NbdErr.ENOSPC,
  EDQUOT: NbdErr.ENOSPC,
  EFBIG: NbdErr.ENOSPC,
  EOVERFLOW: NbdErr.EOVERFLOW,
  ENOTSUP: NbdErr.ENOTSUP,
  EOPNOTSUPP: NbdErr.ENOTSUP,
  ESHUTDOWN: NbdErr.ESHUTDOWN,
};

/** The errno name carried by an error: NbdError.errno or a Node system error's .code. */
export function errnoName(err: unknown): string | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const e = err as { errno?: unknown; code?: unknown };
  if (typeof e.errno === 'string') return e.errno;
  if (typeof e.code === 'string') return e.code;
  return undefined;
}

/** NBD error for a thrown value; anything unknown (including plain bugs) is EIO. */
export function toNbdError(err: unknown): number {
  const name = errnoName(err);
  return (name !== undefined && MAP[name]) || NbdErr.EIO;
}
