import { StoreError, type StoreErrorKind } from '@nbdts/objstore';

/** The parts of an SDK error (S3ServiceException or a network error) we look at. */
interface SdkErrorLike {
  name?: string;
  message?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  cause?: unknown;
}

/** S3 error codes that say "try again later" whatever the status. */
const TRANSIENT_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'OperationAborted',
  // Concurrent conditional writes to one key (AWS): the loser may retry.
  'ConditionalRequestConflict',
  // The store computed another MD5 than we sent: the body was damaged on the way.
  'BadDigest',
  'IncompleteBody',
  'TimeoutError',
  'RequestTimeoutException',
]);

/** Node socket errors worth a retry (the SDK passes them through with `code`). */
const TRANSIENT_SOCKET = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const AUTH_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AuthorizationHeaderMalformed',
  'CredentialsProviderError',
  'AllAccessDisabled',
]);

function socketCode(err: SdkErrorLike): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as SdkErrorLike).cause, depth++) {
    const code = (e as SdkErrorLike).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** The S3 error code: the SDK puts it in `name` (and `Code` for unmodelled errors). */
function s3Code(err: SdkErrorLike): string | undefined {
  if (typeof err.Code === 'string') return err.Code;
  // HEAD responses have no body: the SDK names those 'NotFound', 'Forbidden' or 'Unknown'.
  return typeof err.name === 'string' && err.name !== 'Error' ? err.name : undefined;
}

export function classifyKind(err: SdkErrorLike): StoreErrorKind {
  const status = err.$metadata?.httpStatusCode;
  const code = s3Code(err);
  const sock = socketCode(err);
  if (code === 'NoSuchBucket') return 'missing-container';
  if (status === 412 || code === 'PreconditionFailed') return 'precondition';
  if (code !== undefined && AUTH_CODES.has(code)) return 'auth';
  if (status === 401 || status === 403) return 'auth';
  // 501: the service lacks a feature (Swift s3api and conditional PUTs): no retry will help.
  if (status === 501 || code === 'NotImplemented') return 'fatal';
  if (code !== undefined && TRANSIENT_CODES.has(code)) return 'transient';
  if (sock !== undefined && TRANSIENT_SOCKET.has(sock)) return 'transient';
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return 'transient';
  if (err.name === 'AbortError') return 'transient';
  // A response cut short or a socket that closed without a code.
  if (status === undefined && /socket hang up|premature close|aborted|ECONN/i.test(err.message ?? ''))
    return 'transient';
  return 'fatal';
}

/** One line a user can act on, without secrets (SDK messages never contain the secret key). */
function explain(err: SdkErrorLike, kind: StoreErrorKind): string {
  const status = err.$metadata?.httpStatusCode;
  const code = s3Code(err) ?? socketCode(err);
  const raw = err.message && err.message !== 'UnknownError' ? err.message : undefined;
  const parts = [code, raw && raw !== code ? raw : undefined].filter(Boolean).join(': ');
  // Answers to HEAD have no body, so no S3 code: say what the status means.
  const bare =
    status === 403
      ? 'HTTP 403 Forbidden (wrong credentials or no permission)'
      : status === 404
        ? 'HTTP 404 Not Found'
        : status
          ? `HTTP ${status}`
          : 'unknown error';
  const text = (code === 'Unknown' || code === 'Forbidden' || code === 'NotFound' ? undefined : parts) || bare;
  if (kind === 'auth') {
    if (code === 'SignatureDoesNotMatch') return `${text} (wrong secret key?)`;
    if (code === 'InvalidAccessKeyId') return `${text} (unknown access key)`;
  }
  return text;
}

/** Turn an SDK failure into a StoreError; `what` names the call ("GET disk/0000000000000001"). */
export function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const e = (err ?? {}) as SdkErrorLike;
  const kind = classifyKind(e);
  return new StoreError(kind, `${what}: ${explain(e, kind)}`, e.$metadata?.httpStatusCode, { cause: err });
}

/** True for "the object is not there" (GET/HEAD 404 that is not about the bucket). */
export function isNoSuchKey(err: unknown): boolean {
  const e = (err ?? {}) as SdkErrorLike;
  const code = s3Code(e);
  return code === 'NoSuchKey' || (e.$metadata?.httpStatusCode === 404 && code !== 'NoSuchBucket');
}
