import { StoreError, type StoreErrorKind } from '@nbdts/objstore';

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

/** A StoreError for an HTTP failure, with a short excerpt of the body (never headers: they carry tokens). */
export function statusError(
  what: string,
  status: number,
  body: string,
  kind: StoreErrorKind = kindOfStatus(status),
): StoreError {
  const text = body
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
  return new StoreError(kind, `${what}: HTTP ${status}${text ? ` (${text})` : ''}`, status);
}
