/**
 * Asking the server to stop, from a plugin or filter (nbdkit_shutdown): the
 * same graceful shutdown as SIGTERM, for filters such as exitlast and
 * exitwhen. The engine installs the handler; it lives on globalThis so a
 * plugin with its own copy of this package reaches the same server. In a
 * worker thread the engine's handler forwards the request to the main thread.
 */
const KEY = Symbol.for('nbdts.shutdown');

type WithHandler = typeof globalThis & { [KEY]?: (reason: string) => void };

/** Called by the engine (and by each worker thread's engine). */
export function setShutdownHandler(handler: ((reason: string) => void) | undefined): void {
  (globalThis as WithHandler)[KEY] = handler;
}

/**
 * Stop serving as soon as possible, gracefully: in-flight requests finish,
 * handles are flushed and closed, then the process exits. `reason` is logged.
 * Returns false when no server is running (e.g. in a unit test).
 */
export function requestShutdown(reason: string): boolean {
  const handler = (globalThis as WithHandler)[KEY];
  if (!handler) return false;
  handler(reason);
  return true;
}
