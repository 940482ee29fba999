import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '@nbdts/plugin-api';
import { StoreError } from '@nbdts/objstore';
import {
  SwiftConnection,
  SwiftContainerStore,
  V1Auth,
  V3Auth,
  createAuthenticator,
  type Credentials,
} from '../src/client/index.ts';
import { ensureSwift, localServer, removeContainer, uniqueName, type SwiftEnv } from './helpers.ts';

/**
 * A fake Keystone in front of the real test Swift: it checks the request
 * body, then hands out a real tempauth token and a catalog whose endpoints
 * point at the real account, so the whole path (auth, catalog, Swift) runs.
 */
let env: SwiftEnv;
let real: Credentials;
let keystone: Awaited<ReturnType<typeof localServer>>;
const seen: { path: string; body: Record<string, unknown> }[] = [];
let store: SwiftContainerStore;
const expires = new Date(Date.now() + 3600_000).toISOString();

/** Walk into parsed JSON: at(body, 'auth', 'scope'). */
function at(o: unknown, ...path: string[]): unknown {
  for (const k of path) o = o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined;
  return o;
}

function v3Catalog(url: string) {
  return [
    {
      type: 'identity',
      endpoints: [{ interface: 'public', region: 'RegionOne', region_id: 'RegionOne', url: 'http://x/v3' }],
    },
    {
      type: 'object-store',
      name: 'swift',
      endpoints: [
        { interface: 'public', region: 'RegionOne', region_id: 'RegionOne', url: 'http://127.0.0.1:9/wrong-region' },
        { interface: 'admin', region: 'RegionTwo', region_id: 'r2', url: 'http://127.0.0.1:9/admin' },
        { interface: 'public', region: 'RegionTwo', region_id: 'r2', url },
      ],
    },
  ];
}

beforeAll(async () => {
  env = await ensureSwift();
  real = await new V1Auth(env.authUrl, env.user, new Secret(env.key)).authenticate();
  keystone = await localServer((req, res, text) => {
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    seen.push({ path: req.url ?? '', body });
    const password =
      at(body, 'auth', 'identity', 'password', 'user', 'password') ??
      at(body, 'auth', 'passwordCredentials', 'password') ??
      at(body, 'auth', 'identity', 'application_credential', 'secret');
    if (password !== 'right') {
      res
        .writeHead(401, { 'Content-Type': 'application/json' })
        .end('{"error":{"message":"The request you have made requires authentication."}}');
      return;
    }
    if (req.url === '/v3/auth/tokens') {
      res
        .writeHead(201, { 'X-Subject-Token': real.token.reveal(), 'Content-Type': 'application/json' })
        .end(JSON.stringify({ token: { expires_at: expires, catalog: v3Catalog(real.storageUrl) } }));
    } else if (req.url === '/v2.0/tokens') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(
        JSON.stringify({
          access: {
            token: { id: real.token.reveal(), expires },
            serviceCatalog: [
              {
                type: 'object-store',
                endpoints: [{ region: 'RegionTwo', publicURL: real.storageUrl, internalURL: 'http://127.0.0.1:9/int' }],
              },
            ],
          },
        }),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  store = new SwiftContainerStore(
    new SwiftConnection(new V1Auth(env.authUrl, env.user, new Secret(env.key))),
    uniqueName('ks'),
  );
  await store.create({ 'Swiftnbd-Version': '1' });
});

afterAll(async () => {
  await keystone.close();
  await removeContainer(store);
});

function through(opts: Parameters<typeof createAuthenticator>[0]): SwiftContainerStore {
  return new SwiftContainerStore(new SwiftConnection(createAuthenticator(opts)), store.container);
}

describe('Keystone v3', () => {
  it('authenticates with a password, scopes to the project and picks the endpoint by region and interface', async () => {
    const s = through({
      authUrl: `${keystone.url}/v3`,
      username: 'demo',
      password: new Secret('right'),
      projectName: 'demo-project',
      userDomainName: 'users',
      region: 'r2',
    });
    expect(await s.getContainerMeta()).toHaveProperty('swiftnbd-version', '1');
    const body = seen.at(-1)!.body;
    expect(at(body, 'auth', 'identity', 'methods')).toEqual(['password']);
    expect(at(body, 'auth', 'identity', 'password', 'user')).toEqual({
      name: 'demo',
      domain: { name: 'users' },
      password: 'right',
    });
    // The project's domain defaults to the user's.
    expect(at(body, 'auth', 'scope')).toEqual({ project: { name: 'demo-project', domain: { name: 'users' } } });
    const creds = await s.conn.credentials();
    expect(creds.expiresAt).toBe(Date.parse(expires));
  });

  it('matches region= against region names too, and uses ids when given', async () => {
    const s = through({
      authUrl: `${keystone.url}/v3/`,
      userId: 'u-123',
      password: new Secret('right'),
      projectId: 'p-9',
      region: 'RegionTwo',
    });
    expect(await s.getContainerMeta()).toHaveProperty('swiftnbd-version', '1');
    const body = seen.at(-1)!.body;
    expect(at(body, 'auth', 'identity', 'password', 'user')).toEqual({ id: 'u-123', password: 'right' });
    expect(at(body, 'auth', 'scope')).toEqual({ project: { id: 'p-9' } });
  });

  it('explains when no endpoint matches', async () => {
    const s = through({
      authUrl: `${keystone.url}/v3`,
      username: 'demo',
      password: new Secret('right'),
      region: 'Nowhere',
    });
    const err = await s.getContainerMeta().catch((e: unknown) => e);
    expect((err as StoreError).kind).toBe('fatal');
    expect((err as Error).message).toMatch(
      /no object-store endpoint for interface public in region Nowhere.*public@RegionOne/,
    );
  });

  it('sends an application credential without a scope', async () => {
    const s = through({
      authUrl: `${keystone.url}/v3`,
      applicationCredentialId: 'ac-1',
      applicationCredentialSecret: new Secret('right'),
      region: 'r2',
    });
    expect(await s.getContainerMeta()).toHaveProperty('swiftnbd-version', '1');
    const body = seen.at(-1)!.body;
    expect(body).toEqual({
      auth: {
        identity: { methods: ['application_credential'], application_credential: { id: 'ac-1', secret: 'right' } },
      },
    });
  });

  it('turns a refused password into an auth error without the password in it', async () => {
    const auth = new V3Auth(`${keystone.url}/v3`, { username: 'demo', password: new Secret('wrong-one') });
    const err = await auth.authenticate().catch((e: unknown) => e);
    expect((err as StoreError).kind).toBe('auth');
    expect((err as Error).message).toMatch(/credentials refused \(HTTP 401\)/);
    expect((err as Error).message).not.toContain('wrong-one');
  });
});

describe('Keystone v2', () => {
  it('authenticates with tenantName and uses the publicURL', async () => {
    const s = through({
      authUrl: `${keystone.url}/v2.0`,
      username: 'demo',
      password: new Secret('right'),
      projectName: 'tenant-a',
    });
    expect(await s.getContainerMeta()).toHaveProperty('swiftnbd-version', '1');
    const body = seen.at(-1)!.body;
    expect(body).toEqual({
      auth: { passwordCredentials: { username: 'demo', password: 'right' }, tenantName: 'tenant-a' },
    });
  });

  it('honours interface=internal', async () => {
    const s = through({
      authUrl: `${keystone.url}/v2.0`,
      username: 'demo',
      password: new Secret('right'),
      projectName: 't',
      interface: 'internal',
    });
    expect((await s.conn.credentials()).storageUrl).toBe('http://127.0.0.1:9/int');
  });
});
