/**
 * Logging for plugins. The engine installs its logger at start-up; until then
 * (e.g. in a plugin's unit tests) messages go to stderr. The logger lives on
 * globalThis so a plugin with its own copy of this package still logs through
 * the engine. Never log a Secret's revealed value.
 */
export interface PluginLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** True when debug messages are kept: skip building expensive ones otherwise. */
  readonly debugEnabled: boolean;
}

const KEY = Symbol.for('nbdts.plugin-logger');

const fallback: PluginLogger = {
  debug: () => {},
  info: (msg) => process.stderr.write(`nbdts: ${msg}\n`),
  warn: (msg) => process.stderr.write(`nbdts: warning: ${msg}\n`),
  error: (msg) => process.stderr.write(`nbdts: error: ${msg}\n`),
  debugEnabled: false,
};

type WithLogger = typeof globalThis & { [KEY]?: PluginLogger };

/** Called by the engine. */
export function setPluginLogger(logger: PluginLogger): void {
  (globalThis as WithLogger)[KEY] = logger;
}

function current(): PluginLogger {
  return (globalThis as WithLogger)[KEY] ?? fallback;
}

export const log: PluginLogger = {
  debug: (msg, fields) => current().debug(msg, fields),
  info: (msg, fields) => current().info(msg, fields),
  warn: (msg, fields) => current().warn(msg, fields),
  error: (msg, fields) => current().error(msg, fields),
  get debugEnabled() {
    return current().debugEnabled;
  },
};
