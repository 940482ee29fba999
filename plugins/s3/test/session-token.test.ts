// session-token= against a real STS: RGW's AssumeRole hands out temporary
// credentials (access key, secret key, session token), as AWS does for roles,
// SSO and instance profiles. A split disk written and read with them; a
// token that is not the one issued is refused at start, in one line; and the
// token never shows in the server's output, even at debug level.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCeph, nbdtsBin, run, runOk, startNbdts, tempDir, type CephEnv } from '@nbdts/testkit';
import type { S3Store } from '../src/s3-store.ts';
import { assumeRole, createBucket, removeBucket, uniqueBucket, type TemporaryCredentials } from './helpers.ts';

let env: CephEnv;
let store: S3Store;
let temp: TemporaryCredentials;
const dir = tempDir('nbdts-s3-sts-');

beforeAll(async () => {
  env = await ensureCeph();
  store = await createBucket(env, uniqueBucket('sts'));
  temp = await assumeRole(env);
});
afterAll(async () => {
  if (store) await removeBucket(store);
  dir.cleanup();
});

/** The temporary credentials travel in the environment (env:NAME), the way a user passes secrets. */
function tempEnv(token = temp.sessionToken): Record<string, string> {
  return { STS_AK: temp.accessKeyId, STS_SK: temp.secretAccessKey, STS_TOKEN: token };
}
const tempParams = ['access-key=env:STS_AK', 'secret-key=env:STS_SK', 'session-token=env:STS_TOKEN'];

describe('nbdts s3 with temporary credentials (session-token=)', { timeout: 90_000 }, () => {
  it("the temporary credentials differ from the user's own", () => {
    expect(temp.accessKeyId).not.toBe(env.accessKey);
    expect(temp.sessionToken.length).toBeGreaterThan(20);
  });

  it('writes and reads a split disk; the token never appears in the log', async () => {
    const image = dir.join('src.img');
    writeFileSync(image, randomBytes(8 << 20));
    const args = [
      '-v',
      's3',
      `endpoint-url=${env.endpoint}`,
      `bucket=${store.bucket}`,
      'key=sts-disk',
      'size=8M',
      'object-size=1M',
      ...tempParams,
    ];
    const writer = await startNbdts(args, { env: tempEnv() });
    let log = '';
    try {
      await runOk('nbdcopy', ['--flush', image, writer.uri], { timeoutMs: 60_000 });
    } finally {
      await writer.stop();
      log += writer.stderr();
    }
    const reader = await startNbdts(['-r', ...args], { env: tempEnv() });
    try {
      await runOk('nbdcopy', [reader.uri, dir.join('back.img')], { timeoutMs: 60_000 });
    } finally {
      await reader.stop();
      log += reader.stderr();
    }
    await runOk('cmp', [image, dir.join('back.img')]);
    expect(log).toMatch(/debug|DEBUG|"level":20/); // the log did run at debug level
    expect(log).not.toContain(temp.sessionToken);
    expect(log).not.toContain(temp.secretAccessKey);
  });

  it('a session token that was not issued is refused at start, in one line', async () => {
    const forged = `${temp.sessionToken.slice(0, -8)}AAAAAAAA`;
    const r = await run(
      process.execPath,
      [
        nbdtsBin,
        '-U',
        dir.join('never.sock'),
        's3',
        `endpoint-url=${env.endpoint}`,
        `bucket=${store.bucket}`,
        'key=sts-disk',
        'size=8M',
        'object-size=1M',
        ...tempParams,
      ],
      { env: tempEnv(forged), timeoutMs: 60_000 },
    );
    expect(r.timedOut).toBe(false);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^nbdts: s3: /);
    expect(lines[0]).toMatch(/credential|denied|token|403|refused/i);
    expect(r.stderr).not.toContain(forged);
  });
});
