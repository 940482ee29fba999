/** Start the engine in-process on a Unix socket in a temp dir, and run real clients against it. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Plugin } from '@nbdts/plugin-api';
import { run as runCommand, systemFirstPath, type RunResult } from '@nbdts/testkit';
import { createServer, type ServerHandle, type ServerOptions } from '../src/index.ts';
import { memPlugin, type MemOptions, type SparseMemory } from './mem-plugin.ts';

export interface Running {
  server: ServerHandle;
  path: string;
  uri: string;
  mem: SparseMemory | undefined;
  stop(): Promise<void>;
}

export async function start(
  plugin: MemOptions | Plugin<unknown, unknown>,
  opts: Partial<Omit<ServerOptions, 'plugin'>> = {},
): Promise<Running> {
  const dir = await mkdtemp(join(tmpdir(), 'nbdts-test-'));
  const path = join(dir, 'nbd.sock');
  let mem: SparseMemory | undefined;
  let p: Plugin<unknown, unknown>;
  if ('open' in plugin) p = plugin;
  else ({ plugin: p, mem } = memPlugin(plugin));
  const server = createServer({ plugin: p, logger: pino({ level: process.env.NBDTS_TEST_LOG ?? 'silent' }), ...opts });
  await server.listenUnix(path);
  return {
    server,
    path,
    mem,
    uri: `nbd+unix:///?socket=${path}`,
    async stop() {
      server.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type { RunResult };

/** Run a command with Debian's tools first on PATH (nbdsh needs the system python3); never rejects on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return runCommand(cmd, args, { ...opts, timeoutMs: opts.timeoutMs ?? 30_000, env: { PATH: systemFirstPath() } });
}

/** Run a Python snippet in nbdsh connected to `uri` (h is the handle; strict mode off for negative tests). */
export function nbdsh(uri: string, script: string, o: { meta?: boolean } = {}): Promise<RunResult> {
  const meta = o.meta === false ? '' : 'h.add_meta_context("base:allocation")\n';
  const prelude = `import errno\nh.set_strict_mode(0)\n${meta}h.connect_uri(${JSON.stringify(uri)})\n`;
  return run('nbdsh', ['-c', prelude + script]);
}
