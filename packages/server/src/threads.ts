/**
 * Serving connections on worker threads (main-thread side). The main thread
 * accepts; each accepted socket's descriptor is duplicated (native helper)
 * and handed to the worker with the fewest connections, which runs its own
 * engine (handshake, transmission, replies) on its own copy of the plugin.
 * One thread per core lets several clients' requests be read, copied and
 * answered at the same time, as nbdkit's threads do.
 */
import { Worker } from 'node:worker_threads';
import type net from 'node:net';
import type { Logger } from 'pino';
import { requestShutdown } from '@nbdts/plugin-api';
import type { EngineSettings } from './connections.ts';
import { FDOPS_BUILD_HINT, loadFdOps, type FdOps } from './native.ts';

/** What the caller (the CLI) gives the engine to run the plugin in worker threads. */
export interface ThreadSpec {
  /** Worker threads to start (at least 1). */
  count: number;
  /**
   * URL of a module exporting `loadThreadStack(data): Promise<Stack>`, run in
   * each worker to load and attach its copies of the plugin and filters.
   */
  loader: string;
  /** Structured-clonable; passed to loadThreadStack. */
  data: unknown;
}

/** What a worker is started with. */
export interface WorkerInit {
  loader: string;
  data: unknown;
  settings: EngineSettings;
  logLevel: string;
}

export type ToWorker = { t: 'serve'; id: number; fd: number; peer: string } | { t: 'stop' };
export type FromWorker =
  | { t: 'ready' }
  | { t: 'failed'; message: string }
  | { t: 'log'; line: string }
  | { t: 'closed'; id: number }
  /** A plugin or filter in the worker called requestShutdown. */
  | { t: 'shutdown'; reason: string }
  | { t: 'stopped' };

const START_TIMEOUT_MS = 60_000;

interface Thread {
  worker: Worker;
  index: number;
  alive: boolean;
  /** Connections it serves: id -> called when it closed. */
  conns: Map<number, () => void>;
  stopped?: () => void;
}

export class ServingThreads {
  readonly #threads: Thread[];
  readonly #fd: FdOps;
  readonly #log: Logger;

  private constructor(threads: Thread[], fd: FdOps, log: Logger) {
    this.#threads = threads;
    this.#fd = fd;
    this.#log = log;
  }

  /**
   * Start the workers and wait until each has its plugin attached. Resolves
   * undefined (after a warning) when threads cannot be used; the caller then
   * serves on the main thread.
   */
  static async start(spec: ThreadSpec, settings: EngineSettings, log: Logger): Promise<ServingThreads | undefined> {
    const fd = loadFdOps();
    if (!fd.ops) {
      log.warn(`serving every connection on the main thread: ${fd.error}; ${FDOPS_BUILD_HINT}`);
      return undefined;
    }
    const init: WorkerInit = { loader: spec.loader, data: spec.data, settings, logLevel: log.level };
    const threads: Thread[] = [];
    const starts: Promise<void>[] = [];
    for (let index = 0; index < spec.count; index++) {
      const worker = new Worker(new URL('./thread-boot.mjs', import.meta.url), { workerData: init });
      worker.unref(); // the listeners keep the process alive, not idle workers
      const t: Thread = { worker, index, alive: true, conns: new Map() };
      threads.push(t);
      starts.push(
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`worker ${index} did not start within ${START_TIMEOUT_MS / 1000} s`)),
            START_TIMEOUT_MS,
          );
          const onMessage = (m: FromWorker): void => {
            if (m.t === 'ready') settle();
            else if (m.t === 'failed') settle(new Error(m.message));
          };
          const settle = (err?: Error): void => {
            clearTimeout(timer);
            worker.off('message', onMessage); // #watch handles everything after start-up
            if (err) reject(err);
            else resolve();
          };
          worker.on('message', onMessage);
          worker.once('error', (err) => settle(err));
          worker.once('exit', (code) => settle(new Error(`worker ${index} exited with status ${code}`)));
        }),
      );
    }
    const pool = new ServingThreads(threads, fd.ops, log);
    for (const t of threads) pool.#watch(t);
    try {
      await Promise.all(starts);
    } catch (err) {
      log.warn(
        `serving every connection on the main thread: a worker thread failed to start: ${(err as Error).message}`,
      );
      pool.destroy();
      return undefined;
    }
    log.debug({ threads: spec.count }, 'serving connections on worker threads');
    return pool;
  }

  #watch(t: Thread): void {
    const tlog = this.#log.child({ thread: t.index });
    const labels = this.#log.levels.labels;
    t.worker.on('message', (m: FromWorker) => {
      switch (m.t) {
        case 'log':
          relay(tlog, labels, m.line);
          break;
        case 'closed': {
          const done = t.conns.get(m.id);
          t.conns.delete(m.id);
          done?.();
          break;
        }
        case 'stopped':
          t.stopped?.();
          break;
        case 'shutdown':
          // The main thread's handler (the CLI's graceful stop) decides.
          requestShutdown(m.reason);
          break;
        default:
          break;
      }
    });
    const gone = (why: string): void => {
      if (!t.alive) return;
      t.alive = false;
      if (!t.stopped)
        tlog.error(
          `worker thread ended unexpectedly (${why}); its connections are lost, new ones go to the other threads`,
        );
      for (const done of t.conns.values()) done();
      t.conns.clear();
      t.stopped?.();
    };
    t.worker.on('error', (err) => gone(err.message));
    t.worker.on('exit', (code) => gone(`status ${code}`));
  }

  /** Connections served by workers right now. */
  get connectionCount(): number {
    let n = 0;
    for (const t of this.#threads) n += t.conns.size;
    return n;
  }

  /**
   * Hand `socket` (accepted, not yet read) to a worker. False when no worker
   * can take it; then the socket is untouched and the caller serves it.
   */
  dispatch(socket: net.Socket, id: number, peer: string, onClosed: () => void): boolean {
    let best: Thread | undefined;
    for (const t of this.#threads) if (t.alive && (!best || t.conns.size < best.conns.size)) best = t;
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (!best || typeof fd !== 'number' || fd < 0) return false;
    let copy: number;
    try {
      copy = this.#fd.dupFd(fd);
    } catch (err) {
      this.#log.warn(
        { err: (err as Error).message },
        'cannot hand a connection to a worker thread; serving it on the main thread',
      );
      return false;
    }
    try {
      best.worker.postMessage({ t: 'serve', id, fd: copy, peer } satisfies ToWorker);
    } catch (err) {
      this.#fd.closeFd(copy);
      this.#log.warn(
        { err: (err as Error).message },
        'cannot hand a connection to a worker thread; serving it on the main thread',
      );
      return false;
    }
    best.conns.set(id, onClosed);
    socket.destroy(); // closes only the main thread's descriptor; the worker owns the copy
    return true;
  }

  /** Graceful stop of every worker's connections (drain, flush, close), then end the threads. */
  async shutdown(): Promise<void> {
    await Promise.all(
      this.#threads.map(async (t) => {
        if (t.alive) {
          const stopped = new Promise<void>((r) => {
            t.stopped = r;
          });
          t.worker.postMessage({ t: 'stop' } satisfies ToWorker);
          await stopped;
        }
        await t.worker.terminate();
      }),
    );
  }

  destroy(): void {
    for (const t of this.#threads) {
      t.stopped ??= () => {};
      void t.worker.terminate();
    }
  }
}

/** Log a worker's pino line through the main logger, so every line leaves one process-wide destination. */
function relay(log: Logger, labels: Record<number, string>, line: string): void {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log.warn({ line }, 'unparsable log line from a worker thread');
    return;
  }
  const { level, msg, ...fields } = rec;
  const name = labels[level as number] ?? 'info';
  const fn = (log as unknown as Record<string, (o: object, m?: string) => void>)[name];
  fn?.call(log, fields, typeof msg === 'string' ? msg : undefined);
}
