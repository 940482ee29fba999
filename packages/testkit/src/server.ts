import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { nbdtsBin, repoRoot, unixUri } from './paths.ts';
import { killGroup, run, type RunOptions, type RunResult } from './run.ts';
import { tempDir, type TempDir } from './tmp.ts';
import { requireTool } from './tools.ts';

/** Which server the e2e suite talks to: nbdts, or nbdkit as a reference peer (NBDTS_E2E_SERVER=nbdkit). */
export type ServerKind = 'nbdts' | 'nbdkit';

export function serverKind(): ServerKind {
  const v = (process.env.NBDTS_E2E_SERVER ?? 'nbdts').toLowerCase();
  if (v !== 'nbdts' && v !== 'nbdkit') throw new Error(`NBDTS_E2E_SERVER must be nbdts or nbdkit, got '${v}'`);
  return v;
}

export interface StartOptions {
  /** Directory for the socket (and pidfile); default a fresh temp dir removed on stop. */
  dir?: string;
  /** Wait for a pidfile (-P) instead of probing the socket. */
  pidfile?: boolean;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** How long the server may take to start listening. Default 30 s (start-up is slow on a busy box). */
  startTimeoutMs?: number;
}

export interface ServerProcess {
  kind: ServerKind;
  uri: string;
  socket: string;
  pid: number;
  /** The pidfile path when started with pidfile: true. */
  pidfile?: string;
  /** Send `signal` (default SIGTERM) and wait for exit; resolves with the exit code (null if killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** SIGKILL the server's process group and wait for it to go. */
  kill9(): Promise<void>;
  /** Everything the server wrote to stderr so far. */
  stderr(): string;
  stdout(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) killGroup(c.pid, 'SIGKILL');
});

/** argv (command first) that runs the chosen server with `args`; for nbdinfo's `[ CMD ]` form and --run. */
export function serverCommand(args: readonly string[], kind: ServerKind = serverKind()): string[] {
  return kind === 'nbdkit' ? [requireTool('nbdkit'), ...args] : [process.execPath, nbdtsBin, ...args];
}

/** Start the server chosen by NBDTS_E2E_SERVER (default nbdts). `args` are options then plugin and params. */
export function startServer(args: readonly string[], opts: StartOptions = {}): Promise<ServerProcess> {
  return serverKind() === 'nbdkit' ? startNbdkit(args, opts) : startNbdts(args, opts);
}

/** `node packages/cli/bin/nbdts.js -U <sock> ...args`, resolved once it accepts connections. */
export function startNbdts(args: readonly string[], opts: StartOptions = {}): Promise<ServerProcess> {
  return launch(
    'nbdts',
    (sock, pid) => [process.execPath, nbdtsBin, '-U', sock, '--exit-with-parent', ...pidArgs(pid), ...args],
    opts,
  );
}

/** `nbdkit -U <sock> -f ...args`: the reference implementation. */
export function startNbdkit(args: readonly string[], opts: StartOptions = {}): Promise<ServerProcess> {
  const nbdkit = requireTool('nbdkit');
  return launch(
    'nbdkit',
    (sock, pid) => [nbdkit, '-U', sock, '-f', '--exit-with-parent', ...pidArgs(pid), ...args],
    opts,
  );
}

function pidArgs(pidfile: string | undefined): string[] {
  return pidfile ? ['-P', pidfile] : [];
}

async function launch(
  kind: ServerKind,
  argv: (sock: string, pidfile?: string) => string[],
  opts: StartOptions,
): Promise<ServerProcess> {
  const own: TempDir | undefined = opts.dir ? undefined : tempDir('nbdts-srv-');
  const dir = opts.dir ?? own!.path;
  const socket = `${dir}/nbd.sock`;
  const pidfile = opts.pidfile ? `${dir}/server.pid` : undefined;
  const [cmd, ...rest] = argv(socket, pidfile);
  const child = spawn(cmd!, rest, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: kill9 takes any helper processes with it
  });
  running.add(child);
  let err = '';
  let out = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      running.delete(child);
      own?.cleanup();
      resolve({ code, signal });
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const describe = () => `${kind} ${rest.join(' ')}`;

  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  for (;;) {
    if (gone) {
      const e = await exited;
      throw new Error(
        `${describe()} exited (code ${e.code}, signal ${e.signal}) before serving\n--- stderr ---\n${err}`,
      );
    }
    if (pidfile ? existsSync(pidfile) && readFileSync(pidfile, 'utf8').trim() !== '' : await accepts(socket)) break;
    if (Date.now() > deadline) {
      killGroup(child.pid, 'SIGKILL');
      await exited;
      throw new Error(
        `${describe()} did not start listening within ${opts.startTimeoutMs ?? 30_000} ms\n--- stderr ---\n${err}`,
      );
    }
    await sleep(50);
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> => {
    if (!gone) child.kill(signal);
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), timeoutMs);
    const e = await exited;
    clearTimeout(timer);
    killGroup(child.pid, 'SIGKILL'); // any stray helper left in the group
    return e.code;
  };
  return {
    kind,
    socket,
    pidfile,
    uri: unixUri(socket),
    pid: child.pid!,
    exited,
    stop,
    kill9: async () => {
      killGroup(child.pid, 'SIGKILL');
      await exited;
    },
    stderr: () => err,
    stdout: () => out,
  };
}

/**
 * True when an NBD server answers on the Unix socket. The probe does a real
 * newstyle handshake and leaves with NBD_OPT_ABORT, so the server sees a
 * polite client rather than a dropped connection (no error in its log).
 */
function accepts(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = connect(path);
    let got = Buffer.alloc(0);
    let sent = false;
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(5000, () => done(false));
    s.once('error', () => done(sent)); // a reset after our abort still means it served
    s.once('close', () => resolve(sent));
    s.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (!sent && got.length >= 18) {
        if (got.subarray(0, 16).toString('latin1') !== 'NBDMAGICIHAVEOPT') return done(false);
        sent = true;
        const abort = Buffer.alloc(20);
        abort.writeUInt32BE(3, 0); // client flags: FIXED_NEWSTYLE | NO_ZEROES
        abort.write('IHAVEOPT', 4, 'latin1');
        abort.writeUInt32BE(2, 12); // NBD_OPT_ABORT, no data
        abort.writeUInt32BE(0, 16);
        s.write(abort);
      } else if (sent && got.length >= 18 + 20) {
        done(true); // the ACK reply to abort
      }
    });
  });
}

/**
 * Captive mode: `<server> --run CMD ...args`; the server picks its own socket,
 * runs CMD with $uri (and friends) set, and exits with CMD's status.
 */
export function runCaptive(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...rest] = serverCommand(['--run', command, ...args]);
  return run(cmd!, rest, { cwd: repoRoot, timeoutMs: 120_000, ...opts });
}
