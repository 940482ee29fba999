import { Secret } from '@nbdts/plugin-api';
import { StoreError, type HttpTransport } from '@nbdts/objstore';
import { send } from './http.ts';
import { statusError } from './errors.ts';

/** What authentication yields: where the account is and the token to use there. */
export interface Credentials {
  storageUrl: string;
  token: Secret;
  /** Epoch ms when the token stops working, when the auth service said. */
  expiresAt?: number;
}

export interface Authenticator {
  /** For logs: "tempauth v1 test:tester at http://..." (no secrets). */
  readonly description: string;
  /** False for a fixed token: a 401 cannot be cured by asking again. */
  readonly canRefresh: boolean;
  /** `transport`: the connection's sockets; without it a process-wide transport is used. */
  authenticate(signal?: AbortSignal, transport?: HttpTransport): Promise<Credentials>;
}

export type AuthVersion = 1 | 2 | 3;
export type EndpointInterface = 'public' | 'internal' | 'admin';

export interface AuthOptions {
  authUrl?: string;
  /** Guessed from authUrl when absent (…/v3 → 3, …/v2.0 → 2, else 1). */
  authVersion?: AuthVersion;
  /** v1: tempauth `account:user`; v2/v3: the user name. */
  username?: string;
  password?: Secret;
  userId?: string;
  userDomainName?: string;
  userDomainId?: string;
  /** v3 project (v2 tenant). */
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  region?: string;
  interface?: EndpointInterface;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: Secret;
  /** Skip authentication (with token) or override the catalog's endpoint (with credentials). */
  storageUrl?: string;
  token?: Secret;
  timeoutMs?: number;
}

/** The Keystone version a URL points at; tempauth-style URLs (…/auth/v1.0) are 1. */
export function guessAuthVersion(url: string): AuthVersion {
  const path = new URL(url).pathname.replace(/\/+$/, '');
  if (/\/v3(\/|$)/.test(path)) return 3;
  if (/\/v2\.0(\/|$)/.test(path)) return 2;
  return 1;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}

function expiryFromIso(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const t = Date.parse(text);
  return Number.isNaN(t) ? undefined : t;
}

function authFailed(what: string, status: number, body: string, hint: string): StoreError {
  if (status === 401 || status === 403) {
    return new StoreError('auth', `${what}: credentials refused (HTTP ${status}): ${hint}`, status);
  }
  return statusError(what, status, body);
}

function parseJson(what: string, body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new StoreError('transient', `${what}: the auth service sent a response that is not JSON`);
  }
}

/** tempauth/swauth style: GET with X-Auth-User / X-Auth-Key. */
export class V1Auth implements Authenticator {
  readonly canRefresh = true;
  readonly description: string;
  readonly #url: string;
  readonly #user: string;
  readonly #key: Secret;
  readonly #timeoutMs: number | undefined;

  constructor(url: string, user: string, key: Secret, timeoutMs?: number) {
    this.#url = url;
    this.#user = user;
    this.#key = key;
    this.#timeoutMs = timeoutMs;
    this.description = `auth v1 user ${user} at ${url}`;
  }

  async authenticate(signal?: AbortSignal, transport?: HttpTransport): Promise<Credentials> {
    const what = `authenticating ${this.#user} at ${this.#url}`;
    const res = await send(
      {
        method: 'GET',
        url: this.#url,
        what,
        signal,
        timeoutMs: this.#timeoutMs,
        headers: { 'X-Auth-User': this.#user, 'X-Auth-Key': this.#key.reveal() },
      },
      transport,
    );
    if (res.status < 200 || res.status >= 300) {
      throw authFailed(
        what,
        res.status,
        res.body.toString('utf8'),
        'check username (account:user for tempauth) and password',
      );
    }
    const storageUrl = res.headers['x-storage-url'];
    const token = res.headers['x-auth-token'] ?? res.headers['x-storage-token'];
    if (!storageUrl || !token) {
      throw new StoreError(
        'fatal',
        `${what}: the answer has no X-Storage-Url/X-Auth-Token: is this a Swift v1 auth URL?`,
      );
    }
    const ttl = Number(res.headers['x-auth-token-expires']);
    return {
      storageUrl,
      token: new Secret(token),
      expiresAt: Number.isFinite(ttl) && ttl > 0 ? Date.now() + ttl * 1000 : undefined,
    };
  }
}

interface CatalogEndpoint {
  url: string;
  regions: string[];
  interface?: string;
}

/** Pick the object-store endpoint for region/interface, or explain what there is. */
export function pickEndpoint(
  endpoints: CatalogEndpoint[],
  region: string | undefined,
  iface: EndpointInterface,
  what: string,
): string {
  const matches = endpoints.filter(
    (e) => e.interface === iface && (region === undefined || e.regions.includes(region)),
  );
  if (matches.length > 0) return matches[0]!.url;
  const available = endpoints.map((e) => `${e.interface ?? '?'}@${e.regions[0] ?? '?'}`).join(', ') || 'none';
  throw new StoreError(
    'fatal',
    `${what}: no object-store endpoint for interface ${iface}${region ? ` in region ${region}` : ''} ` +
      `(the catalog has: ${available}); set region= or interface=`,
  );
}

/** Keystone v2.0 (tenant + password). */
export class V2Auth implements Authenticator {
  readonly canRefresh = true;
  readonly description: string;
  readonly #url: string;
  readonly #o: AuthOptions;

  constructor(authUrl: string, o: AuthOptions) {
    this.#o = o;
    const base = trimSlash(authUrl);
    this.#url = base.endsWith('/tokens') ? base : /\/v2\.0$/.test(base) ? `${base}/tokens` : `${base}/v2.0/tokens`;
    this.description = `keystone v2 user ${o.username ?? o.userId} at ${authUrl}`;
  }

  async authenticate(signal?: AbortSignal, transport?: HttpTransport): Promise<Credentials> {
    const o = this.#o;
    const what = `authenticating ${o.username ?? o.userId} at ${this.#url}`;
    const auth: Record<string, unknown> = {
      passwordCredentials: { username: o.username ?? o.userId, password: o.password?.reveal() ?? '' },
    };
    if (o.projectId) auth.tenantId = o.projectId;
    else if (o.projectName) auth.tenantName = o.projectName;
    const res = await send(
      {
        method: 'POST',
        url: this.#url,
        what,
        signal,
        timeoutMs: o.timeoutMs,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ auth }),
      },
      transport,
    );
    if (res.status !== 200) {
      throw authFailed(
        what,
        res.status,
        res.body.toString('utf8'),
        'check username, password and project-name (tenant)',
      );
    }
    const access = (parseJson(what, res.body) as { access?: Record<string, unknown> }).access ?? {};
    const token = access.token as { id?: string; expires?: string } | undefined;
    if (!token?.id) throw new StoreError('fatal', `${what}: the answer has no token`);
    const catalog =
      (access.serviceCatalog as { type?: string; endpoints?: Record<string, string>[] }[] | undefined) ?? [];
    const endpoints: CatalogEndpoint[] = [];
    for (const svc of catalog.filter((s) => s.type === 'object-store')) {
      for (const e of svc.endpoints ?? []) {
        for (const iface of ['public', 'internal', 'admin'] as const) {
          const url = e[`${iface}URL`];
          if (url) endpoints.push({ url, regions: e.region ? [e.region] : [], interface: iface });
        }
      }
    }
    // storage-url= replaces the catalog: do not insist on an endpoint the user will not use.
    const storageUrl = o.storageUrl ?? pickEndpoint(endpoints, o.region, o.interface ?? 'public', what);
    return { storageUrl, token: new Secret(token.id), expiresAt: expiryFromIso(token.expires) };
  }
}

/** Keystone v3: password (names or ids) or application credential. */
export class V3Auth implements Authenticator {
  readonly canRefresh = true;
  readonly description: string;
  readonly #url: string;
  readonly #o: AuthOptions;

  constructor(authUrl: string, o: AuthOptions) {
    this.#o = o;
    const base = trimSlash(authUrl);
    this.#url = base.endsWith('/auth/tokens')
      ? base
      : /\/v3$/.test(base)
        ? `${base}/auth/tokens`
        : `${base}/v3/auth/tokens`;
    const who = o.applicationCredentialId ?? o.applicationCredentialName ?? o.username ?? o.userId;
    this.description = `keystone v3 ${o.applicationCredentialId || o.applicationCredentialName ? 'application credential' : 'user'} ${who} at ${authUrl}`;
  }

  /** The JSON body of POST /v3/auth/tokens. Exported for tests: secrets are revealed here only. */
  requestBody(): unknown {
    const o = this.#o;
    const domain = (name?: string, id?: string): Record<string, string> => (id ? { id } : { name: name ?? 'Default' });
    const user: Record<string, unknown> = o.userId
      ? { id: o.userId }
      : { name: o.username, domain: domain(o.userDomainName, o.userDomainId) };
    if (o.applicationCredentialId || o.applicationCredentialName) {
      const cred: Record<string, unknown> = { secret: o.applicationCredentialSecret?.reveal() ?? '' };
      if (o.applicationCredentialId) cred.id = o.applicationCredentialId;
      else {
        cred.name = o.applicationCredentialName;
        cred.user = user;
      }
      // An application credential is already scoped: Keystone refuses a scope with it.
      return { auth: { identity: { methods: ['application_credential'], application_credential: cred } } };
    }
    const body: Record<string, unknown> = {
      identity: { methods: ['password'], password: { user: { ...user, password: o.password?.reveal() ?? '' } } },
    };
    if (o.projectId) body.scope = { project: { id: o.projectId } };
    else if (o.projectName) {
      body.scope = {
        project: {
          name: o.projectName,
          domain: domain(o.projectDomainName ?? (o.projectDomainId ? undefined : o.userDomainName), o.projectDomainId),
        },
      };
    }
    return { auth: body };
  }

  async authenticate(signal?: AbortSignal, transport?: HttpTransport): Promise<Credentials> {
    const o = this.#o;
    const what = `authenticating ${this.description}`;
    const res = await send(
      {
        method: 'POST',
        url: this.#url,
        what,
        signal,
        timeoutMs: o.timeoutMs,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(this.requestBody()),
      },
      transport,
    );
    if (res.status !== 201 && res.status !== 200) {
      throw authFailed(
        what,
        res.status,
        res.body.toString('utf8'),
        'check username/user-domain-name, password and project-name/project-domain-name (or the application credential)',
      );
    }
    const tokenId = res.headers['x-subject-token'];
    if (!tokenId) throw new StoreError('fatal', `${what}: the answer has no X-Subject-Token`);
    const token = (parseJson(what, res.body) as { token?: Record<string, unknown> }).token ?? {};
    const catalog = (token.catalog as { type?: string; endpoints?: Record<string, string>[] }[] | undefined) ?? [];
    // v3 endpoints name their region twice (region, region_id): region= may be either.
    const endpoints: CatalogEndpoint[] = catalog
      .filter((svc) => svc.type === 'object-store')
      .flatMap((svc) =>
        (svc.endpoints ?? []).map((e) => ({
          url: e.url ?? '',
          interface: e.interface,
          regions: [e.region_id, e.region].filter((r): r is string => typeof r === 'string'),
        })),
      )
      .filter((e) => e.url);
    // storage-url= replaces the catalog: do not insist on an endpoint the user will not use.
    const storageUrl = o.storageUrl ?? pickEndpoint(endpoints, o.region, o.interface ?? 'public', what);
    return { storageUrl, token: new Secret(tokenId), expiresAt: expiryFromIso(token.expires_at) };
  }
}

/** A token given on the command line: no refresh possible. */
export class StaticAuth implements Authenticator {
  readonly canRefresh = false;
  readonly description: string;
  readonly #storageUrl: string;
  readonly #token: Secret;

  constructor(storageUrl: string, token: Secret) {
    this.#storageUrl = storageUrl;
    this.#token = token;
    this.description = `fixed token for ${storageUrl}`;
  }
  authenticate(): Promise<Credentials> {
    return Promise.resolve({ storageUrl: this.#storageUrl, token: this.#token });
  }
}

/** Overrides the storage URL the auth service returned (storage-url= together with credentials). */
class StorageUrlOverride implements Authenticator {
  readonly canRefresh: boolean;
  readonly description: string;
  readonly #inner: Authenticator;
  readonly #storageUrl: string;

  constructor(inner: Authenticator, storageUrl: string) {
    this.#inner = inner;
    this.#storageUrl = storageUrl;
    this.canRefresh = inner.canRefresh;
    this.description = `${inner.description}, storage ${storageUrl}`;
  }
  async authenticate(signal?: AbortSignal, transport?: HttpTransport): Promise<Credentials> {
    return { ...(await this.#inner.authenticate(signal, transport)), storageUrl: this.#storageUrl };
  }
}

/**
 * Choose the authentication from the options, or explain what is missing.
 * Throws plain Errors with messages meant for users (callers wrap them in ConfigError).
 */
export function createAuthenticator(o: AuthOptions): Authenticator {
  if (o.token) {
    if (!o.storageUrl)
      throw new Error('token= needs storage-url= (the account URL, e.g. https://swift.example.com/v1/AUTH_project)');
    return new StaticAuth(o.storageUrl, o.token);
  }
  if (!o.authUrl) {
    throw new Error('no credentials: give auth-url= with username= and password= (or storage-url= with token=)');
  }
  const version = o.authVersion ?? guessAuthVersion(o.authUrl);
  const appCred = Boolean(o.applicationCredentialId || o.applicationCredentialName);
  let auth: Authenticator;
  if (version === 3 && appCred) {
    if (!o.applicationCredentialSecret)
      throw new Error('application-credential-id= needs application-credential-secret=');
    if (o.applicationCredentialName && !o.applicationCredentialId && !o.username && !o.userId) {
      throw new Error(
        'application-credential-name= needs username= (or user-id=) too; or use application-credential-id=',
      );
    }
    auth = new V3Auth(o.authUrl, o);
  } else {
    if (appCred)
      throw new Error('application credentials need Keystone v3: use an auth-url ending in /v3 or auth-version=3');
    if (!o.username && !o.userId) throw new Error('username= is required with auth-url=');
    if (!o.password)
      throw new Error('password= is required with username= (use password=- to be prompted, or password=+FILE)');
    if (version === 1) {
      if (!o.username) throw new Error('auth v1 needs username= (account:user for tempauth), not user-id=');
      auth = new V1Auth(o.authUrl, o.username, o.password, o.timeoutMs);
    } else if (version === 2) {
      auth = new V2Auth(o.authUrl, o);
    } else {
      auth = new V3Auth(o.authUrl, o);
    }
  }
  return o.storageUrl ? new StorageUrlOverride(auth, o.storageUrl) : auth;
}
