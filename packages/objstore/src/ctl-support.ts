/**
 * Pieces shared by the object-store control tools (nbdts-swift, nbdts-s3):
 * a progress bar, a bounded parallel runner, and console output/logging.
 */
import { formatSize } from '@nbdts/plugin-api';
import { type PluginLogger } from '@nbdts/plugin-api/engine';

/** Where a control command writes its results (stdout) and messages (stderr). */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

export function consoleOutput(): Output {
  return { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) };
}

/** Plugin-style logging straight to stderr, for tools that run without the server's logger. */
export function stderrLogger(verbose: boolean): PluginLogger {
  return {
    debug: (m) => {
      if (verbose) process.stderr.write(`debug: ${m}\n`);
    },
    info: (m) => process.stderr.write(`${m}\n`),
    warn: (m) => process.stderr.write(`warning: ${m}\n`),
    error: (m) => process.stderr.write(`error: ${m}\n`),
    debugEnabled: verbose,
  };
}

/** A one-line progress bar on stderr, drawn only on a terminal and at most 10 times a second. */
export class Progress {
  readonly #enabled: boolean;
  readonly #start = Date.now();
  #done = 0;
  #last = 0;

  readonly label: string;
  readonly total: number;

  constructor(label: string, total: number, enabled = process.stderr.isTTY === true) {
    this.label = label;
    this.total = total;
    this.#enabled = enabled;
  }

  /** Count `n` more bytes done (transferred, or skipped as zeros). */
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
    process.stderr.write(
      `\r${this.label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% of ${formatSize(this.total)}, ${mib} MiB/s  `,
    );
  }

  end(): void {
    if (this.#enabled) process.stderr.write('\n');
  }
}

/** Run fn over items with at most `jobs` running at once; the first failure stops new work and is thrown. */
export async function parallel<T>(
  items: Iterable<T> | AsyncIterable<T>,
  jobs: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const running = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  for await (const item of items) {
    if (failure) break;
    const p: Promise<void> = fn(item)
      .catch((err: unknown) => {
        failure ??= { err };
      })
      .finally(() => running.delete(p));
    running.add(p);
    if (running.size >= jobs) await Promise.race(running);
  }
  await Promise.all(running);
  if (failure) throw failure.err;
}
