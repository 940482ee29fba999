import { spawn, type ChildProcess } from 'node:child_process';
import { killGroup, type RunOptions } from './run.ts';

export interface BackgroundProcess {
  pid: number;
  /** Resolves with the exit code (null if killed by a signal) when the process ends. */
  readonly exited: Promise<number | null>;
  /** True once the process has exited. */
  readonly gone: boolean;
  stdout(): string;
  stderr(): string;
  /** Signal the process (default SIGTERM), wait up to timeoutMs, then SIGKILL its group. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) killGroup(c.pid, 'SIGKILL');
});

/** Start a long-running command (nbdfuse, a client kept open...) in its own process group. */
export function spawnBackground(
  cmd: string,
  args: readonly string[],
  opts: Omit<RunOptions, 'input' | 'timeoutMs'> = {},
): BackgroundProcess {
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  let out = '';
  let err = '';
  let gone = false;
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (e) => {
      err += String(e);
    });
    child.on('close', (code) => {
      gone = true;
      live.delete(child);
      resolve(code);
    });
  });
  return {
    pid: child.pid!,
    exited,
    get gone() {
      return gone;
    },
    stdout: () => out,
    stderr: () => err,
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (!gone) child.kill(signal);
      const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Poll `check` every 50 ms until it returns true; throws after timeoutMs with `what` in the message. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
