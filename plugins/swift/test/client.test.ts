import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '@nbdts/plugin-api';
import { StoreError } from '@nbdts/objstore';
import {
  SwiftConnection,
  SwiftContainerStore,
  StaticAuth,
  V1Auth,
  createAuthenticator,
  guessAuthVersion,
  type Authenticator,
  type Credentials,
} from '../src/client/index.ts';
import {
  closedPort,
  ensureSwift,
  localServer,
  removeContainer,
  uniqueName,
  v1Connection,
  type SwiftEnv,
} from './helpers.ts';

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StoreError) return err.kind;
    throw err;
  }
  return 'no error';
}

let env: SwiftEnv;
let conn: SwiftConnection;
let store: SwiftContainerStore;

beforeAll(async () => {
  env = await ensureSwift();
  conn = v1Connection(env);
  store = new SwiftContainerStore(conn, uniqueName('client'), { listLimit: 3 });
  await store.create();
});

afterAll(async () => {
  await removeContainer(store);
});

describe('auth v1 (tempauth)', () => {
  it('returns the account URL and a token with an expiry', async () => {
    const creds = await new V1Auth(env.authUrl, env.user, new Secret(env.key)).authenticate();
    expect(creds.storageUrl).toMatch(/\/v1\/AUTH_test$/);
    expect(creds.token.reveal()).toMatch(/^AUTH_tk/);
    expect(creds.expiresAt).toBeGreaterThan(Date.now());
    // The token never prints.
    expect(`${creds.token}`).toBe('[secret]');
    expect(JSON.stringify(creds)).not.toContain(creds.token.reveal());
  });

  it('refuses bad credentials with an auth error that names the user but not the password', async () => {
    const err = await new V1Auth(env.authUrl, env.user, new Secret('wrong-password'))
      .authenticate()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).kind).toBe('auth');
    expect((err as StoreError).message).toContain(env.user);
    expect((err as StoreError).message).not.toContain('wrong-password');
  });

  it('reports an unreachable auth URL as transient', async () => {
    const port = await closedPort();
    const auth = new V1Auth(`http://127.0.0.1:${port}/auth/v1.0`, env.user, new Secret(env.key));
    expect(await kindOf(auth.authenticate())).toBe('transient');
  });

  it('reports a server that does not answer in time as transient', async () => {
    const silent = await localServer(() => {
      /* never answers */
    });
    try {
      const auth = new V1Auth(`${silent.url}/auth/v1.0`, env.user, new Secret(env.key), 300);
      const err = await auth.authenticate().catch((e: unknown) => e);
      expect((err as StoreError).kind).toBe('transient');
      expect((err as StoreError).message).toMatch(/no answer within 0.3 s/);
    } finally {
      await silent.close();
    }
  });
});

describe('objects', () => {
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));

  it('puts with the MD5 as ETag and gets the object back', async () => {
    const etag = await store.put('disk.part/00000000', data, { md5: md5(data), metadata: { purpose: 'test' } });
    expect(etag).toBe(md5(data));
    expect(await store.get('disk.part/00000000')).toEqual(data);
  });

  it('reads ranges (206), clips at the end and answers empty past it', async () => {
    expect(await store.get('disk.part/00000000', { offset: 100, length: 50 })).toEqual(data.subarray(100, 150));
    expect(await store.get('disk.part/00000000', { offset: 4990, length: 100 })).toEqual(data.subarray(4990));
    expect((await store.get('disk.part/00000000', { offset: 6000, length: 10 }))!.length).toBe(0);
  });

  it('heads size, etag and metadata; missing objects are null', async () => {
    const info = await store.head('disk.part/00000000');
    expect(info).toMatchObject({
      key: 'disk.part/00000000',
      size: 5000,
      etag: md5(data),
      metadata: { purpose: 'test' },
    });
    expect(await store.head('disk.part/99999999')).toBeNull();
    expect(await store.get('disk.part/99999999')).toBeNull();
  });

  it('lets Swift reject a body whose MD5 does not match (transient: send it again)', async () => {
    expect(await kindOf(store.put('bad', data, { md5: md5(Buffer.from('other')) }))).toBe('transient');
    expect(await store.head('bad')).toBeNull();
  });

  it('If-None-Match: * creates once, then fails with precondition', async () => {
    const lock = Buffer.from('owner-1');
    await store.put('lock', lock, { md5: md5(lock), ifNoneMatch: true });
    const other = Buffer.from('owner-2');
    expect(await kindOf(store.put('lock', other, { md5: md5(other), ifNoneMatch: true }))).toBe('precondition');
    expect(await store.get('lock')).toEqual(lock);
  });

  it('deletes, and deleting a missing object is fine', async () => {
    await store.delete('lock');
    expect(await store.head('lock')).toBeNull();
    await store.delete('lock');
  });

  it('handles names that need escaping', async () => {
    const name = 'odd name/ü?#%&+';
    const b = Buffer.from('x');
    await store.put(name, b, { md5: md5(b) });
    expect(await store.get(name)).toEqual(b);
    await store.delete(name);
  });
});

describe('listing', () => {
  it('follows marker pagination (page size 3) and honours the prefix', async () => {
    const keys = Array.from({ length: 8 }, (_, i) => `page/${String(i).padStart(8, '0')}`);
    const b = Buffer.from('p');
    await Promise.all(keys.map((k) => store.put(k, b, { md5: md5(b) })));
    await store.put('pagination-other', b, { md5: md5(b) });
    const got: string[] = [];
    for await (const o of store.list('page/')) {
      got.push(o.key);
      expect(o.size).toBe(1);
      expect(o.etag).toBe(md5(b));
    }
    expect(got).toEqual(keys);
  });
});

describe('container metadata', () => {
  it('sets, reads and removes X-Container-Meta-* keys without touching others', async () => {
    await store.setContainerMeta({ 'swiftnbd-version': '1', 'swiftnbd-objects': '16' });
    expect(await store.getContainerMeta()).toMatchObject({ 'swiftnbd-version': '1', 'swiftnbd-objects': '16' });
    await store.setContainerMeta({ 'swiftnbd-objects': null });
    const meta = await store.getContainerMeta();
    expect(meta['swiftnbd-objects']).toBeUndefined();
    expect(meta['swiftnbd-version']).toBe('1');
    const info = await store.info();
    expect(info.objectCount).toBeGreaterThan(0);
  });

  it('reports a missing container as missing-container', async () => {
    const gone = new SwiftContainerStore(conn, uniqueName('missing'));
    expect(await kindOf(gone.getContainerMeta())).toBe('missing-container');
    expect(await kindOf(gone.setContainerMeta({ a: 'b' }))).toBe('missing-container');
    expect(
      await kindOf(
        (async () => {
          for await (const _ of gone.list('')) {
            /* none */
          }
        })(),
      ),
    ).toBe('missing-container');
    const b = Buffer.from('x');
    expect(await kindOf(gone.put('k', b, { md5: md5(b) }))).toBe('missing-container');
  });

  it("lists the account's containers", async () => {
    const names: string[] = [];
    for await (const c of conn.listContainers({ prefix: 'nbdts-client-', limit: 2 })) names.push(c.name);
    expect(names).toContain(store.container);
  });
});

describe('tokens', () => {
  it('authenticates again once when Swift answers 401, then succeeds', async () => {
    const real = new V1Auth(env.authUrl, env.user, new Secret(env.key));
    let calls = 0;
    // The first token is one Swift has never issued, as after a token expired or was revoked.
    const flaky: Authenticator = {
      description: 'flaky',
      canRefresh: true,
      async authenticate(): Promise<Credentials> {
        calls++;
        const c = await real.authenticate();
        return calls === 1 ? { ...c, token: new Secret('AUTH_tk00000000000000000000000000000000') } : c;
      },
    };
    const s = new SwiftContainerStore(new SwiftConnection(flaky), store.container);
    expect(await s.getContainerMeta()).toHaveProperty('swiftnbd-version', '1');
    expect(calls).toBe(2);
  });

  it('renews a token that is about to expire before using it', async () => {
    const real = new V1Auth(env.authUrl, env.user, new Secret(env.key));
    let calls = 0;
    const shortLived: Authenticator = {
      description: 'short',
      canRefresh: true,
      async authenticate(): Promise<Credentials> {
        calls++;
        return { ...(await real.authenticate()), expiresAt: Date.now() + 1000 };
      },
    };
    const c = new SwiftConnection(shortLived);
    await c.credentials();
    await c.credentials();
    expect(calls).toBe(2);
  });

  it('turns a refused fixed token into an auth error without retrying', async () => {
    const creds = await new V1Auth(env.authUrl, env.user, new Secret(env.key)).authenticate();
    const s = new SwiftContainerStore(
      new SwiftConnection(new StaticAuth(creds.storageUrl, new Secret('AUTH_tkbogus'))),
      store.container,
    );
    const err = await s.getContainerMeta().catch((e: unknown) => e);
    expect((err as StoreError).kind).toBe('auth');
    expect((err as StoreError).status).toBe(401);
    // A good fixed token works (storage-url= + token=).
    const ok = new SwiftContainerStore(
      new SwiftConnection(new StaticAuth(creds.storageUrl, creds.token)),
      store.container,
    );
    expect(await ok.getContainerMeta()).toHaveProperty('swiftnbd-version', '1');
  });

  it("gives 403 for another account's container as an auth error", async () => {
    const first = await new V1Auth(env.authUrl, env.user, new Secret(env.key)).authenticate();
    const second = await new V1Auth(env.authUrl, env.user2, new Secret(env.key2)).authenticate();
    const intruder = new SwiftContainerStore(
      new SwiftConnection(new StaticAuth(first.storageUrl, second.token)),
      store.container,
    );
    const err = await intruder.getContainerMeta().catch((e: unknown) => e);
    expect((err as StoreError).kind).toBe('auth');
    expect((err as StoreError).status).toBe(403);
  });
});

describe('error classification', () => {
  it('treats 5xx, 429 and 408 as transient, 404 on the container as missing-container, other 4xx as fatal', async () => {
    let status = 503;
    const fake = await localServer((_req, res) => {
      res.writeHead(status).end('slow down');
    });
    try {
      const s = new SwiftContainerStore(
        new SwiftConnection(new StaticAuth(`${fake.url}/v1/AUTH_x`, new Secret('t'))),
        'c',
      );
      const b = Buffer.from('x');
      for (const [code, kind] of [
        [503, 'transient'],
        [500, 'transient'],
        [429, 'transient'],
        [408, 'transient'],
        [404, 'missing-container'],
        [400, 'fatal'],
        [409, 'fatal'],
      ] as const) {
        status = code;
        expect(`${code} ${await kindOf(s.put('k', b, { md5: md5(b) }))}`).toBe(`${code} ${kind}`);
      }
      status = 502;
      const err = await s.get('k').catch((e: unknown) => e);
      expect((err as StoreError).message).toMatch(/GET k in c: HTTP 502 \(slow down\)/);
    } finally {
      await fake.close();
    }
  });

  it('treats a connection reset as transient', async () => {
    const rude = await localServer((req) => {
      req.socket.destroy();
    });
    try {
      const s = new SwiftContainerStore(
        new SwiftConnection(new StaticAuth(`${rude.url}/v1/AUTH_x`, new Secret('t'))),
        'c',
      );
      expect(await kindOf(s.head('k'))).toBe('transient');
    } finally {
      await rude.close();
    }
  });
});

describe('choosing the authentication', () => {
  it('guesses the version from the URL', () => {
    expect(guessAuthVersion('http://h:8080/auth/v1.0')).toBe(1);
    expect(guessAuthVersion('https://k:5000/v2.0')).toBe(2);
    expect(guessAuthVersion('https://k:5000/v3/')).toBe(3);
    expect(guessAuthVersion('https://k/identity/v3/auth/tokens')).toBe(3);
  });

  it('explains what is missing', () => {
    expect(() => createAuthenticator({})).toThrow(/auth-url=/);
    expect(() => createAuthenticator({ authUrl: 'http://h/auth/v1.0' })).toThrow(/username=/);
    expect(() => createAuthenticator({ authUrl: 'http://h/auth/v1.0', username: 'a:b' })).toThrow(/password=/);
    expect(() => createAuthenticator({ token: new Secret('t') })).toThrow(/storage-url=/);
    expect(() => createAuthenticator({ authUrl: 'http://h/auth/v1.0', applicationCredentialId: 'x' })).toThrow(/v3/);
  });
});
