import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where the local test Swift answers, as printed by `scripts/stores/swift.sh env`. */
export interface SwiftEnv {
  /** tempauth v1 URL, e.g. http://127.0.0.1:8080/auth/v1.0 */
  authUrl: string;
  /** `account:user` of an admin of the first account (test:tester). */
  user: string;
  key: string;
  /** A second account's admin, to test isolation between accounts. */
  user2: string;
  key2: string;
  /** The same cluster through the s3api middleware. */
  s3Endpoint: string;
  s3AccessKey: string;
  s3SecretKey: string;
}

const SCRIPT = fileURLToPath(new URL('../../../../scripts/stores/swift.sh', import.meta.url));

/** Parse the `export NAME=value ...` line(s) the script prints. */
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

let started: Promise<SwiftEnv> | undefined;

/**
 * Start the local Swift (scripts/stores/swift.sh start: a no-op when it is
 * already running) and return how to reach it. Call it in beforeAll; the store
 * is left running for the next test file (scripts/test.sh stops it).
 */
export function ensureSwift(): Promise<SwiftEnv> {
  started ??= (async () => {
    let stdout: string;
    try {
      ({ stdout } = await run('bash', [SCRIPT, 'start'], { timeout: 120_000, maxBuffer: 1 << 20 }));
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`could not start the test Swift with ${SCRIPT} start: ${e.stderr?.trim() || e.message}\n` +
        `(install it with 'sudo ${SCRIPT} install')`, { cause: err });
    }
    const v = parseStoreEnv(stdout);
    const need = (name: string): string => {
      const value = v[name];
      if (value === undefined) throw new Error(`${SCRIPT} start did not print ${name}`);
      return value;
    };
    return {
      authUrl: need('NBDTS_SWIFT_AUTH_URL'),
      user: need('NBDTS_SWIFT_USER'),
      key: need('NBDTS_SWIFT_KEY'),
      user2: need('NBDTS_SWIFT_USER2'),
      key2: need('NBDTS_SWIFT_KEY2'),
      s3Endpoint: need('NBDTS_S3_ENDPOINT'),
      s3AccessKey: need('NBDTS_S3_ACCESS_KEY'),
      s3SecretKey: need('NBDTS_S3_SECRET_KEY'),
    };
  })();
  started.catch(() => { started = undefined; });
  return started;
}
