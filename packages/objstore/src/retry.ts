import { StoreError } from './store.ts';

/**
 * A response that arrived but cannot be right (short body, ETag that is not
 * the MD5 we sent). Retried like a transient error: it is usually a broken
 * connection or a proxy, and storing or returning it would corrupt the disk.
 */
export class VerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerifyError';
  }
}

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff ceiling; doubles per attempt. */
  baseDelayMs: number;
  /** Largest backoff ceiling. */
  maxDelayMs: number;
  /** No retry starts once this much time has passed since the first attempt. */
  budgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 6, baseDelayMs: 100, maxDelayMs: 10_000, budgetMs: 60_000 };

/** Transient store errors and failed verifications are worth another try; auth, precondition and fatal are not. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof VerifyError) return true;
  return err instanceof StoreError && err.kind === 'transient';
}

/** "Full jitter" backoff: uniform in [0, min(max, base * 2^attempt)), so many clients do not retry in step. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Run `fn` until it succeeds, fails with an error that is not retryable, or
 * the retry count or time budget runs out; the last error is thrown.
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!isRetryable(err) || attempt >= policy.retries) throw err;
      const delay = backoffDelay(attempt, policy);
      if (Date.now() - start + delay > policy.budgetMs) throw err;
      onRetry?.(err, attempt + 1, delay);
      await sleep(delay);
    }
  }
}
