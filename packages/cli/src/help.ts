/**
 * Text the CLI prints and exits: --help, PLUGIN --help, --dump-plugin,
 * --dump-config, --version. Pure functions returning strings, for tests.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Filter, Plugin } from '@nbdts/plugin-api';
import { describeSchema, type ParamInfo } from './schema.ts';
import { BUILTIN_FILTERS, BUILTIN_PLUGINS, type Loaded } from './plugin-loader.ts';

const PKG_JSON = fileURLToPath(new URL('../package.json', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/nbdts.js', import.meta.url));

export const VERSION: string = (JSON.parse(readFileSync(PKG_JSON, 'utf8')) as { version: string }).version;

export function renderVersion(
  plugin?: Plugin<unknown, unknown>,
  filters: readonly Filter<unknown, unknown>[] = [],
): string {
  let out = `nbdts ${VERSION}\n`;
  if (plugin) out += `${plugin.name} ${plugin.version ?? 'unknown'}\n`;
  for (const f of filters) out += `${f.name} ${f.version ?? 'unknown'}\n`;
  return out;
}

export function renderGeneralHelp(): string {
  return `Usage: nbdts [OPTIONS] PLUGIN [[KEY=]VALUE ...] [--filter=FILTER ...]

Serve a block device over NBD. PLUGIN is a built-in name (${Object.keys(BUILTIN_PLUGINS).join(', ')}),
a file (./my-plugin.ts, /abs/plugin.js) or an npm package (nbdts-plugin-NAME).

Listening:
  -p, --port PORT          TCP port (default 10809; 0 picks a free one)
  -i, --ipaddr ADDR        listen on this address only (default: all)
  -U, --unix SOCKET        listen on a Unix socket; '-' makes a private one
  -s, --single             serve one connection on stdin/stdout, then exit
  -e, --exportname NAME    export name used in the printed URI and for --run
  -r, --readonly           refuse writes
      --filter=FILTER      stack a filter (repeatable; the first is nearest the client):
                           a built-in name (below), a file (./my-filter.ts) or a package

Running:
      --run 'CMD'          run CMD via sh -c with $uri, $nbd, $port, $unixsocket,
                           $exportname set; exit with its status (private socket
                           unless -p or -U is given)
      --exit-with-parent   exit when the parent process exits
      --workers N          serve connections on N worker threads, for plugins that
                           support it (default: one per CPU, up to 4; 0: main thread)
  -P, --pidfile FILE       write the process id to FILE once listening
  -f, --foreground         accepted for nbdkit compatibility (always foreground)
      --print-uri          print the NBD URI on stdout when ready (default unless -s or --run)

Logging:
  -v, --verbose            debug logging (same as --log-level=debug)
      --log-level LEVEL    trace, debug, info, warn, error, fatal or silent

Information:
  -h, --help               this help; 'nbdts PLUGIN --help' describes a plugin's parameters,
                           'nbdts --filter=FILTER --help' a filter's
  -V, --version            print the version (and the plugin's, if one is named)
      --dump-plugin        print facts about PLUGIN as key=value lines
      --dump-config        print facts about nbdts as key=value lines

Examples:
  nbdts memory size=1G
  nbdts -U - memory size=1M --run 'nbdinfo "$uri"'
  nbdinfo -- [ nbdts ./my-plugin.ts ]        (socket activation: LISTEN_FDS/LISTEN_PID)
  nbdts PLUGIN --help                        (the plugin's parameters)

Built-in filters (nbdts --filter=NAME --help describes one):
${wrap(Object.keys(BUILTIN_FILTERS).join(' ') || '(none)', WIDTH - 2)
  .map((l) => `  ${l}`)
  .join('\n')}
`;
}

const COLUMN = 28;
const WIDTH = 100;

/** Word-wrap `text` into lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

function paramLine(p: ParamInfo): string[] {
  const left = `  ${p.flag}=${p.type}`;
  const notes: string[] = [];
  // Some descriptions already say "(required)": do not say it twice.
  if (p.required && !/\(required\)/i.test(p.description ?? '')) notes.push('(required)');
  if (p.description) notes.push(p.description);
  if (p.defaultText !== undefined) notes.push(`[default: ${p.defaultText}]`);
  const text = wrap(notes.join(' '), WIDTH - COLUMN);
  if (text.length === 0) return [left];
  const indent = ' '.repeat(COLUMN);
  const rest = text.slice(1).map((l) => indent + l);
  return left.length < COLUMN ? [left.padEnd(COLUMN) + text[0], ...rest] : [left, indent + text[0], ...rest];
}

function paramsSection(title: string, params: ParamInfo[] | undefined, hasConfig: boolean): string {
  if (!hasConfig) return `${title}: none\n`;
  if (!params) return `${title}: (not a plain object schema; see the plugin's documentation)\n`;
  if (params.length === 0) return `${title}: none\n`;
  return `${title}:\n${params.flatMap(paramLine).join('\n')}\n`;
}

/** One filter's section of --help: its parameters from the zod schema, then its usage text. */
function filterHelp(f: Loaded<Filter<unknown, unknown>>): string {
  const v = f.value;
  let out = `\nfilter: ${v.name}${v.version ? ` ${v.version}` : ''} (${f.path})\n`;
  if (v.description) out += `${v.description}\n`;
  out += paramsSection('Parameters', describeSchema(v.config), v.config !== undefined);
  if (v.usage) out += `\n${v.usage.trimEnd()}\n`;
  return out;
}

/** `nbdts --filter=NAME --help` without a plugin: each filter's section, after the general help. */
export function renderFiltersHelp(filters: ReadonlyArray<Loaded<Filter<unknown, unknown>>>): string {
  return filters.map(filterHelp).join('');
}

/** `nbdts PLUGIN --help`: the plugin's parameters and usage, then each filter's (outermost first). */
export function renderPluginHelp(
  plugin: Plugin<unknown, unknown>,
  filters: ReadonlyArray<Loaded<Filter<unknown, unknown>>> = [],
  path?: string,
): string {
  const params = describeSchema(plugin.config);
  const magic = plugin.magicConfigKey ? params?.find((p) => p.key === plugin.magicConfigKey) : undefined;
  let out = `plugin: ${plugin.name}${plugin.version ? ` ${plugin.version}` : ''}${path ? ` (${path})` : ''}\n`;
  if (plugin.description) out += `${plugin.description}\n`;
  const usageArgs = magic ? ` [${magic.flag}=]${magic.type}` : '';
  const filterArgs = filters.map((f) => ` --filter=${f.value.name}`).join('');
  out += `\nUsage: nbdts [OPTIONS]${filterArgs} ${plugin.name}${usageArgs} [KEY=VALUE ...]\n\n`;
  out += paramsSection('Parameters', params, plugin.config !== undefined);
  if (plugin.magicConfigKey) {
    out += `\nA bare argument without '=' is taken as ${magic?.flag ?? plugin.magicConfigKey}=.\n`;
  }
  if (plugin.usage) out += `\n${plugin.usage.trimEnd()}\n`;
  return out + renderFiltersHelp(filters);
}

const CALLBACKS: ReadonlyArray<[keyof Plugin<unknown, unknown>, string]> = [
  ['configComplete', 'config_complete'],
  ['getReady', 'get_ready'],
  ['unload', 'unload'],
  ['listExports', 'list_exports'],
  ['defaultExport', 'default_export'],
  ['open', 'open'],
  ['close', 'close'],
  ['exportDescription', 'export_description'],
  ['getSize', 'get_size'],
  ['blockSize', 'block_size'],
  ['canWrite', 'can_write'],
  ['canFlush', 'can_flush'],
  ['canTrim', 'can_trim'],
  ['canZero', 'can_zero'],
  ['canFastZero', 'can_fast_zero'],
  ['canFua', 'can_fua'],
  ['canExtents', 'can_extents'],
  ['canCache', 'can_cache'],
  ['canMultiConn', 'can_multi_conn'],
  ['isRotational', 'is_rotational'],
  ['pread', 'pread'],
  ['read', 'read'],
  ['pwrite', 'pwrite'],
  ['flush', 'flush'],
  ['trim', 'trim'],
  ['zero', 'zero'],
  ['extents', 'extents'],
  ['cache', 'cache'],
];

const FILTER_CALLBACKS: ReadonlyArray<[keyof Filter<unknown, unknown>, string]> = [
  ['configComplete', 'config_complete'],
  ['getReady', 'get_ready'],
  ['unload', 'unload'],
  ['preconnect', 'preconnect'],
  ['listExports', 'list_exports'],
  ['defaultExport', 'default_export'],
  ['open', 'open'],
  ['prepare', 'prepare'],
  ['finalize', 'finalize'],
  ['close', 'close'],
  ...(CALLBACKS.filter(
    ([k]) =>
      !['configComplete', 'getReady', 'unload', 'listExports', 'defaultExport', 'open', 'close', 'read'].includes(k),
  ) as Array<[keyof Filter<unknown, unknown>, string]>),
];

/**
 * One line per fact, `key=value`, like nbdkit --dump-plugin; then the
 * filters in the stack (outermost first), each fact as filter.NAME.KEY.
 */
export function renderDumpPlugin(
  plugin: Plugin<unknown, unknown>,
  path: string,
  filters: ReadonlyArray<Loaded<Filter<unknown, unknown>>> = [],
): string {
  const params = describeSchema(plugin.config);
  const lines = [
    `path=${path}`,
    `name=${plugin.name}`,
    `version=${plugin.version ?? ''}`,
    `description=${(plugin.description ?? '').replace(/\n/g, ' ')}`,
    `nbdts_version=${VERSION}`,
    `magic_config_key=${plugin.magicConfigKey ?? ''}`,
    `concurrency=${plugin.concurrency ?? 'unlimited'}`,
    `threads=${plugin.threads ? 1 : 0}`,
    `has_config=${plugin.config ? 1 : 0}`,
    `has_usage=${plugin.usage ? 1 : 0}`,
    ...CALLBACKS.map(([key, name]) => `has_${name}=${typeof plugin[key] === 'function' ? 1 : 0}`),
  ];
  if (params) lines.push(`params=${params.map((p) => p.flag).join(',')}`);
  lines.push(`filters=${filters.map((f) => f.value.name).join(',')}`);
  for (const f of filters) {
    const v = f.value;
    const k = `filter.${v.name}`;
    const fp = describeSchema(v.config);
    lines.push(
      `${k}.path=${f.path}`,
      `${k}.version=${v.version ?? ''}`,
      `${k}.description=${(v.description ?? '').replace(/\n/g, ' ')}`,
      `${k}.threads=${v.threads ? 1 : 0}`,
      ...FILTER_CALLBACKS.map(([key, name]) => `${k}.has_${name}=${typeof v[key] === 'function' ? 1 : 0}`),
    );
    if (fp) lines.push(`${k}.params=${fp.map((p) => p.flag).join(',')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Facts about nbdts itself, like nbdkit --dump-config. */
export function renderDumpConfig(): string {
  const [major, minor] = VERSION.split('.');
  return (
    [
      `binary=${BIN}`,
      `builtin_filters=${Object.keys(BUILTIN_FILTERS).join(',')}`,
      `builtin_plugins=${Object.keys(BUILTIN_PLUGINS).join(',')}`,
      `exit_with_parent=yes`,
      `exit_with_parent_method=poll-ppid`,
      `host_cpu=${process.arch}`,
      `host_os=${process.platform}`,
      `name=nbdts`,
      `node_version=${process.versions.node}`,
      `plugin_languages=typescript,javascript`,
      `tls=no`,
      `version=${VERSION}`,
      `version_major=${major}`,
      `version_minor=${minor}`,
    ].join('\n') + '\n'
  );
}
