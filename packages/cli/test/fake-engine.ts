// A stand-in for @nbdts/server so main()'s flow (listen, pidfile, --run,
// cleanup) is tested without the real engine: connections are accepted and closed.
import { createServer as netServer, type AddressInfo, type Server } from 'node:net';
import { rmSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { Engine } from '../src/index.ts';
import type { ServerOptions } from '@nbdts/server';

export interface FakeEngine extends Engine {
  created: ServerOptions[];
  /** The filters each server was created with, by name. */
  filtered: string[][];
  shutdowns: number;
}

export function fakeEngine(): FakeEngine {
  const engine: FakeEngine = {
    created: [],
    filtered: [],
    shutdowns: 0,
    createServer(opts) {
      engine.created.push(opts);
      engine.filtered.push((opts.filters ?? []).map((f) => f.name));
      const servers: Server[] = [];
      const listen = (s: Server, ...args: unknown[]) =>
        new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          (s.listen as (...a: unknown[]) => void)(...args, () => resolve());
        });
      const make = () => {
        const s = netServer((c) => c.end());
        servers.push(s);
        return s;
      };
      return {
        async listenTcp(host, port) {
          const s = make();
          await listen(s, port, host);
          return [s.address() as AddressInfo];
        },
        async listenUnix(path) {
          rmSync(path, { force: true });
          await listen(make(), path);
        },
        serveStream: (stream: Duplex) =>
          new Promise<void>((resolve) => {
            stream.on('close', resolve);
            stream.resume();
          }),
        connectionCount: 0,
        onConnectionClosed() {},
        async shutdown() {
          engine.shutdowns++;
          await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
        },
        destroy() {
          for (const s of servers) s.close();
        },
      };
    },
  };
  return engine;
}
