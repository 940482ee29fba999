/**
 * Command-line options, nbdkit style: `nbdts [OPTIONS] PLUGIN [key=value ...]`.
 * Options may also follow the plugin name (nbdkit accepts `memory 1M -r`), so
 * the arguments are parsed twice: once up to the plugin name, once for the
 * rest, where everything that is not an option is a plugin parameter.
 * Arguments after `--` are always parameters.
 */
import yargs from 'yargs';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface CliOptions {
  port?: number;
  ipaddr?: string;
  /** Unix socket path, or '-' for a private socket in a temporary directory. */
  unix?: string;
  single: boolean;
  readonly: boolean;
  exportname: string;
  pidfile?: string;
  foreground: boolean;
  run?: string;
  exitWithParent: boolean;
  /** --workers: worker threads serving connections (undefined: the default for this machine). */
  workers?: number;
  verbose: boolean;
  logLevel: LogLevel;
  printUri: boolean;
  version: boolean;
  help: boolean;
  dumpPlugin: boolean;
  dumpConfig: boolean;
  filters: string[];
  plugin?: string;
  /** Plugin (and filter) parameters, as written. */
  params: string[];
}

/** Long name, short alias, and whether it takes a value. */
const OPTIONS: ReadonlyArray<{ name: string; alias?: string; string: boolean }> = [
  { name: 'port', alias: 'p', string: true },
  { name: 'ipaddr', alias: 'i', string: true },
  { name: 'unix', alias: 'U', string: true },
  { name: 'single', alias: 's', string: false },
  { name: 'readonly', alias: 'r', string: false },
  { name: 'exportname', alias: 'e', string: true },
  { name: 'pidfile', alias: 'P', string: true },
  { name: 'foreground', alias: 'f', string: false },
  { name: 'run', string: true },
  { name: 'exit-with-parent', string: false },
  { name: 'workers', string: true },
  { name: 'verbose', alias: 'v', string: false },
  { name: 'log-level', string: true },
  { name: 'print-uri', string: false },
  { name: 'version', alias: 'V', string: false },
  { name: 'help', alias: 'h', string: false },
  { name: 'dump-plugin', string: false },
  { name: 'dump-config', string: false },
  { name: 'filter', string: true },
];

type Raw = Record<string, unknown> & { _: (string | number)[]; '--'?: (string | number)[] };

const VALUE_OPTIONS = new Set(OPTIONS.filter((o) => o.string).map((o) => `--${o.name}`));

/** yargs reads `--unix -` as an empty value followed by '-': join such pairs as `--unix=-`. */
function joinDashValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (VALUE_OPTIONS.has(a) && argv[i + 1] === '-') {
      out.push(`${a}=-`);
      i++;
    } else out.push(a);
  }
  return out;
}

function parseOnce(argv: readonly string[], halt: boolean): Raw {
  let y = yargs(joinDashValues(argv))
    .parserConfiguration({
      'halt-at-non-option': halt,
      'unknown-options-as-args': true,
      'parse-positional-numbers': false,
      'parse-numbers': false,
      'camel-case-expansion': false,
      'boolean-negation': false,
      'dot-notation': false,
      'duplicate-arguments-array': true,
      'populate--': !halt,
      'short-option-groups': true,
    })
    .help(false)
    .version(false)
    .exitProcess(false)
    .fail((msg, err) => {
      throw new UsageError(err?.message ?? msg);
    });
  for (const o of OPTIONS) {
    y = y.option(o.name, { type: o.string ? 'string' : 'boolean', ...(o.alias ? { alias: o.alias } : {}) });
  }
  return y.parseSync() as Raw;
}

/** Last value of a string option given possibly several times. */
function lastString(raw: Raw, name: string): string | undefined {
  const v = raw[name];
  const last = Array.isArray(v) ? v[v.length - 1] : v;
  if (last === undefined) return undefined;
  if (typeof last !== 'string' || last === '') {
    // yargs gives '' for an option whose value is missing.
    throw new UsageError(`option --${name} needs a value`);
  }
  return last;
}

function allStrings(raw: Raw, name: string): string[] {
  const v = raw[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => {
    if (typeof x !== 'string' || x === '') throw new UsageError(`option --${name} needs a value`);
    return x;
  });
}

function flag(raw: Raw, name: string): boolean {
  const v = raw[name];
  return Array.isArray(v) ? v.some(Boolean) : v === true;
}

function checkUnknown(args: readonly (string | number)[]): void {
  for (const a of args) {
    if (typeof a === 'string' && a.startsWith('-') && a !== '-') throw new UsageError(`unknown option '${a}'`);
  }
}

function parsePort(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`--port: '${text}' is not a port number (0 to 65535; 0 picks a free port)`);
  }
  return Number(text);
}

/** Most worker threads accepted: more than the cores only adds memory and hand-offs. */
export const MAX_WORKERS = 64;

function parseWorkers(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > MAX_WORKERS) {
    throw new UsageError(
      `--workers: '${text}' is not a number of threads (0 to ${MAX_WORKERS}; 0 serves on the main thread)`,
    );
  }
  return Number(text);
}

/** Parse the command line (without `node` and the script path). Throws UsageError. */
export function parseArgs(argv: readonly string[]): CliOptions {
  const head = parseOnce(argv, true);
  const rest = head._.map(String);
  checkUnknown(rest.slice(0, 1));
  const plugin = rest[0];
  const tail = plugin === undefined ? undefined : parseOnce(rest.slice(1), false);
  const tailArgs = tail ? tail._.map(String) : [];
  checkUnknown(tailArgs);
  const params = [...tailArgs, ...(tail?.['--'] ?? []).map(String)];

  // An option after the plugin name overrides the same option before it.
  const pick = <T>(get: (r: Raw) => T | undefined): T | undefined => (tail ? get(tail) : undefined) ?? get(head);
  const str = (name: string) => pick((r) => lastString(r, name));
  const bool = (name: string) => flag(head, name) || (tail ? flag(tail, name) : false);

  const portText = str('port');
  const logLevelText = str('log-level');
  const verbose = bool('verbose');
  if (logLevelText !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevelText)) {
    throw new UsageError(`--log-level: '${logLevelText}' is not one of ${LOG_LEVELS.join(', ')}`);
  }

  const opts: CliOptions = {
    single: bool('single'),
    readonly: bool('readonly'),
    exportname: str('exportname') ?? '',
    foreground: bool('foreground'),
    exitWithParent: bool('exit-with-parent'),
    verbose,
    logLevel: (logLevelText as LogLevel | undefined) ?? (verbose ? 'debug' : 'info'),
    printUri: bool('print-uri'),
    version: bool('version'),
    help: bool('help'),
    dumpPlugin: bool('dump-plugin'),
    dumpConfig: bool('dump-config'),
    filters: [...allStrings(head, 'filter'), ...(tail ? allStrings(tail, 'filter') : [])],
    params,
  };
  if (plugin !== undefined) opts.plugin = plugin;
  if (portText !== undefined) opts.port = parsePort(portText);
  const ipaddr = str('ipaddr');
  if (ipaddr !== undefined) opts.ipaddr = ipaddr;
  const unix = str('unix');
  if (unix !== undefined) opts.unix = unix;
  const pidfile = str('pidfile');
  if (pidfile !== undefined) opts.pidfile = pidfile;
  const workers = str('workers');
  if (workers !== undefined) opts.workers = parseWorkers(workers);
  const run = str('run');
  if (run !== undefined) opts.run = run;

  // Combinations nbdkit also refuses.
  if (opts.unix !== undefined && (opts.port !== undefined || opts.ipaddr !== undefined)) {
    throw new UsageError('-U cannot be combined with -p or -i');
  }
  if (
    opts.single &&
    (opts.unix !== undefined || opts.port !== undefined || opts.ipaddr !== undefined || opts.run !== undefined)
  ) {
    throw new UsageError('-s serves stdin/stdout: it cannot be combined with -p, -i, -U or --run');
  }
  return opts;
}
