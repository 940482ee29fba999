import { once, parseStoreEnv, requireVars, runStoreScript, storeScript } from './script.ts';

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
  /** A role the test user may assume through RGW's STS (AssumeRole). */
  stsRoleArn: string;
}

const SCRIPT = storeScript('ceph');

/**
 * Install (as root) and start the local Ceph cluster (`ceph.sh start`, a no-op when it runs; the
 * script serialises parallel callers) and return how to reach its gateway.
 * Call it in beforeAll; the cluster stays up for the next test file.
 */
export const ensureCeph: () => Promise<CephEnv> = once(async () => {
  // As root (CI), install the Debian packages on first use: a no-op once they are there.
  if (process.getuid?.() === 0) await runStoreScript(SCRIPT, 'install', 600_000);
  await runStoreScript(SCRIPT, 'start', 180_000);
  const vars = parseStoreEnv(await runStoreScript(SCRIPT, 'env', 10_000));
  return requireVars(
    vars,
    {
      endpoint: 'NBDTS_RGW_ENDPOINT',
      accessKey: 'NBDTS_RGW_ACCESS_KEY',
      secretKey: 'NBDTS_RGW_SECRET_KEY',
      swiftAuthUrl: 'NBDTS_RGW_SWIFT_AUTH_URL',
      swiftUser: 'NBDTS_RGW_SWIFT_USER',
      swiftKey: 'NBDTS_RGW_SWIFT_KEY',
      stsRoleArn: 'NBDTS_RGW_STS_ROLE_ARN',
    },
    `${SCRIPT} env`,
  );
});
