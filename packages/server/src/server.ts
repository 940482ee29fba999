/** createServer: listeners, connection bookkeeping, graceful shutdown. */
import net from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { CreateServer, ServerHandle, ServerOptions } from './api.ts';
import { ConnectionSet, type EngineSettings } from './connections.ts';
import { routePluginLogs } from './plugin-logs.ts';
import { ServingThreads } from './threads.ts';

const MiB = 1024 * 1024;

/** Remove a socket file left by a dead server; refuse a live socket or a file that is not a socket. */
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; not removing it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live)
    throw Object.assign(new Error(`${path}: another server is listening on this socket`), { code: 'EADDRINUSE' });
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

export const createServer: CreateServer = (opts: ServerOptions): ServerHandle => {
  const log = opts.logger;
  routePluginLogs(log);
  const settings: EngineSettings = {
    readonly: opts.readonly ?? false,
    maxPayload: opts.maxPayload ?? 32 * MiB,
    maxInFlightBytes: opts.maxInFlightBytes ?? 64 * MiB,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 60_000,
  };
  const local = new ConnectionSet({ plugin: opts.plugin, filters: opts.filters ?? [] }, settings, log);

  // Worker threads start with the first listener; until then (and when they
  // cannot start) connections are served here.
  let threads: ServingThreads | undefined;
  let threadsStarting: Promise<void> | undefined;
  const startThreads = (): Promise<void> => {
    if (!opts.threads || opts.threads.count < 1) return Promise.resolve();
    threadsStarting ??= ServingThreads.start(opts.threads, settings, log).then((t) => {
      if (stopping) t?.destroy();
      else threads = t;
    });
    return threadsStarting;
  };

  const listeners: net.Server[] = [];
  const unixPaths: string[] = [];
  const closedCallbacks: Array<() => void> = [];
  let stopping = false;
  let nextId = 1;

  const connectionClosed = (): void => {
    for (const cb of closedCallbacks) {
      try {
        cb();
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'onConnectionClosed callback failed');
      }
    }
  };

  function onSocket(socket: net.Socket): void {
    if (stopping) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const id = nextId++;
    const peer = socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unix';
    if (threads?.dispatch(socket, id, peer, connectionClosed)) {
      log.debug({ conn: id, peer }, 'connection handed to a worker thread');
      return;
    }
    local.serve(socket, peer, id, connectionClosed);
  }

  function newListener(): net.Server {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, onSocket);
    server.on('error', (err) => log.error({ err: err.message }, 'listener error'));
    return server;
  }

  function listen(server: net.Server, options: net.ListenOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(options, () => {
        server.off('error', onError);
        resolve();
      });
    });
  }

  return {
    async listenTcp(host: string | undefined, port: number): Promise<AddressInfo[]> {
      await startThreads();
      if (host !== undefined) {
        const s = newListener();
        await listen(s, { host, port });
        listeners.push(s);
        return [s.address() as AddressInfo];
      }
      // One dual-stack socket serves IPv4 and IPv6; fall back to IPv4 alone where IPv6 is off.
      const s = newListener();
      try {
        await listen(s, { host: '::', port, ipv6Only: false });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
        await listen(s, { host: '0.0.0.0', port });
      }
      listeners.push(s);
      return [s.address() as AddressInfo];
    },

    async listenUnix(path: string): Promise<void> {
      await startThreads();
      await removeStaleSocket(path);
      const s = newListener();
      await listen(s, { path });
      listeners.push(s);
      unixPaths.push(path);
    },

    serveStream(stream: Duplex): Promise<void> {
      return local.serve(stream, 'stream', nextId++, connectionClosed).closed;
    },

    get connectionCount(): number {
      return local.size + (threads?.connectionCount ?? 0);
    },

    onConnectionClosed(cb: () => void): void {
      closedCallbacks.push(cb);
    },

    async shutdown(): Promise<void> {
      stopping = true;
      const closing = listeners.map((s) => new Promise<void>((r) => s.close(() => r())));
      listeners.length = 0;
      await threadsStarting;
      await Promise.all([local.shutdown(), threads?.shutdown()]);
      await Promise.all(closing);
      await Promise.all(unixPaths.map((p) => unlink(p).catch(() => {})));
      unixPaths.length = 0;
    },

    destroy(): void {
      stopping = true;
      for (const s of listeners) s.close();
      listeners.length = 0;
      local.destroy();
      threads?.destroy();
      for (const p of unixPaths) void unlink(p).catch(() => {});
      unixPaths.length = 0;
    },
  };
};
