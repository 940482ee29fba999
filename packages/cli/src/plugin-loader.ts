/**
 * Find and import plugins and filters by built-in name, file path or npm
 * package name. Imports are lazy so a missing optional plugin package only
 * matters when someone asks for it. TypeScript files load as they are: Node
 * strips their types (files inside node_modules excepted: a published plugin
 * ships JavaScript).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigError } from '@nbdts/plugin-api';
import type { Filter, Plugin } from '@nbdts/plugin-api';

/** Plugins that ship with nbdts, by the name used on the command line. */
export const BUILTIN_PLUGINS: Readonly<Record<string, string>> = {
  memory: '@nbdts/plugin-memory',
  file: '@nbdts/plugin-file',
  swift: '@nbdts/plugin-swift',
  s3: '@nbdts/plugin-s3',
};

/**
 * Filters that ship with nbdts: every @nbdts/filter-NAME this package depends
 * on, by NAME (nbdkit's filter names). Other names are still tried as
 * @nbdts/filter-NAME and nbdts-filter-NAME packages.
 */
export const BUILTIN_FILTERS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.keys(
    (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies?: object })
      .dependencies ?? {},
  )
    .filter((d) => d.startsWith('@nbdts/filter-'))
    .sort()
    .map((d) => [d.slice('@nbdts/filter-'.length), d]),
);

export interface Loaded<T> {
  value: T;
  /** What --dump-plugin reports as path: a file path or package name. */
  path: string;
  /** The module specifier actually imported. */
  specifier: string;
}

/** A path rather than a name: contains '/' (or '\\') or ends in a script extension; `@scope/pkg` is a name. */
export function isPathLike(name: string): boolean {
  if (/^@[a-z0-9][\w.-]*\/[a-z0-9][\w.-]*$/i.test(name) && !/\.(?:[cm]?[jt]s|tsx)$/.test(name)) return false;
  return /[\\/]/.test(name) || /\.(?:[cm]?[jt]s|tsx)$/.test(name) || name === '.' || name === '..';
}

/** True when the import failed because `specifier` itself is missing (not one of its own imports). */
function notFound(err: unknown, specifier: string): boolean {
  const msg = (err as Error | undefined)?.message;
  if (typeof msg !== 'string') return false;
  // Node: "Cannot find package 'x' imported from ..."; vite (tests): "Failed to resolve import "x" ..." and similar.
  return (
    /Cannot find (?:module|package)|Failed to (?:load|resolve)|Does the file exist/.test(msg) &&
    (msg.includes(`'${specifier}'`) || msg.includes(`"${specifier}"`))
  );
}

/** Resolve an npm package from the current directory (for packages installed next to the user's project). */
function resolveFromCwd(name: string): string | undefined {
  try {
    return pathToFileURL(createRequire(join(process.cwd(), 'noop.js')).resolve(name)).href;
  } catch {
    return undefined;
  }
}

async function tryImport(specifier: string): Promise<Record<string, unknown> | undefined> {
  try {
    return (await import(specifier)) as Record<string, unknown>;
  } catch (err) {
    if (notFound(err, specifier)) return undefined;
    throw err;
  }
}

function describeImportError(what: string, err: unknown): ConfigError {
  const msg = (err as Error)?.message?.split('\n')[0] ?? String(err);
  return new ConfigError(`${what}: cannot load: ${msg}`, { cause: err });
}

/** The file a package specifier resolves to, for --dump-plugin's path (the specifier if unknown). */
function fileOf(specifier: string): string {
  if (specifier.startsWith('file:')) return fileURLToPath(specifier);
  try {
    return createRequire(import.meta.url).resolve(specifier);
  } catch {
    return specifier;
  }
}

/**
 * Import the module for `name`: a path; a built-in name; else a package NAME,
 * nbdts-KIND-NAME or @nbdts/KIND-NAME. Returns the module and where it came from.
 */
async function importModule(
  name: string,
  kind: 'plugin' | 'filter',
  builtins: Readonly<Record<string, string>>,
): Promise<{ mod: Record<string, unknown>; path: string; specifier: string }> {
  if (isPathLike(name)) {
    const file = isAbsolute(name) ? name : resolve(process.cwd(), name);
    const specifier = pathToFileURL(file).href;
    if (!existsSync(file)) throw new ConfigError(`${kind} file not found: ${file}`);
    try {
      return { mod: (await import(specifier)) as Record<string, unknown>, path: file, specifier };
    } catch (err) {
      throw describeImportError(name, err);
    }
  }

  const candidates = builtins[name]
    ? [builtins[name]]
    : [name, `nbdts-${kind}-${name}`, `@nbdts/${kind}-${name}`].filter((c, i, a) => a.indexOf(c) === i);
  if (!/^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(name)) {
    throw new ConfigError(`'${name}' is not a ${kind} name, package name or path`);
  }
  for (const specifier of candidates) {
    try {
      let mod = await tryImport(specifier);
      let used = specifier;
      if (!mod) {
        const url = resolveFromCwd(specifier);
        if (url) {
          mod = await tryImport(url);
          used = url;
        }
      }
      if (mod) return { mod, path: fileOf(used), specifier: used };
    } catch (err) {
      throw describeImportError(name, err);
    }
  }
  if (builtins[name]) {
    throw new ConfigError(`${kind} '${name}' is built in but its package ${builtins[name]} is not installed`);
  }
  throw new ConfigError(
    `${kind} '${name}' not found (tried ${candidates.join(', ')}; give a path like ./${name}.ts to load a file)`,
  );
}

export function pickExport(mod: Record<string, unknown>, named: string): unknown {
  const d = mod.default;
  // A CommonJS module compiled from `export default` arrives as { default: { default: x } }.
  if (d && typeof d === 'object' && 'default' in d && !('name' in d)) return (d as { default: unknown }).default;
  return d ?? mod[named];
}

export function isPlugin(x: unknown): x is Plugin<unknown, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const p = x as Partial<Plugin<unknown, unknown>>;
  return (
    typeof p.name === 'string' &&
    typeof p.open === 'function' &&
    typeof p.getSize === 'function' &&
    (typeof p.pread === 'function' || typeof p.read === 'function')
  );
}

export function isFilter(x: unknown): x is Filter<unknown, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const f = x as Partial<Filter<unknown, unknown>> & { wrap?: unknown };
  // A plugin given to --filter is a mistake worth its own message (see loadFilter).
  return typeof f.name === 'string' && f.wrap === undefined && !isPlugin(x);
}

/** Load a plugin by built-in name, path or package name. The default export (or `plugin`) is the Plugin. */
export async function loadPlugin(name: string, builtins = BUILTIN_PLUGINS): Promise<Loaded<Plugin<unknown, unknown>>> {
  const { mod, path, specifier } = await importModule(name, 'plugin', builtins);
  const value = pickExport(mod, 'plugin');
  if (!isPlugin(value)) {
    throw new ConfigError(
      `${name}: not an nbdts plugin (expected a default export made with definePlugin, with name, open, getSize and pread or read)`,
    );
  }
  return { value, path, specifier };
}

/** Load a filter the same way (default export or `filter`). */
export async function loadFilter(name: string, builtins = BUILTIN_FILTERS): Promise<Loaded<Filter<unknown, unknown>>> {
  const { mod, path, specifier } = await importModule(name, 'filter', builtins);
  const value = pickExport(mod, 'filter');
  if (typeof (value as { wrap?: unknown } | undefined)?.wrap === 'function') {
    throw new ConfigError(
      `${name}: this filter uses the old wrap() API; a filter now implements the callbacks it changes, each given next (see docs/plugin-api.md)`,
    );
  }
  if (isPlugin(value))
    throw new ConfigError(`${name}: this is a plugin, not a filter (give it as the PLUGIN argument)`);
  if (!isFilter(value)) {
    throw new ConfigError(
      `${name}: not an nbdts filter (expected a default export made with defineFilter, with a name)`,
    );
  }
  return { value, path, specifier };
}
