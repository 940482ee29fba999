/**
 * Buffers a read returns can be lent rather than given: the plugin wants its
 * memory back (to reuse it for other data) once the reply has left. Mark the
 * returned Buffer or array with lent(); the engine calls `release` exactly
 * once, when the socket no longer needs the bytes (written, or the connection
 * is gone). Until then the plugin must neither change nor reuse that memory.
 *
 * The mark is a property of the returned object, so a filter that passes the
 * result through keeps it, and a filter that builds new buffers drops it: then
 * `release` is never called and the plugin simply never reuses that memory.
 * A filter that keeps a plugin's buffers beyond the reply must copy them.
 */
const RELEASE = Symbol.for('nbdts.read.release');

type Marked = { [RELEASE]?: () => void };

/** Return `data` from read/pread, with `release` called once the engine is done with it. */
export function lent<T extends Buffer | readonly Buffer[]>(data: T, release: () => void): T {
  let done = false;
  (data as Marked)[RELEASE] = () => {
    if (done) return;
    done = true;
    release();
  };
  return data;
}

/** The release callback of a lent read result, if it has one (for the engine and filters). */
export function releaseOf(data: unknown): (() => void) | undefined {
  return typeof data === 'object' && data !== null ? (data as Marked)[RELEASE] : undefined;
}
