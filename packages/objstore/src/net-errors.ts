import { StoreError } from './store.ts';

/** Error codes of a network hiccup: another attempt may well work. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENETRESET',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** The errno-style code of a network error (undici may wrap the socket's error in `cause`). */
function codeOf(err: unknown): string | undefined {
  for (
    let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    if (typeof e.code === 'string') return e.code;
  }
  return undefined;
}

/**
 * A StoreError for a request that got no (complete) answer. Connection
 * failures, resets, timeouts and garbled responses (HPE_*: a proxy or a
 * half-dead server) are transient; a host that does not resolve, TLS
 * certificate problems and invalid requests are fatal, as retrying cannot help.
 */
export function networkError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = codeOf(err);
  const message = (err as Error | undefined)?.message ?? String(err);
  if (code === 'ENOTFOUND') {
    return new StoreError('fatal', `${what}: host not found (check the URL)`, undefined, { cause: err });
  }
  const detail = code && !message.includes(code) ? `${code}: ${message}` : message;
  if (code === undefined || TRANSIENT_CODES.has(code) || code.startsWith('HPE_')) {
    return new StoreError('transient', `${what}: ${detail}`, undefined, { cause: err });
  }
  return new StoreError('fatal', `${what}: ${detail}`, undefined, { cause: err });
}

/** The error of an exchange that did not finish within its time limit (both HTTP clients). */
export function noAnswer(what: string, timeoutMs: number): StoreError {
  return new StoreError('transient', `${what}: no answer within ${timeoutMs / 1000} s`);
}
