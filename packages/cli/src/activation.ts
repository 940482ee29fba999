/**
 * systemd socket activation (LISTEN_PID/LISTEN_FDS), as nbdkit supports it.
 * This is how `nbdinfo -- [ nbdts PLUGIN ... ]` and other libnbd `[ CMD ]`
 * forms start a server: they pass a listening socket as fd 3 rather than
 * talking over stdin/stdout.
 */
import { createServer, type Server, type Socket } from 'node:net';

/** First inherited descriptor, per sd_listen_fds(3). */
export const LISTEN_FDS_START = 3;

/** The activated descriptors, or undefined when this process was not socket-activated. */
export function activationFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number[] | undefined {
  if (!env.LISTEN_PID || !env.LISTEN_FDS) return undefined;
  if (Number(env.LISTEN_PID) !== pid) return undefined;
  const n = Number(env.LISTEN_FDS);
  if (!Number.isInteger(n) || n < 1) return undefined;
  return Array.from({ length: n }, (_, i) => LISTEN_FDS_START + i);
}

/** Accept connections on already-listening descriptors; `onConnection` serves each. */
export async function listenOnFds(fds: readonly number[], onConnection: (sock: Socket) => void): Promise<Server[]> {
  return Promise.all(
    fds.map(
      (fd) =>
        new Promise<Server>((resolve, reject) => {
          // Half-open and no-delay as the engine's own listeners are.
          const srv = createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
          srv.once('error', reject);
          srv.listen({ fd }, () => {
            srv.off('error', reject);
            resolve(srv);
          });
        }),
    ),
  );
}
