/**
 * The settings a filter (or plugin) keeps in its module between configComplete
 * and the connections, with the `threads` member that hands them to its
 * copies on worker threads. For layers whose only state across connections
 * is their configuration; the value must be structured-clonable (numbers,
 * strings, plain objects, SharedArrayBuffers for counters every thread
 * updates with Atomics).
 *
 *   const settings = moduleSettings<Config>('offset');
 *   export default defineFilter({
 *     config, threads: settings.threads,
 *     configComplete: (c) => settings.set(c),
 *     getSize: async (next) => (await next.getSize()) - settings.get().offset,
 *   });
 */
import type { PluginThreads } from './types.ts';

export interface ModuleSettings<T> {
  /** The settings; throws (naming the owner) before set() was called. */
  get(): T;
  set(value: T): void;
  readonly isSet: boolean;
  /** share() returns the settings, attach() installs them in another thread's copy. */
  readonly threads: PluginThreads;
}

export function moduleSettings<T>(owner: string): ModuleSettings<T> {
  let value: { v: T } | undefined;
  const set = (v: T): void => {
    value = { v };
  };
  return {
    get(): T {
      if (!value) throw new Error(`${owner}: used before its configuration was complete`);
      return value.v;
    },
    set,
    get isSet() {
      return value !== undefined;
    },
    threads: {
      share: () => value?.v,
      attach: (shared) => set(shared as T),
    },
  };
}
