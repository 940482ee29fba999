/**
 * Errors a plugin throws to fail one request. The engine turns `errno` into the
 * NBD error sent to the client; the message goes to the server log only.
 * Errors without a known errno (including plain bugs) are reported as EIO.
 */
export type Errno =
  | 'EPERM'
  | 'EIO'
  | 'ENOMEM'
  | 'EINVAL'
  | 'ENOSPC'
  | 'EOVERFLOW'
  | 'ENOTSUP'
  | 'ESHUTDOWN'
  | 'EROFS'
  | 'EDQUOT'
  | 'EFBIG'
  | 'EOPNOTSUPP'
  | 'EAGAIN'
  | 'EACCES'
  | 'ENOENT'
  | 'ETIMEDOUT';

export class NbdError extends Error {
  readonly errno: Errno;
  constructor(errno: Errno, message?: string, options?: { cause?: unknown }) {
    super(message ?? errno, options);
    this.name = 'NbdError';
    this.errno = errno;
  }
}

/** Shorthand: `throw nbdError('ENOSPC', 'disk full')`. */
export function nbdError(errno: Errno, message?: string, cause?: unknown): NbdError {
  return new NbdError(errno, message, cause === undefined ? undefined : { cause });
}

/**
 * A configuration or start-up problem: the CLI prints `message` as one line and
 * exits 1. Say what is wrong and what to do.
 */
export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConfigError';
  }
}
