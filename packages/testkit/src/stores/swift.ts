import { once, parseStoreEnv, requireVars, runStoreScript, storeScript } from './script.ts';

export { parseStoreEnv };

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

const SCRIPT = storeScript('swift');

/**
 * Start the local Swift (scripts/stores/swift.sh start: a no-op when it is
 * already running) and return how to reach it. Call it in beforeAll; the store
 * is left running for the next test file (scripts/test.sh stops it).
 */
export const ensureSwift: () => Promise<SwiftEnv> = once(async () => {
  const vars = parseStoreEnv(await runStoreScript(SCRIPT, 'start', 120_000));
  return requireVars(
    vars,
    {
      authUrl: 'NBDTS_SWIFT_AUTH_URL',
      user: 'NBDTS_SWIFT_USER',
      key: 'NBDTS_SWIFT_KEY',
      user2: 'NBDTS_SWIFT_USER2',
      key2: 'NBDTS_SWIFT_KEY2',
      s3Endpoint: 'NBDTS_S3_ENDPOINT',
      s3AccessKey: 'NBDTS_S3_ACCESS_KEY',
      s3SecretKey: 'NBDTS_S3_SECRET_KEY',
    },
    `${SCRIPT} start`,
  );
});
