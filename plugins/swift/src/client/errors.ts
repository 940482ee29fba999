import { StoreError, type StoreErrorKind } from '@nbdts/objstore';

/** Node/undici error codes that mean "the network hiccupped": worth retrying. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENETDOWN', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** The kind of failure an HTTP status means, for statuses that are failures. */
export function kindOfStatus(status: number): StoreErrorKind {
  if (status === 401 || status === 403) return 'auth';
  if (status === 412) return 'precondition';
  // 408 request timeout, 429 rate limited, 498/499 (proxies), 5xx: the store may recover.
  // 422: Swift's MD5 of the upload did not match the ETag we sent: corrupted in transit, send it again.
  if (status === 408 || status === 422 || status === 429 || status === 498 || status === 499 || status >= 500) {
    return 'transient';
  }
  return 'fatal';
}

/** The errno-style code of a fetch failure (undici wraps the socket error in `cause`). */
function codeOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/**
 * Turn whatever fetch threw into a StoreError. An abort requested by the
 * caller is passed through unchanged so retry loops stop at once.
 */
export function classifyFetchError(err: unknown, what: string, timeoutMs: number, callerSignal?: AbortSignal): unknown {
  if (err instanceof StoreError) return err;
  if (callerSignal?.aborted) return callerSignal.reason ?? err;
  const name = (err as Error | undefined)?.name;
  if (name === 'TimeoutError') {
    return new StoreError('transient', `${what}: no answer within ${timeoutMs / 1000} s`, undefined, { cause: err });
  }
  const code = codeOf(err);
  const detail = code ?? (err as Error | undefined)?.message ?? String(err);
  if (code === 'ENOTFOUND') {
    return new StoreError('fatal', `${what}: host not found (check the URL)`, undefined, { cause: err });
  }
  // Node's fetch refuses the WHATWG "bad ports" (1, 6000, 10080, ...) without connecting:
  // retrying cannot help, and "is Swift running?" would send the user the wrong way.
  if (code === undefined && (err as { cause?: { message?: unknown } } | undefined)?.cause?.message === 'bad port') {
    return new StoreError('fatal', `${what}: Node's fetch refuses this port (a "bad port" of the fetch standard, ` +
      'e.g. 1, 6000, 10080): serve Swift on another port', undefined, { cause: err });
  }
  if (code === undefined || TRANSIENT_CODES.has(code) || (err as Error).message === 'fetch failed' || name === 'AbortError') {
    return new StoreError('transient', `${what}: ${detail}`, undefined, { cause: err });
  }
  return new StoreError('fatal', `${what}: ${detail}`, undefined, { cause: err });
}

/** A StoreError for an HTTP failure, with a short excerpt of the body (never headers: they carry tokens). */
export function statusError(what: string, status: number, body: string, kind: StoreErrorKind = kindOfStatus(status)): StoreError {
  const text = body.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
  return new StoreError(kind, `${what}: HTTP ${status}${text ? ` (${text})` : ''}`, status);
}
