/**
 * Logs go to stderr (fd 2) always, so stdout stays free for -s and for the
 * printed URI: human-readable on a terminal (pino-pretty in-process, no worker
 * thread), JSON lines otherwise. Writes are synchronous so the last messages
 * are not lost when the process exits.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { PluginLogger } from '@nbdts/plugin-api/engine';
import type { LogLevel } from './args.ts';
import type { ParamInfo } from './schema.ts';

export interface LoggerOptions {
  level: LogLevel;
  /** Default: stderr is a terminal. */
  pretty?: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const usePretty = opts.pretty ?? process.stderr.isTTY === true;
  const base = { level: opts.level, base: { name: 'nbdts' } };
  if (usePretty) {
    return pino(
      base,
      pretty({
        destination: 2,
        sync: true,
        colorize: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,name',
      }),
    );
  }
  return pino(base, pino.destination({ fd: 2, sync: true }));
}

/** Adapt pino to the plugin-api logger interface (fields first, as pino wants). */
export function pluginLogger(logger: Logger): PluginLogger {
  const at = (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => {
    if (fields) logger[level](fields, msg);
    else logger[level](msg);
  };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    get debugEnabled() {
      return logger.isLevelEnabled('debug');
    },
  };
}

/**
 * A copy of parsed config fit for logs: SECRET-typed parameters are masked
 * whatever they parsed to (a Secret already prints as [secret], but a plugin
 * might transform it into something that does not).
 */
export function redactConfig(config: unknown, params: readonly ParamInfo[] | undefined): unknown {
  if (typeof config !== 'object' || config === null) return config;
  const secretKeys = new Set((params ?? []).filter((p) => p.type === 'SECRET').map((p) => p.key));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    out[k] = secretKeys.has(k) ? '[secret]' : typeof v === 'bigint' ? v.toString() : v;
  }
  return out;
}
