/**
 * Serve a memory plugin on a Unix socket for benchmarks:
 *   node bench/serve.ts SOCKET [SIZE]
 * PLUGIN=memory uses plugins/memory (if present), else the test plugin (ZEROCOPY=1 for plugin.read).
 */
import pino from 'pino';
import type { Plugin } from '@nbdts/plugin-api';
import { createServer } from '../src/index.ts';
import { memPlugin } from '../test/mem-plugin.ts';

const path = process.argv[2] ?? '/tmp/nbdts.sock';
const size = Number(process.argv[3] ?? 1024 ** 3);
let plugin: Plugin<unknown, unknown>;
if (process.env.PLUGIN === 'memory') {
  // Resolved at run time so this engine-only script does not depend on the plugin package.
  const spec = '@nbdts/plugin-memory';
  const mod = (await import(spec)) as { createMemoryPlugin: () => Plugin<{ size: number }, unknown> };
  const p = mod.createMemoryPlugin();
  await p.getReady?.({ size }, { readonly: false });
  plugin = p as Plugin<unknown, unknown>;
} else {
  plugin = memPlugin({ size, zeroCopy: process.env.ZEROCOPY === '1' }).plugin;
}
const server = createServer({ plugin, logger: pino({ level: process.env.LOG ?? 'warn' }) });
await server.listenUnix(path);
process.stderr.write(`serving on ${path}\n`);
const stop = (): void => {
  void server.shutdown().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
