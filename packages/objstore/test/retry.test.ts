import { describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_RETRY,
  STARTUP_RETRY,
  StoreError,
  backoffDelay,
  isBusyAnswer,
  withRetry,
  withStartupRetry,
} from '../src/index.ts';

const transient = () => new StoreError('transient', 'HTTP 503');

describe('retry policy', () => {
  it('backs off between half and all of a doubling ceiling, capped', () => {
    const p = { retries: Infinity, baseDelayMs: 100, maxDelayMs: 10_000, budgetMs: 60_000 };
    expect(backoffDelay(0, p, () => 0)).toBe(50);
    expect(backoffDelay(0, p, () => 0.999)).toBe(99);
    expect(backoffDelay(3, p, () => 0)).toBe(400);
    expect(backoffDelay(20, p, () => 0)).toBe(5_000);
    expect(backoffDelay(2000, p, () => 0.5)).toBe(7_500);
  });

  it('by default outlasts a store outage of tens of seconds (time budget, not a count)', async () => {
    vi.useFakeTimers();
    try {
      const outageMs = 30_000;
      const start = Date.now();
      let attempts = 0;
      const p = withRetry(DEFAULT_RETRY, async () => {
        attempts++;
        if (Date.now() - start < outageMs) throw transient();
        return 'stored';
      });
      await vi.advanceTimersByTimeAsync(60_000);
      await expect(p).resolves.toBe('stored');
      expect(attempts).toBeGreaterThan(6); // more than the old fixed count
    } finally {
      vi.useRealTimers();
    }
  });

  it('gives up once the budget is spent, with the last error, and tries once more at the deadline', async () => {
    vi.useFakeTimers();
    try {
      const start = Date.now();
      let last = 0;
      const p = withRetry({ retries: Infinity, baseDelayMs: 100, maxDelayMs: 10_000, budgetMs: 20_000 }, async () => {
        last = Date.now() - start;
        throw transient();
      });
      const settled = expect(p).rejects.toThrow('HTTP 503');
      await vi.advanceTimersByTimeAsync(25_000);
      await settled;
      expect(last).toBe(20_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it('still honours a retry count', async () => {
    let attempts = 0;
    await expect(
      withRetry({ retries: 2, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 60_000 }, async () => {
        attempts++;
        throw transient();
      }),
    ).rejects.toThrow('HTTP 503');
    expect(attempts).toBe(3);
  });

  it('at start-up retries busy answers (503, 429) within ten seconds, and nothing else', async () => {
    expect(isBusyAnswer(new StoreError('transient', 'HTTP 503', 503))).toBe(true);
    expect(isBusyAnswer(new StoreError('transient', 'HTTP 429', 429))).toBe(true);
    expect(isBusyAnswer(new StoreError('transient', 'HTTP 501', 501))).toBe(false);
    expect(isBusyAnswer(new StoreError('transient', 'connect ECONNREFUSED'))).toBe(false);
    expect(isBusyAnswer(new StoreError('auth', 'HTTP 401', 401))).toBe(false);
    vi.useFakeTimers();
    try {
      let attempts = 0;
      const warnings: number[] = [];
      const p = withStartupRetry(
        async () => {
          if (++attempts < 4) throw new StoreError('transient', 'HTTP 503', 503);
          return 'ready';
        },
        (_err, attempt) => warnings.push(attempt),
      );
      await vi.advanceTimersByTimeAsync(STARTUP_RETRY.budgetMs);
      await expect(p).resolves.toBe('ready');
      expect(warnings).toEqual([1, 2, 3]);
      const start = Date.now();
      const forever = withStartupRetry(async () => {
        throw new StoreError('transient', 'HTTP 503', 503);
      });
      const settled = forever.catch((e: unknown) => e);
      await vi.advanceTimersByTimeAsync(STARTUP_RETRY.budgetMs + 1_000);
      expect(await settled).toBeInstanceOf(StoreError);
      expect(Date.now() - start).toBeLessThanOrEqual(STARTUP_RETRY.budgetMs + 1_000);
    } finally {
      vi.useRealTimers();
    }
  });
});
