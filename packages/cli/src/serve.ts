/**
 * Serving modes once the engine exists: listening on TCP or a Unix socket
 * (with --run for captive mode), -s on stdin/stdout, and socket activation.
 * Each ends with a graceful engine shutdown; the caller unloads the plugin.
 */
import { existsSync, fstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Socket, type Server } from 'node:net';
import { dirname, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { setShutdownHandler } from '@nbdts/plugin-api/engine';
import type { ServerHandle } from '@nbdts/server';
import type { Logger } from 'pino';
import { listenOnFds } from './activation.ts';
import type { CliOptions } from './args.ts';
import { captiveEnv, nbdUri, privateSocket, runCaptive, type Endpoint } from './captive.ts';
import { watchParent, watchSignals } from './signals.ts';

export const DEFAULT_PORT = 10809;

/** A start-up failure reported as one line (address in use, bad socket path...). */
export class StartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartError';
  }
}

/** Where the URI goes (stdout unless a test says otherwise). */
export type Print = (text: string) => void;

/**
 * stdin as a socket when stdin and stdout are one socket (inetd, a socketpair),
 * else stdin and stdout glued together. Node's own 'pipe' stdio is a pair of
 * distinct sockets, hence the inode check.
 */
function stdioStream(): Duplex {
  try {
    const ins = fstatSync(0);
    const outs = fstatSync(1);
    if (ins.isSocket() && ins.ino === outs.ino && ins.dev === outs.dev) {
      return new Socket({ fd: 0, readable: true, writable: true, allowHalfOpen: true });
    }
  } catch {
    /* fall through */
  }
  return Duplex.from({ readable: process.stdin, writable: process.stdout });
}

/** Stop gracefully; a second signal (or a hung shutdown after one) exits at once. */
function onForcedStop(server: ServerHandle, cleanup: () => void, logger: Logger) {
  return (signal: NodeJS.Signals): void => {
    logger.warn(`second ${signal}: exiting now`);
    server.destroy();
    cleanup();
    process.exit(1);
  };
}

/** -s: one connection on stdin/stdout, then exit. */
export async function serveSingle(server: ServerHandle, opts: CliOptions, logger: Logger): Promise<number> {
  return serveUntilStopped(
    server,
    opts,
    logger,
    () => {},
    async (stopped) => {
      writePidfile(opts.pidfile);
      logger.debug('serving one connection on stdin/stdout');
      const reason = await Promise.race([server.serveStream(stdioStream()).then(() => undefined), stopped]);
      if (reason) logger.info(`${reason}: shutting down`);
    },
  );
}

/**
 * Socket activation: serve every connection on the inherited sockets until a
 * signal, or (with -s) exactly one connection. nbdkit refuses -s here; we
 * accept it so `nbdinfo -- [ nbdts -s PLUGIN ]` works as well.
 */
export async function serveActivated(
  server: ServerHandle,
  fds: number[],
  opts: CliOptions,
  logger: Logger,
): Promise<number> {
  let listeners: Server[] = [];
  const closeListeners = (): void => {
    for (const l of listeners) l.close();
  };
  return serveUntilStopped(server, opts, logger, closeListeners, async (stopped) => {
    let first: ((done: Promise<void>) => void) | undefined;
    const firstDone = new Promise<Promise<void>>((r) => {
      first = r;
    });
    listeners = await listenOnFds(fds, (sock) => {
      if (opts.single) {
        if (!first) {
          sock.destroy();
          return;
        }
        closeListeners();
      }
      const done = server.serveStream(sock);
      first?.(done);
      first = undefined;
    });
    writePidfile(opts.pidfile);
    logger.info(`serving on socket-activated descriptor${fds.length > 1 ? 's' : ''} ${fds.join(', ')}`);
    const ended = opts.single ? firstDone.then((done) => done).then(() => undefined) : new Promise<undefined>(() => {});
    const reason = await Promise.race([ended, stopped]);
    if (reason) logger.info(`${reason}: shutting down`);
    closeListeners();
  });
}

/** Signals, --exit-with-parent and a graceful shutdown around a serving loop. */
async function serveUntilStopped(
  server: ServerHandle,
  opts: CliOptions,
  logger: Logger,
  cleanup: () => void,
  serve: (stopped: Promise<string>) => Promise<number | void>,
): Promise<number> {
  // Clean up (a private socket directory, say) even if something calls process.exit.
  process.once('exit', cleanup);
  const stop = watchSignals(onForcedStop(server, cleanup, logger));
  // A plugin or filter may ask to stop (requestShutdown: exitlast, exitwhen...), as a signal would.
  setShutdownHandler((reason) => stop.stop(reason));
  const unwatch = opts.exitWithParent ? watchParent(() => stop.stop('parent exited')) : () => {};
  try {
    const status = await serve(stop.stopped);
    await server.shutdown();
    return status ?? 0;
  } catch (err) {
    server.destroy();
    throw err;
  } finally {
    setShutdownHandler(undefined);
    unwatch();
    stop.dispose();
    cleanup();
    process.off('exit', cleanup);
  }
}

function chooseEndpoint(opts: CliOptions): { ep: Endpoint; isPrivate: boolean; cleanup: () => void } {
  const usePrivate =
    opts.unix === '-' ||
    (opts.run !== undefined && opts.unix === undefined && opts.port === undefined && opts.ipaddr === undefined);
  if (usePrivate) {
    const sock = privateSocket();
    return { ep: { kind: 'unix', path: sock.path }, isPrivate: true, cleanup: sock.cleanup };
  }
  if (opts.unix !== undefined) {
    // Like nbdkit, remove our socket at exit (only called once we listened on it).
    const path = resolve(opts.unix);
    return { ep: { kind: 'unix', path }, isPrivate: false, cleanup: () => rmSync(path, { force: true }) };
  }
  return {
    ep: { kind: 'tcp', ...(opts.ipaddr !== undefined ? { host: opts.ipaddr } : {}), port: opts.port ?? DEFAULT_PORT },
    isPrivate: false,
    cleanup: () => {},
  };
}

function listenError(ep: Endpoint, err: unknown): StartError {
  const e = err as NodeJS.ErrnoException;
  const where = ep.kind === 'unix' ? `Unix socket ${ep.path}` : `${ep.host ?? 'all addresses'} port ${ep.port}`;
  const why: Record<string, string> = {
    EADDRINUSE: 'address already in use',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EADDRNOTAVAIL: 'address not available on this host',
    ENOENT: 'directory does not exist',
    ENOTDIR: 'a path component is not a directory',
    ENOTFOUND: 'unknown host name',
    EAI_NONAME: 'unknown host name',
    EROFS: 'read-only file system',
  };
  // Node reports a missing directory as EACCES: say what is really wrong.
  const reason =
    ep.kind === 'unix' && !existsSync(dirname(ep.path))
      ? `directory ${dirname(ep.path)} does not exist`
      : (why[e?.code ?? ''] ?? e?.message ?? String(err));
  return new StartError(`cannot listen on ${where}: ${reason}`, { cause: err });
}

function writePidfile(path: string | undefined): void {
  if (path === undefined) return;
  // Write then rename, so a watcher never reads a half-written file.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${process.pid}\n`);
    renameSync(tmp, path);
  } catch (err) {
    throw new StartError(`cannot write pidfile ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** -p/-i/-U/--run: listen, write the pidfile, print the URI, then wait for a signal or the --run command. */
export async function serveListening(
  server: ServerHandle,
  opts: CliOptions,
  print: Print,
  logger: Logger,
): Promise<number> {
  const chosen = chooseEndpoint(opts);
  const ep = chosen.ep;
  let listening = false;
  const cleanup = (): void => {
    if (listening || chosen.isPrivate) chosen.cleanup();
  };
  return serveUntilStopped(server, opts, logger, cleanup, async (stopped) => {
    let bound: Endpoint = ep;
    try {
      if (ep.kind === 'unix') await server.listenUnix(ep.path);
      else {
        const addrs = await server.listenTcp(ep.host, ep.port);
        bound = { ...ep, port: addrs[0]?.port ?? ep.port };
      }
      listening = true;
    } catch (err) {
      throw listenError(ep, err);
    }
    writePidfile(opts.pidfile);
    const uri = nbdUri(bound, opts.exportname);
    logger.info({ uri }, 'serving');
    if (opts.printUri || opts.run === undefined) print(`${uri}\n`);

    if (opts.run === undefined) {
      logger.info(`${await stopped}: shutting down`);
      return 0;
    }
    const cmd = runCaptive(opts.run, captiveEnv(bound, opts.exportname));
    const outcome = await Promise.race([cmd.exited.then((code) => ({ code })), stopped.then((reason) => ({ reason }))]);
    if ('code' in outcome) {
      logger.debug(`--run command exited with status ${outcome.code}`);
      return outcome.code;
    }
    logger.info(`${outcome.reason}: stopping the --run command and shutting down`);
    cmd.child.kill('SIGTERM');
    await cmd.exited;
    return 0;
  });
}
