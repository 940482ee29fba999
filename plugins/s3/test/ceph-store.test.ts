// The test store itself: scripts/stores/ceph.sh through ensureCeph. The same
// gateway speaks Swift (v1 auth) for the Swift plugin's tests.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureCeph, type CephEnv } from '@nbdts/testkit';

const SCRIPT = fileURLToPath(new URL('../../../scripts/stores/ceph.sh', import.meta.url));

describe('ceph.sh test store', () => {
  let env: CephEnv;
  beforeAll(async () => {
    env = await ensureCeph();
  });

  it('is running, and start again is a quick no-op', () => {
    const t0 = Date.now();
    execFileSync('bash', [SCRIPT, 'start'], { stdio: 'pipe' });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(() => execFileSync('bash', [SCRIPT, 'status'], { stdio: 'pipe' })).not.toThrow();
  });

  it('answers Swift v1 auth with a storage URL on the same gateway', async () => {
    const auth = await fetch(env.swiftAuthUrl, {
      headers: { 'X-Auth-User': env.swiftUser, 'X-Auth-Key': env.swiftKey },
    });
    expect(auth.status).toBeLessThan(300);
    const storageUrl = auth.headers.get('x-storage-url')!;
    const token = auth.headers.get('x-auth-token')!;
    expect(storageUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/swift\/v1$/);
    const container = `${storageUrl}/nbdts-swift-probe`;
    expect((await fetch(container, { method: 'PUT', headers: { 'X-Auth-Token': token } })).status).toBeLessThan(300);
    const obj = await fetch(`${container}/hello`, { method: 'PUT', headers: { 'X-Auth-Token': token }, body: 'hi' });
    expect(obj.status).toBe(201);
    expect(await (await fetch(`${container}/hello`, { headers: { 'X-Auth-Token': token } })).text()).toBe('hi');
    await fetch(`${container}/hello`, { method: 'DELETE', headers: { 'X-Auth-Token': token } });
    await fetch(container, { method: 'DELETE', headers: { 'X-Auth-Token': token } });
  });
});
