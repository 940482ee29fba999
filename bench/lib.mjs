// Helpers for bench/run.mjs: plain Node ESM (no TypeScript) so the benchmark
// runs with nothing but node and the client tools.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const nbdtsBin = join(repoRoot, 'packages/cli/bin/nbdts.js');

/** argv that starts `kind` (nbdts | nbdkit) listening on `socket`, serving `args`. */
export function serverArgv(kind, socket, args) {
  if (kind === 'nbdts') return [process.execPath, nbdtsBin, '-U', socket, ...args];
  if (kind === 'nbdkit') return ['nbdkit', '-U', socket, '-f', '--exit-with-parent', ...args];
  throw new Error(`unknown server '${kind}' (nbdts or nbdkit)`);
}

export function makeTempDir(prefix = 'nbdts-bench-') {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, join: (...p) => join(path, ...p), cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Run a command; resolves with {code, stdout, stderr, seconds}. Rejects on a non-zero exit. */
export function run(cmd, args, { env, cwd, timeoutMs = 600_000 } = {}) {
  return new Promise((res, rej) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s) => { stderr += s; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); rej(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) rej(new Error(`${cmd} ${args.join(' ')} exited ${code}\n${stderr}`));
      else res({ code, stdout, stderr, seconds });
    });
  });
}

/** Start a server on a fresh Unix socket; resolves once it accepts connections. */
export async function startServer(kind, args, { env, startTimeoutMs = 30_000 } = {}) {
  const dir = makeTempDir('nbdts-bench-srv-');
  const socket = dir.join('nbd.sock');
  const [cmd, ...rest] = serverArgv(kind, socket, args);
  const child = spawn(cmd, rest, { env: { ...process.env, ...env }, cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => { stderr += s; });
  let exited = false;
  const done = new Promise((res) => child.on('close', (code) => { exited = true; res(code); }));
  const deadline = Date.now() + startTimeoutMs;
  while (!(await accepts(socket))) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      await done;
      dir.cleanup();
      throw new Error(`${kind} ${args.join(' ')} did not start:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    kind,
    uri: `nbd+unix:///?socket=${socket}`,
    pid: child.pid,
    async stop() {
      if (!exited) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await done;
      clearTimeout(t);
      dir.cleanup();
    },
  };
}

function accepts(path) {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((res) => {
    const s = connect(path);
    s.once('data', () => { s.destroy(); res(true); }); // the NBD greeting
    s.once('error', () => res(false));
    s.setTimeout(5000, () => { s.destroy(); res(false); });
  });
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Check every external command a section needs is on PATH, naming the Debian package if not. */
export async function requireTools(tools) {
  const missing = [];
  for (const [tool, pkg] of tools) {
    try { await run('sh', ['-c', `command -v ${tool}`]); } catch { missing.push(`${tool} (Debian package ${pkg})`); }
  }
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')}; run scripts/setup.sh as root`);
}

/** fio with the NBD engine; returns the parsed first job. */
export async function fio(uri, args) {
  const r = await run('fio', ['--name=bench', '--ioengine=nbd', `--uri=${uri}`, '--output-format=json', ...args], { cwd: tmpdir() });
  return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
}
