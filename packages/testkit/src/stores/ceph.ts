import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where the local test Ceph RADOS Gateway answers, as `scripts/stores/ceph.sh env` prints it. */
export interface CephEnv {
  /** S3 endpoint, e.g. http://127.0.0.1:7480 (path-style). */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** The same gateway's Swift API: v1 auth URL (http://127.0.0.1:7480/auth/1.0). */
  swiftAuthUrl: string;
  /** `user:subuser` with a Swift key. */
  swiftUser: string;
  swiftKey: string;
}

const SCRIPT = fileURLToPath(new URL('../../../../scripts/stores/ceph.sh', import.meta.url));

function parseExports(text: string): Record<string, string> {
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

async function script(command: string, timeout: number): Promise<string> {
  try {
    const { stdout } = await run('bash', [SCRIPT, command], { timeout, maxBuffer: 1 << 20 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${SCRIPT} ${command} failed: ${e.stderr?.trim() || e.message}\n` +
      `(install Ceph with '${SCRIPT} install' as root)`, { cause: err });
  }
}

let started: Promise<CephEnv> | undefined;

/**
 * Install (as root) and start the local Ceph cluster (`ceph.sh start`, a no-op when it runs; the
 * script serialises parallel callers) and return how to reach its gateway.
 * Call it in beforeAll; the cluster stays up for the next test file.
 */
export function ensureCeph(): Promise<CephEnv> {
  started ??= (async () => {
    // As root (CI), install the Debian packages on first use: a no-op once they are there.
    if (process.getuid?.() === 0) await script('install', 600_000);
    await script('start', 180_000);
    const v = parseExports(await script('env', 10_000));
    const need = (name: string): string => {
      const value = v[name];
      if (value === undefined) throw new Error(`${SCRIPT} env did not print ${name}`);
      return value;
    };
    return {
      endpoint: need('NBDTS_RGW_ENDPOINT'),
      accessKey: need('NBDTS_RGW_ACCESS_KEY'),
      secretKey: need('NBDTS_RGW_SECRET_KEY'),
      swiftAuthUrl: need('NBDTS_RGW_SWIFT_AUTH_URL'),
      swiftUser: need('NBDTS_RGW_SWIFT_USER'),
      swiftKey: need('NBDTS_RGW_SWIFT_KEY'),
    };
  })();
  started.catch(() => { started = undefined; });
  return started;
}
