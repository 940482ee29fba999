/**
 * What a backend (Swift container, S3 bucket) provides to the block layer.
 * Adapters do one HTTP call per method and classify failures; the block layer
 * owns retries, verification, caching and concurrency limits.
 */

export interface ObjectInfo {
  key: string;
  size: number;
  /** Hex MD5 of the content for simple objects, as the store reports it (quotes removed). */
  etag?: string;
}

export interface PutOptions {
  /** Hex MD5 of data, computed by the block layer. Adapters send it so the store verifies it too. */
  md5: string;
  /** Create only if absent (If-None-Match: *). Throws StoreError with kind 'precondition' when present. */
  ifNoneMatch?: boolean;
  /** User metadata to store with the object (lower-case keys). */
  metadata?: Record<string, string>;
  contentType?: string;
}

export type StoreErrorKind =
  /** 5xx, 429, timeouts, connection resets: worth retrying with backoff. */
  | 'transient'
  /** 401/403 after the adapter already refreshed credentials once. */
  | 'auth'
  /** 404 on the container/bucket itself. */
  | 'missing-container'
  /** 412: conditional create lost. */
  | 'precondition'
  /** Anything else: do not retry. */
  | 'fatal';

export class StoreError extends Error {
  readonly kind: StoreErrorKind;
  readonly status: number | undefined;
  constructor(kind: StoreErrorKind, message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.kind = kind;
    this.status = status;
  }
}

export interface ObjectStore {
  /** e.g. "swift container mynbd0 at http://127.0.0.1:8080": for logs and errors (no secrets). */
  readonly description: string;
  /**
   * Read an object, or `length` bytes of it from `offset`. Resolves null when the
   * object does not exist. Returns the bytes the store sent; the caller checks the length.
   */
  get(key: string, range?: { offset: number; length: number }, signal?: AbortSignal): Promise<Buffer | null>;
  /**
   * Store an object; resolves with the ETag the store returned (quotes removed).
   * `data` is the cache's memory: read it only until the promise settles (the
   * block layer reuses it afterwards), and never change it.
   */
  put(key: string, data: Buffer, opts: PutOptions, signal?: AbortSignal): Promise<string>;
  /** Delete an object; an already missing object is not an error. */
  delete(key: string, signal?: AbortSignal): Promise<void>;
  /** Object metadata, or null when it does not exist. */
  head(key: string, signal?: AbortSignal): Promise<(ObjectInfo & { metadata: Record<string, string> }) | null>;
  /** Every object whose key starts with prefix, in key order, following pagination. */
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;
  /** Container/bucket-level metadata (Swift: X-Container-Meta-*). Keys lower-case, without prefix. */
  getContainerMeta?(signal?: AbortSignal): Promise<Record<string, string>>;
  /** Set (string) or remove (null) container-level metadata keys. */
  setContainerMeta?(meta: Record<string, string | null>, signal?: AbortSignal): Promise<void>;
  /** Release sockets. */
  close?(): Promise<void>;
}
