import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '@nbdts/plugin-api';

/**
 * swiftnbd's secrets file: an INI file with one section per container
 *
 *   [mynbd0]
 *   username = test:tester
 *   password = testing
 *   authurl = http://127.0.0.1:8080/auth/v1.0
 *   read-only = 0
 *
 * plus our Keystone keys (auth-version, project-name, user-domain-name, ...).
 * Keys are matched case-insensitively with `_` and `-` alike; swiftnbd's
 * `authurl` is `auth-url`. A [DEFAULT] section applies to every container
 * (as in Python's ConfigParser).
 */
export type SecretsSection = Record<string, string>;

export interface SecretsFile {
  path: string;
  /** Container name -> its keys (kebab-case), in file order. */
  sections: Map<string, SecretsSection>;
  /** True when group or others may read the file. */
  exposed: boolean;
}

const ALIASES: Record<string, string> = {
  authurl: 'auth-url',
  'auth-version': 'auth-version',
  authversion: 'auth-version',
  user: 'username',
  key: 'password',
  'tenant-name': 'project-name',
  tenant: 'project-name',
  'tenant-id': 'project-id',
  readonly: 'read-only',
};

/** The keys a section may have (kebab-case, after aliases). */
export const SECTION_KEYS = new Set([
  'username',
  'password',
  'auth-url',
  'auth-version',
  'read-only',
  'user-id',
  'user-domain-name',
  'user-domain-id',
  'project-name',
  'project-id',
  'project-domain-name',
  'project-domain-id',
  'region',
  'interface',
  'application-credential-id',
  'application-credential-name',
  'application-credential-secret',
  'storage-url',
  'token',
]);

function normalizeKey(key: string): string {
  const k = key.trim().toLowerCase().replace(/_/g, '-');
  return ALIASES[k] ?? k;
}

export function parseSecrets(text: string, path = 'secrets file'): Map<string, SecretsSection> {
  const sections = new Map<string, SecretsSection>();
  const defaults: SecretsSection = {};
  let current: SecretsSection | undefined;
  let lastKey: string | undefined;
  text.split(/\r?\n/).forEach((raw, n) => {
    const line = raw.replace(/\s+$/, '');
    if (/^\s*([#;]|$)/.test(line)) return;
    // ConfigParser continuation: an indented line extends the previous value.
    if (/^\s/.test(line) && current && lastKey) {
      current[lastKey] += `\n${line.trim()}`;
      return;
    }
    const header = /^\[([^\]]+)\]$/.exec(line.trim());
    if (header) {
      const name = header[1]!.trim();
      if (name.toUpperCase() === 'DEFAULT') current = defaults;
      else {
        if (sections.has(name)) throw new ConfigError(`${path}:${n + 1}: section [${name}] appears twice`);
        current = {};
        sections.set(name, current);
      }
      lastKey = undefined;
      return;
    }
    const kv = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(line.trim());
    if (!kv) throw new ConfigError(`${path}:${n + 1}: expected 'key = value' or '[container]'`);
    if (!current) throw new ConfigError(`${path}:${n + 1}: '${kv[1]}' is outside any [container] section`);
    const key = normalizeKey(kv[1]!);
    if (!SECTION_KEYS.has(key)) {
      throw new ConfigError(`${path}:${n + 1}: unknown key '${kv[1]}' (known: ${[...SECTION_KEYS].join(', ')})`);
    }
    current[key] = kv[2]!;
    lastKey = key;
  });
  for (const [name, s] of sections) sections.set(name, { ...defaults, ...s });
  return sections;
}

export function readSecretsFile(path: string): SecretsFile {
  let text: string;
  let mode: number;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`secrets=${path}: cannot read it: ${(err as Error).message}`);
  }
  const sections = parseSecrets(text, path);
  if (sections.size === 0) throw new ConfigError(`secrets=${path}: no [container] sections`);
  return { path, sections, exposed: (mode & 0o077) !== 0 };
}
