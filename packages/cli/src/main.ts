/**
 * The nbdts command: load the plugin and filters, parse parameters, run the
 * plugin's start-up callbacks, start the engine, serve until told to stop.
 * main() returns the exit status; bin/nbdts.js exits with it.
 */
import { ConfigError } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import type { Filter, ServerInfo } from '@nbdts/plugin-api';
import type { CreateServer } from '@nbdts/server';
import { activationFds } from './activation.ts';
import { parseArgs, UsageError, type CliOptions } from './args.ts';
import {
  renderDumpConfig,
  renderDumpPlugin,
  renderFiltersHelp,
  renderGeneralHelp,
  renderPluginHelp,
  renderVersion,
} from './help.ts';
import { createLogger, pluginLogger, redactConfig } from './logging.ts';
import { parsePluginParams } from './params.ts';
import { loadFilter, loadPlugin, type Loaded } from './plugin-loader.ts';
import { threadSpec } from './thread-plugin.ts';
import { describeSchema } from './schema.ts';
import { serveActivated, serveListening, serveSingle, StartError } from './serve.ts';

/** Where main() prints; tests pass their own. */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: Io = {
  stdout: (t) => {
    process.stdout.write(t);
  },
  stderr: (t) => {
    process.stderr.write(t);
  },
};

/** The engine entry point; tests may pass a stand-in instead of '@nbdts/server'. */
export interface Engine {
  createServer: CreateServer;
}

/** Run the command line (without `node` and the script). Resolves with the exit status. */
export async function main(argv: readonly string[], io: Io = processIo, engine?: Engine): Promise<number> {
  let opts: CliOptions;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`nbdts: ${err.message} (see nbdts --help)\n`);
      return 1;
    }
    throw err;
  }
  try {
    return await run(opts, io, engine);
  } catch (err) {
    io.stderr(formatError(err, opts.verbose));
    return 1;
  }
}

/** By name, not instanceof: a plugin may bring its own copy of @nbdts/plugin-api. */
function isConfigError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConfigError';
}

/** One line for expected failures; the stack too for bugs, but only with -v. */
export function formatError(err: unknown, verbose: boolean): string {
  const e = err instanceof Error ? err : new Error(String(err));
  const expected = isConfigError(e) || e instanceof StartError || e instanceof UsageError;
  const first = (e.message || e.name).split('\n')[0];
  let out = `nbdts: ${first}\n`;
  if (verbose && !expected && e.stack) out += `${e.stack}\n`;
  else if (verbose && e.cause instanceof Error && e.cause.stack) out += `${e.cause.stack}\n`;
  return out;
}

async function run(opts: CliOptions, io: Io, injected: Engine | undefined): Promise<number> {
  if (opts.dumpConfig) {
    io.stdout(renderDumpConfig());
    return 0;
  }
  // Filters load before anything else is decided: `nbdts --filter=NAME --help` describes them without a plugin.
  const filters: Loaded<Filter<unknown, unknown>>[] = [];
  for (const name of opts.filters) filters.push(await loadFilter(name));
  if (opts.plugin === undefined) {
    if (opts.help) {
      io.stdout(renderGeneralHelp() + renderFiltersHelp(filters));
      return 0;
    }
    if (opts.version) {
      io.stdout(renderVersion());
      return 0;
    }
    throw new UsageError('no plugin given (usage: nbdts [OPTIONS] PLUGIN [KEY=VALUE ...]; see nbdts --help)');
  }

  const loaded = await loadPlugin(opts.plugin);
  const plugin = loaded.value;
  const stack = filters.map((f) => f.value);

  if (opts.help) {
    io.stdout(renderPluginHelp(plugin, filters, loaded.path));
    return 0;
  }
  if (opts.version) {
    io.stdout(renderVersion(plugin, stack));
    return 0;
  }
  if (opts.dumpPlugin) {
    io.stdout(renderDumpPlugin(plugin, loaded.path, filters));
    return 0;
  }

  const activated = activationFds();
  if (activated) {
    const bad = [
      ['-p', opts.port],
      ['-i', opts.ipaddr],
      ['-U', opts.unix],
      ['--run', opts.run],
    ].find(([, v]) => v !== undefined);
    if (bad) throw new UsageError(`cannot use socket activation (LISTEN_FDS) with ${bad[0]}`);
  }

  const logger = createLogger({ level: opts.logLevel });
  setPluginLogger(pluginLogger(logger));
  // With -s stdout carries the protocol: keep stray console.log output off it.
  if (opts.single) console.log = console.error;

  const { config, filterConfigs } = await parsePluginParams(plugin, opts.params, stack);
  logger.debug({ plugin: plugin.name, config: redactConfig(config, describeSchema(plugin.config)) }, 'configuration');
  stack.forEach((f, i) => {
    if (f.config)
      logger.debug(
        { filter: f.name, config: redactConfig(filterConfigs[i], describeSchema(f.config)) },
        'configuration',
      );
  });

  const server: ServerInfo = { readonly: opts.readonly };
  try {
    await named(plugin.name, () => plugin.configComplete?.(config));
    // Inner filters first, so an outer filter sees a checked configuration below it.
    for (let i = stack.length - 1; i >= 0; i--) {
      const f = stack[i]!;
      await named(f.name, () => f.configComplete?.(filterConfigs[i]));
    }
    await named(plugin.name, () => plugin.getReady?.(config, server));
    for (let i = stack.length - 1; i >= 0; i--) {
      const f = stack[i]!;
      await named(f.name, () => f.getReady?.(filterConfigs[i], server));
    }

    const engine = injected ?? (await loadEngine());
    // Not for -s or socket activation: those serve their connections on the main thread.
    const threads =
      opts.single || activated
        ? undefined
        : threadSpec({ value: plugin, specifier: loaded.specifier }, filters, opts, logger);
    const handle = engine.createServer({
      plugin,
      filters: stack,
      readonly: opts.readonly,
      logger,
      ...(threads ? { threads } : {}),
    });
    if (activated) return await serveActivated(handle, activated, opts, logger);
    return opts.single
      ? await serveSingle(handle, opts, logger)
      : await serveListening(handle, opts, (t) => io.stdout(t), logger);
  } finally {
    // We are already stopping: a signal during unload means "exit now".
    const force = (): never => process.exit(1);
    process.on('SIGINT', force);
    process.on('SIGTERM', force);
    try {
      // Filters first (outermost first), then the plugin they sit on.
      for (const f of stack) {
        try {
          await f.unload?.();
        } catch (err) {
          logger.error({ err }, `filter ${f.name}: unload failed`);
        }
      }
      await plugin.unload?.();
    } catch (err) {
      logger.error({ err }, 'plugin unload failed');
    } finally {
      process.off('SIGINT', force);
      process.off('SIGTERM', force);
    }
  }
}

/** Run a start-up callback; a ConfigError's message gets the plugin's name in front unless it has it. */
async function named(name: string, fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (isConfigError(err) && !(err as Error).message.startsWith(`${name}:`)) {
      throw new ConfigError(`${name}: ${(err as Error).message}`, { cause: err });
    }
    throw err;
  }
}

async function loadEngine(): Promise<Engine> {
  const mod = (await import('@nbdts/server')) as Partial<{ createServer: CreateServer }>;
  if (typeof mod.createServer !== 'function') {
    throw new StartError('the server engine (@nbdts/server) does not export createServer');
  }
  return { createServer: mod.createServer };
}
