import { log } from '@nbdts/plugin-api';
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
  /** Retries after the first attempt at most (Infinity: only the time budget limits them). */
  retries: number;
  /** First backoff ceiling; doubles per attempt. */
  baseDelayMs: number;
  /** Largest backoff ceiling. */
  maxDelayMs: number;
  /** No retry starts once this much time has passed since the first attempt. */
  budgetMs: number;
}

/**
 * Keep retrying for a minute, whatever the count: a store that restarts (a
 * proxy reload, an RGW restart) is back within seconds, and failing a flush
 * with EIO after a fixed count of quick retries would lose what a short wait
 * saves. Delays run 100 ms, 200 ms, ... up to 10 s.
 */
export const DEFAULT_RETRY: RetryPolicy = { retries: Infinity, baseDelayMs: 100, maxDelayMs: 10_000, budgetMs: 60_000 };

/**
 * Start-up: a store that answers "busy" (503, 429, 500) is given ten seconds,
 * since a freshly started or briefly overloaded Swift or RGW says exactly
 * that; one that does not answer at all fails at once (see isBusyAnswer), so
 * a wrong URL still gets its one-line error without a wait.
 */
export const STARTUP_RETRY: RetryPolicy = { retries: Infinity, baseDelayMs: 200, maxDelayMs: 2_000, budgetMs: 10_000 };

/**
 * The store answered, with a status that means "try again later" (not a refused
 * or timed-out connection; not 501/505, which no wait will change).
 */
export function isBusyAnswer(err: unknown): boolean {
  return (
    err instanceof StoreError &&
    err.kind === 'transient' &&
    err.status !== undefined &&
    err.status !== 501 &&
    err.status !== 505
  );
}

/** Transient store errors and failed verifications are worth another try; auth, precondition and fatal are not. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof VerifyError) return true;
  return err instanceof StoreError && err.kind === 'transient';
}

/**
 * "Equal jitter" backoff: uniform in [c/2, c) with c = min(max, base * 2^attempt).
 * Random, so many clients do not retry in step; never near zero, so a retry
 * budget is spent waiting for the store rather than in a burst of failures.
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt, 52));
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
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
  retryable: (err: unknown) => boolean = isRetryable,
): Promise<T> {
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!retryable(err) || attempt >= policy.retries) throw err;
      const elapsed = Date.now() - start;
      if (elapsed >= policy.budgetMs) throw err;
      // The last wait is cut to what is left of the budget, so the final attempt still happens in time.
      const delay = Math.min(backoffDelay(attempt, policy), policy.budgetMs - elapsed);
      onRetry?.(err, attempt + 1, delay);
      await sleep(delay);
    }
  }
}

/** An onRetry for start-up calls: one warning per busy answer, so a slow start is explained. `what` names the disk. */
export function warnBusy(what: string): (err: unknown, attempt: number, delayMs: number) => void {
  return (err, attempt, delayMs) => {
    log.warn(`${what}: ${(err as Error).message}; trying again in ${delayMs} ms (attempt ${attempt + 1})`);
  };
}

/** withRetry for start-up calls: busy answers only, within STARTUP_RETRY's budget. */
export function withStartupRetry<T>(
  fn: () => Promise<T>,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  return withRetry(STARTUP_RETRY, fn, onRetry, isBusyAnswer);
}
