// Helpers for bench/run.mjs: plain Node ESM (no TypeScript) so the benchmark
// runs with nothing but node and the client tools.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const nbdtsBin = join(repoRoot, 'packages/cli/bin/nbdts.js');

/** argv that starts `kind` (nbdts | nbdkit) listening on `socket`, serving `args`. */
export function serverArgv(kind, socket, args) {
  // NBDTS_BENCH_NODE_ARGS: Node options for the nbdts server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.NBDTS_BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  if (kind === 'nbdts') return [process.execPath, ...nodeArgs, nbdtsBin, '-U', socket, ...args];
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
    child.stdout.setEncoding('utf8').on('data', (s) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s) => {
      stderr += s;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
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
  const child = spawn(cmd, rest, {
    env: { ...process.env, ...env },
    cwd: repoRoot,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => {
    stderr += s;
  });
  let exited = false;
  const done = new Promise((res) =>
    child.on('close', (code) => {
      exited = true;
      res(code);
    }),
  );
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
    s.once('data', () => {
      s.destroy();
      res(true);
    }); // the NBD greeting
    s.once('error', () => res(false));
    s.setTimeout(5000, () => {
      s.destroy();
      res(false);
    });
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
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      missing.push(`${tool} (Debian package ${pkg})`);
    }
  }
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')}; run scripts/setup.sh as root`);
}

/** fio with the NBD engine; returns the parsed first job. */
export async function fio(uri, args) {
  const r = await run('fio', ['--name=bench', '--ioengine=nbd', `--uri=${uri}`, '--output-format=json', ...args], {
    cwd: tmpdir(),
  });
  return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
}

/** CPU seconds (user + system) a process has used so far, from /proc; 0 if it is gone. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after "pid (comm) ", field 3 is f[0]
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (CLK_TCK 100 on Linux)
  } catch {
    return 0;
  }
}

/**
 * Time fn() and the CPU that each watched process used meanwhile, as cores
 * (CPU seconds / wall seconds): shows who saturates what on a 2-core box.
 * A pid of 'self' is this process.
 */
export async function measured(pids, fn) {
  const before = Object.fromEntries(
    Object.entries(pids).map(([k, p]) => [k, p === 'self' ? process.cpuUsage() : cpuSeconds(p)]),
  );
  const t0 = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cores = {};
  for (const [k, p] of Object.entries(pids)) {
    const used =
      p === 'self'
        ? (() => {
            const u = process.cpuUsage(before[k]);
            return (u.user + u.system) / 1e6;
          })()
        : cpuSeconds(p) - before[k];
    cores[k] = used / seconds;
  }
  return { seconds, cores };
}

/** Parse 64M, 1G, 4096 (binary units), naming `what` in the error. */
export function parseSize(s, what = 'size') {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`${what}: cannot parse '${s}'`);
  return Number(m[1]) * { '': 1, K: 1024, M: 1 << 20, G: 1 << 30 }[m[2].toUpperCase()];
}

/** A figure for a table: thousands separated from 100 up, two decimals below (ratios). */
export function fmt(v) {
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2);
}

/** Run fn(0..count-1) with at most n at once. */
export async function pool(n, count, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}
