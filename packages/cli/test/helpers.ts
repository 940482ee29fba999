import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../bin/nbdts.js', import.meta.url));
export const FIXTURE = fileURLToPath(new URL('./fixtures/plugin.ts', import.meta.url));
export const JS_FIXTURE = fileURLToPath(new URL('./fixtures/jsplugin.js', import.meta.url));

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Wait for a child to exit, collecting its output. */
export function collect(child: ChildProcess): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Start `node bin/nbdts.js ARGS` from the repository root. */
export function startNbdts(args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

export async function runNbdts(args: string[], opts: SpawnOptions & { input?: string } = {}): Promise<Result> {
  const { input, ...rest } = opts;
  const child = startNbdts(args, { ...rest, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (input !== undefined) child.stdin!.end(input);
  return collect(child);
}

/** Run any command to completion. */
export function runCommand(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<Result> {
  return collect(spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts }));
}

/** Poll until fn returns a truthy value. */
export async function waitFor<T>(fn: () => T | undefined | false, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
