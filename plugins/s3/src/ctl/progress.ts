import { formatSize } from '@nbdts/plugin-api';

/** A one-line progress bar on stderr, drawn only on a terminal and at most 10 times a second. */
export class Progress {
  readonly #enabled: boolean;
  readonly #start = Date.now();
  #done = 0;
  #last = 0;

  constructor(readonly label: string, readonly total: number, enabled = process.stderr.isTTY === true) {
    this.#enabled = enabled;
  }

  /** Count `n` more bytes done (uploaded, downloaded or skipped as zeros). */
  add(n: number): void {
    this.#done += n;
    if (!this.#enabled) return;
    const now = Date.now();
    if (now - this.#last < 100 && this.#done < this.total) return;
    this.#last = now;
    const frac = this.total > 0 ? Math.min(1, this.#done / this.total) : 1;
    const bar = '#'.repeat(Math.round(frac * 30)).padEnd(30, ' ');
    const rate = this.#done / Math.max(0.001, (now - this.#start) / 1000);
    const mib = (rate / 2 ** 20).toFixed(1);
    process.stderr.write(`\r${this.label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% of ${formatSize(this.total)}, ${mib} MiB/s  `);
  }

  end(): void {
    if (this.#enabled) process.stderr.write('\n');
  }
}

/** Run fn over items with at most `jobs` at once; the first failure stops new work and is thrown. */
export async function parallel<T>(items: Iterable<T>, jobs: number, fn: (item: T) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  for (const item of items) {
    if (failure) break;
    const p: Promise<void> = fn(item).catch((err: unknown) => { failure ??= { err }; }).finally(() => running.delete(p));
    running.add(p);
    if (running.size >= jobs) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure) throw failure.err;
}
