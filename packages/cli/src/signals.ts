/**
 * Reasons to stop serving: SIGINT/SIGTERM (a second one means "now"), the
 * parent process going away (--exit-with-parent), or the caller deciding.
 */

export interface StopTrigger {
  /** Resolves with the reason on the first request to stop. */
  readonly stopped: Promise<string>;
  stop(reason: string): void;
  dispose(): void;
}

/**
 * The first SIGINT/SIGTERM resolves `stopped` (graceful shutdown); the second
 * calls `onForce` (which should exit at once).
 */
export function watchSignals(onForce: (signal: NodeJS.Signals) => void): StopTrigger {
  let resolveStop!: (reason: string) => void;
  let stopping = false;
  const stopped = new Promise<string>((r) => {
    resolveStop = r;
  });
  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    resolveStop(reason);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) onForce(signal);
    else stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stopped,
    stop,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/**
 * --exit-with-parent. Linux's PR_SET_PDEATHSIG is not reachable from Node, so
 * poll once a second: when the parent dies we are re-parented (to init or a
 * subreaper) and process.ppid changes. Returns a function that stops watching.
 */
export function watchParent(onGone: () => void, intervalMs = 1000): () => void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    let gone = process.ppid !== parent;
    if (!gone) {
      try {
        process.kill(parent, 0);
      } catch (err) {
        gone = (err as NodeJS.ErrnoException).code === 'ESRCH';
      }
    }
    if (gone) {
      clearInterval(timer);
      onGone();
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
