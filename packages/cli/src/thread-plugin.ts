/**
 * Run in each engine worker thread (see ThreadSpec in @nbdts/server): load
 * this thread's copy of the plugin the CLI loaded, and attach it to what the
 * main thread's copy shared.
 */
import os from 'node:os';
import type { Plugin } from '@nbdts/plugin-api';
import type { ThreadSpec } from '@nbdts/server';
import type { Logger } from 'pino';
import { isPlugin, pickExport } from './plugin-loader.ts';

export interface ThreadPluginData {
  /** The module specifier the CLI imported the plugin from. */
  specifier: string;
  /** What the plugin's threads.share() returned. */
  shared: unknown;
}

export async function loadThreadPlugin(data: ThreadPluginData): Promise<Plugin<unknown, unknown>> {
  const plugin = pickExport((await import(data.specifier)) as Record<string, unknown>, 'plugin');
  if (!isPlugin(plugin) || !plugin.threads)
    throw new Error(`${data.specifier}: no plugin with threads support in this thread`);
  await plugin.threads.attach(data.shared);
  return plugin;
}

/** Default --workers: one per CPU up to 4 (nbdcopy and qemu open at most 4 connections; each worker costs memory); none on one CPU, where a thread gains nothing. */
export function defaultWorkers(): number {
  const cpus = os.availableParallelism();
  return cpus < 2 ? 0 : Math.min(cpus, 4);
}

/**
 * Worker threads for this run, or undefined to serve on the main thread:
 * the plugin must support them and share its data, and filters (which hold
 * their own state) keep everything on the main thread.
 */
export function threadSpec(
  plugin: Plugin<unknown, unknown>,
  specifier: string,
  opts: { workers?: number; filters: readonly string[] },
  log: Logger,
): ThreadSpec | undefined {
  const count = opts.workers ?? defaultWorkers();
  if (count === 0) return undefined;
  // Asked for explicitly: say why it is not happening.
  const why = (reason: string): undefined => {
    if (opts.workers !== undefined) log.info(`--workers: serving on the main thread: ${reason}`);
    else log.debug(`serving on the main thread: ${reason}`);
    return undefined;
  };
  if (!plugin.threads) return why(`plugin ${plugin.name} does not support worker threads`);
  if (opts.filters.length > 0) return why('filters run on the main thread only');
  const shared = plugin.threads.share();
  if (shared === undefined)
    return why(`plugin ${plugin.name} cannot share its data between threads in this configuration`);
  const data: ThreadPluginData = { specifier, shared };
  return { count, loader: new URL('./thread-plugin.ts', import.meta.url).href, data };
}
