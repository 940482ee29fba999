/**
 * A worker thread's side of threads.ts: load and attach this thread's copies
 * of the plugin and filters, then serve the sockets the main thread hands over.
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { setShutdownHandler } from '@nbdts/plugin-api/engine';
import type { Stack } from './api.ts';
import { ConnectionSet } from './connections.ts';
import { loadFdOps } from './native.ts';
import { routePluginLogs } from './plugin-logs.ts';
import type { FromWorker, ToWorker, WorkerInit } from './threads.ts';

const port = parentPort;
if (!port) throw new Error('thread-main.ts runs only in a worker thread');
const init = workerData as WorkerInit;
const post = (m: FromWorker): void => port.postMessage(m);

// Lines go to the main thread, which logs them through its own destination.
const log = pino(
  { level: init.logLevel, base: null, timestamp: false },
  { write: (line: string) => post({ t: 'log', line }) },
);
routePluginLogs(log);
// requestShutdown in this thread asks the main thread, which owns the process.
setShutdownHandler((reason) => post({ t: 'shutdown', reason }));

let conns: ConnectionSet;
try {
  const mod = (await import(init.loader)) as { loadThreadStack(data: unknown): Promise<Stack> };
  conns = new ConnectionSet(await mod.loadThreadStack(init.data), init.settings, log);
} catch (err) {
  post({ t: 'failed', message: (err as Error).message ?? String(err) });
  process.exit(1);
}

port.on('message', (m: ToWorker) => {
  if (m.t === 'stop') {
    void conns.shutdown().then(() => post({ t: 'stopped' }));
    return;
  }
  let socket: net.Socket;
  try {
    // Paused, so the engine can install its own read buffer before the first read.
    socket = new net.Socket({
      fd: m.fd,
      readable: true,
      writable: true,
      allowHalfOpen: true,
      pauseOnCreate: true,
    } as net.SocketConstructorOpts);
  } catch (err) {
    log.warn({ conn: m.id, err: (err as Error).message }, 'cannot take over a connection from the main thread');
    try {
      loadFdOps().ops?.closeFd(m.fd);
    } catch {
      /* already closed */
    }
    post({ t: 'closed', id: m.id });
    return;
  }
  if (conns.stopping) {
    socket.destroy();
    post({ t: 'closed', id: m.id });
    return;
  }
  // TCP_NODELAY was set before the hand-off: it belongs to the socket, which both descriptors name.
  conns.serve(socket, m.peer, m.id, () => post({ t: 'closed', id: m.id }));
});
post({ t: 'ready' });
