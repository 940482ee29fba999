/**
 * `key=value` command-line parameters: split them, route them to the plugin or
 * a filter, and parse them with the owner's zod schema. Every failure is a
 * ConfigError whose message is one line naming the parameter in kebab-case.
 */
import { ConfigError, toCamel, toKebab } from '@nbdts/plugin-api';
import type { Filter, Plugin } from '@nbdts/plugin-api';
import { objectShape } from './schema.ts';

/** A key as nbdkit accepts it: starts with a letter, then letters, digits, '_', '-', '.'. */
const KEY_VALUE = /^([A-Za-z][A-Za-z0-9_.-]*)=([\s\S]*)$/;

export interface RawParam {
  /** kebab-case, as written (snake_case is normalised to kebab-case). */
  flag: string;
  /** camelCase schema key. */
  key: string;
  value: string;
}

/**
 * Split `key=value` arguments; a bare argument becomes `magicConfigKey=arg`.
 * Duplicate keys (including magic + explicit) are an error.
 */
export function splitParams(pluginName: string, args: readonly string[], magicConfigKey?: string): RawParam[] {
  const seen = new Map<string, RawParam>();
  for (const arg of args) {
    const m = KEY_VALUE.exec(arg);
    let key: string;
    let value: string;
    if (m) {
      key = toCamel(m[1]!);
      value = m[2]!;
    } else if (magicConfigKey) {
      key = magicConfigKey;
      value = arg;
    } else {
      throw new ConfigError(`${pluginName}: '${arg}' is not key=value and this plugin has no magic parameter`);
    }
    const flag = toKebab(key);
    if (seen.has(key)) throw new ConfigError(`${pluginName}: parameter '${flag}' given more than once`);
    seen.set(key, { flag, key, value });
  }
  return [...seen.values()];
}

interface ZodIssueLike {
  code?: string;
  path?: PropertyKey[];
  message: string;
}

function isZodError(err: unknown): err is { issues: ZodIssueLike[] } {
  return typeof err === 'object' && err !== null && Array.isArray((err as { issues?: unknown }).issues);
}

/**
 * The plugin-api helpers report e.g. "size: cannot parse ..." or "value: expected
 * true/false ...": drop that generic prefix, we put the real parameter name in front.
 */
function stripWhat(message: string, flag: string): string {
  const prefixes = ['size', 'value', 'secret', flag];
  for (const p of prefixes) if (message.startsWith(`${p}: `)) return message.slice(p.length + 2);
  return message;
}

/** Parse `values` (camelCase keys) with `schema`, turning the first zod issue into one line. */
async function parseWith(owner: string, schema: unknown, values: Record<string, string>): Promise<unknown> {
  const s = schema as { parseAsync(v: unknown): Promise<unknown> };
  try {
    return await s.parseAsync(values);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${owner}: ${err.message}`);
    if (!isZodError(err) || err.issues.length === 0) throw err;
    const issue = err.issues[0]!;
    const key = issue.path?.[0];
    if (typeof key !== 'string') throw new ConfigError(`${owner}: ${issue.message}`);
    const flag = toKebab(key);
    if (!(key in values)) {
      throw new ConfigError(`${owner}: missing required parameter '${flag}' (see nbdts ${owner} --help)`);
    }
    throw new ConfigError(`${owner}: ${flag}: ${stripWhat(issue.message, flag)}`);
  }
}

export interface ParsedParams {
  config: unknown;
  /** One entry per filter, in the order given. */
  filterConfigs: unknown[];
}

/**
 * Route parameters and parse them. Filters see parameters first (as in
 * nbdkit): a key a filter's schema declares belongs to that filter; the rest
 * go to the plugin. A key nobody declares is an error naming it.
 */
export async function parsePluginParams(
  plugin: Plugin<unknown, unknown>,
  args: readonly string[],
  filters: ReadonlyArray<Filter<unknown>> = [],
): Promise<ParsedParams> {
  const params = splitParams(plugin.name, args, plugin.magicConfigKey);
  const filterValues = filters.map(() => ({}) as Record<string, string>);
  const pluginValues: Record<string, string> = {};
  const pluginShape = objectShape(plugin.config);

  for (const p of params) {
    const fi = filters.findIndex((f) => objectShape(f.config)?.[p.key] !== undefined);
    if (fi >= 0) {
      filterValues[fi]![p.key] = p.value;
      continue;
    }
    if (!plugin.config) {
      throw new ConfigError(`${plugin.name}: unknown parameter '${p.flag}' (this plugin takes no parameters)`);
    }
    // A schema that is not a plain object (a union, say) is left to zod to judge.
    if (pluginShape && !(p.key in pluginShape)) {
      throw new ConfigError(`${plugin.name}: unknown parameter '${p.flag}' (see nbdts ${plugin.name} --help)`);
    }
    pluginValues[p.key] = p.value;
  }

  const filterConfigs: unknown[] = [];
  for (const [i, f] of filters.entries()) {
    filterConfigs.push(f.config ? await parseWith(f.name, f.config, filterValues[i]!) : {});
  }
  const config = plugin.config ? await parseWith(plugin.name, plugin.config, pluginValues) : {};
  return { config, filterConfigs };
}
