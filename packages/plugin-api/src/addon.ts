import { createRequire } from 'node:module';

export type AddonLoad<T> = { ops: T; error?: undefined } | { ops: null; error: string };

/**
 * Load an optional native addon (built by node-gyp) without ever throwing:
 * the engine and plugins with one fall back when it is missing. `path` is
 * relative to the module `from` (its import.meta.url); the addon must export
 * every name in `functions`. `what` names the addon in the reason returned
 * ("the native helpers", plural: true).
 */
export function loadAddon<T>(
  from: string,
  path: string,
  functions: readonly (keyof T & string)[],
  what: { name: string; plural?: boolean },
): AddonLoad<T> {
  const [is, it] = what.plural ? ['are', 'them'] : ['is', 'it'];
  if (process.platform !== 'linux')
    return { ops: null, error: `${what.name} ${is} Linux-only (this is ${process.platform})` };
  try {
    const ops = createRequire(from)(path) as Partial<Record<keyof T, unknown>>;
    const missing = functions.filter((f) => typeof ops[f] !== 'function');
    if (missing.length > 0)
      return { ops: null, error: `${what.name} ${is} out of date (no ${missing.join(', ')}); rebuild ${it}` };
    return { ops: ops as T };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ops: null,
      error:
        code === 'MODULE_NOT_FOUND'
          ? `${what.name} ${is} not built`
          : `cannot load ${what.name}: ${(err as Error).message}`,
    };
  }
}
