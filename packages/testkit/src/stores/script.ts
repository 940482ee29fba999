import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Absolute path of scripts/stores/NAME.sh. */
export function storeScript(name: string): string {
  return fileURLToPath(new URL(`../../../../scripts/stores/${name}.sh`, import.meta.url));
}

/** Parse the `export NAME=value ...` line(s) a store script prints. */
export function parseStoreEnv(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('export ')) continue;
    for (const word of line.slice(7).trim().split(/\s+/)) {
      const eq = word.indexOf('=');
      if (eq > 0) vars[word.slice(0, eq)] = word.slice(eq + 1);
    }
  }
  return vars;
}

/** Run `SCRIPT COMMAND`; a failure says which command failed, why, and how to install the store. */
export async function runStoreScript(script: string, command: string, timeout: number): Promise<string> {
  try {
    const { stdout } = await run('bash', [script, command], { timeout, maxBuffer: 1 << 20 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(
      `${script} ${command} failed: ${e.stderr?.trim() || e.message}\n` +
        `(install the store with '${script} install' as root)`,
      { cause: err },
    );
  }
}

/** The named variables from a store's env output; throws naming the first one missing. */
export function requireVars<K extends string>(
  vars: Record<string, string>,
  names: Record<K, string>,
  source: string,
): Record<K, string> {
  const out = {} as Record<K, string>;
  for (const [field, name] of Object.entries(names) as [K, string][]) {
    const value = vars[name];
    if (value === undefined) throw new Error(`${source} did not print ${name}`);
    out[field] = value;
  }
  return out;
}

/** Memoise a store start so every test file in a worker shares it; a failure is retried next call. */
export function once<T>(start: () => Promise<T>): () => Promise<T> {
  let started: Promise<T> | undefined;
  return () => {
    started ??= start();
    started.catch(() => {
      started = undefined;
    });
    return started;
  };
}
