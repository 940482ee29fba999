/**
 * Zeros handed out for holes by the stores' read(). Shared by every store and
 * every request: nothing may ever write into it. Holes longer than this are
 * returned as several references to it.
 */
export const ZEROS = Buffer.alloc(1024 * 1024);

/** Append `count` bytes of zeros to `out` as views of ZEROS. */
export function pushZeros(out: Buffer[], count: number): void {
  while (count > 0) {
    const n = Math.min(count, ZEROS.length);
    out.push(ZEROS.subarray(0, n));
    count -= n;
  }
}
