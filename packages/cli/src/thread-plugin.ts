/**
 * Run in each engine worker thread (see ThreadSpec in @nbdts/server): load
 * this thread's copies of the plugin and filters the CLI loaded, and attach
 * them to what the main thread's copies shared.
 */
import os from 'node:os';
import type { Filter, Plugin } from '@nbdts/plugin-api';
import type { Stack, ThreadSpec } from '@nbdts/server';
import type { Logger } from 'pino';
import { isFilter, isPlugin, pickExport, type Loaded } from './plugin-loader.ts';

/** One module a worker loads again: where the CLI imported it from, and what its threads.share() returned. */
export interface ThreadModule {
  specifier: string;
  shared: unknown;
}

export interface ThreadStackData {
  plugin: ThreadModule;
  /** Outermost first, as on the command line. */
  filters: ThreadModule[];
}

async function attached(m: ThreadModule, named: string): Promise<unknown> {
  const value = pickExport((await import(m.specifier)) as Record<string, unknown>, named);
  const threads = (value as { threads?: { attach(shared: unknown): unknown } } | undefined)?.threads;
  if (!threads) throw new Error(`${m.specifier}: no ${named} with threads support in this thread`);
  await threads.attach(m.shared);
  return value;
}

/** Run in each worker (ThreadSpec.loader): this thread's copies of the plugin and filters, attached. */
export async function loadThreadStack(data: ThreadStackData): Promise<Stack> {
  const plugin = await attached(data.plugin, 'plugin');
  if (!isPlugin(plugin)) throw new Error(`${data.plugin.specifier}: not a plugin in this thread`);
  const filters: Filter<unknown, unknown>[] = [];
  for (const f of data.filters) {
    const filter = await attached(f, 'filter');
    if (!isFilter(filter)) throw new Error(`${f.specifier}: not a filter in this thread`);
    filters.push(filter);
  }
  return { plugin, filters };
}

/** Default --workers: one per CPU up to 4 (nbdcopy and qemu open at most 4 connections; each worker costs memory); none on one CPU, where a thread gains nothing. */
export function defaultWorkers(): number {
  const cpus = os.availableParallelism();
  return cpus < 2 ? 0 : Math.min(cpus, 4);
}

/**
 * Worker threads for this run, or undefined to serve on the main thread: the
 * plugin and every filter must support them and share their data.
 */
export function threadSpec(
  plugin: { value: Plugin<unknown, unknown>; specifier: string },
  filters: ReadonlyArray<Loaded<Filter<unknown, unknown>>>,
  opts: { workers?: number },
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
  const p = plugin.value;
  if (!p.threads) return why(`plugin ${p.name} does not support worker threads`);
  const without = filters.find((f) => !f.value.threads);
  if (without) return why(`filter ${without.value.name} does not support worker threads`);
  const shared = p.threads.share();
  if (shared === undefined) return why(`plugin ${p.name} cannot share its data between threads in this configuration`);
  const data: ThreadStackData = { plugin: { specifier: plugin.specifier, shared }, filters: [] };
  for (const f of filters) {
    const fs = f.value.threads!.share();
    if (fs === undefined)
      return why(`filter ${f.value.name} cannot share its state between threads in this configuration`);
    data.filters.push({ specifier: f.specifier, shared: fs });
  }
  return { count, loader: new URL('./thread-plugin.ts', import.meta.url).href, data };
}
