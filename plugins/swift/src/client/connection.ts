import { HttpTransport, StoreError } from '@nbdts/objstore';
import type { Authenticator, Credentials } from './auth.ts';
import { DEFAULT_TIMEOUT_MS, type HttpResponse } from './http.ts';
import { statusError } from './errors.ts';

/** Ask for a new token this long before the old one expires, so no request races the expiry. */
const REFRESH_MARGIN_MS = 120_000;

export interface SwiftRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /** Omit for account-level requests. */
  container?: string;
  object?: string;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  body?: Buffer | string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** For error messages, e.g. "GET disk.part/00000001 in mynbd0". */
  what: string;
}

export interface ContainerSummary {
  name: string;
  count: number;
  bytes: number;
}

/** Encode an object name for a URL path: every byte escaped except the slashes that structure it. */
export function encodeName(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}

/**
 * An authenticated Swift account. Tokens are fetched lazily, shared by all
 * requests, renewed shortly before they expire and once more when Swift
 * answers 401. 401/403 that survive a renewal become StoreError('auth').
 */
export class SwiftConnection {
  readonly timeoutMs: number;
  /** Keep-alive sockets for this account (auth requests included). */
  readonly transport: HttpTransport;
  #creds: Credentials | undefined;
  #pending: Promise<Credentials> | undefined;

  /** `connections`: sockets per host; the default (32) exceeds the plugin's requests in flight, so none waits for a socket. */
  readonly auth: Authenticator;

  constructor(auth: Authenticator, options: { timeoutMs?: number; connections?: number } = {}) {
    this.auth = auth;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.transport = new HttpTransport({ connections: options.connections });
  }

  /** Close the sockets; requests made afterwards fail. */
  close(): Promise<void> {
    return this.transport.close();
  }

  get description(): string {
    return this.auth.description;
  }

  /** The account URL once authenticated (for messages). */
  get storageUrl(): string | undefined {
    return this.#creds?.storageUrl;
  }

  /** Current credentials, authenticating when there are none or they are about to expire. */
  async credentials(): Promise<Credentials> {
    const c = this.#creds;
    if (c && (c.expiresAt === undefined || c.expiresAt - Date.now() > REFRESH_MARGIN_MS)) return c;
    return this.#reauthenticate();
  }

  /**
   * One authentication at a time: concurrent requests wait for the same answer.
   * It runs under its own timeout, not the first caller's signal, so one
   * aborted request does not fail everyone waiting for the token.
   */
  #reauthenticate(): Promise<Credentials> {
    this.#pending ??= this.auth.authenticate(undefined, this.transport).then(
      (creds) => {
        this.#creds = creds;
        this.#pending = undefined;
        return creds;
      },
      (err: unknown) => {
        this.#pending = undefined;
        throw err;
      },
    );
    return this.#pending;
  }

  /** Forget `token` (Swift refused it) so the next request authenticates again. */
  #invalidate(token: Credentials): void {
    if (this.#creds === token) this.#creds = undefined;
  }

  /**
   * Send one request with the token. Returns any response except 401/403,
   * which are retried once with a fresh token and otherwise thrown as 'auth'.
   */
  async request(req: SwiftRequest): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const creds = await this.credentials();
      const res = await this.transport.request({
        method: req.method,
        url: this.#url(creds.storageUrl, req),
        headers: { ...req.headers, 'X-Auth-Token': creds.token.reveal() },
        body: req.body,
        signal: req.signal,
        timeoutMs: req.timeoutMs ?? this.timeoutMs,
        what: req.what,
      });
      if (res.status === 401 && attempt === 0 && this.auth.canRefresh) {
        this.#invalidate(creds);
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        const hint =
          res.status === 403
            ? 'the user may not access this container (check ACLs or the account)'
            : this.auth.canRefresh
              ? 'a fresh token was refused too'
              : 'the token= given has expired or is wrong';
        throw new StoreError('auth', `${req.what}: HTTP ${res.status}: ${hint}`, res.status);
      }
      return res;
    }
  }

  #url(storageUrl: string, req: SwiftRequest): string {
    let url = storageUrl.replace(/\/+$/, '');
    if (req.container !== undefined) url += `/${encodeURIComponent(req.container)}`;
    if (req.object !== undefined) url += `/${encodeName(req.object)}`;
    const q = Object.entries(req.query ?? {}).filter((kv): kv is [string, string | number] => kv[1] !== undefined);
    if (q.length > 0) url += `?${new URLSearchParams(q.map(([k, v]): [string, string] => [k, String(v)])).toString()}`;
    return url;
  }

  /** Account listing (every container, following pagination). */
  async *listContainers(
    options: { prefix?: string; limit?: number; signal?: AbortSignal } = {},
  ): AsyncIterable<ContainerSummary> {
    const limit = options.limit ?? 10_000;
    let marker: string | undefined;
    for (;;) {
      const res = await this.request({
        method: 'GET',
        query: { format: 'json', limit, marker, prefix: options.prefix },
        signal: options.signal,
        what: 'listing containers',
      });
      if (res.status === 204) return;
      if (res.status !== 200) throw statusError('listing containers', res.status, res.body.toString('utf8'));
      const page = JSON.parse(res.body.toString('utf8')) as ContainerSummary[];
      for (const c of page) yield { name: c.name, count: c.count, bytes: c.bytes };
      if (page.length < limit) return;
      marker = page[page.length - 1]!.name;
    }
  }

  /** Create a container (or update its metadata when it exists): PUT with X-Container-Meta-* headers. */
  async createContainer(name: string, meta: Record<string, string> = {}, signal?: AbortSignal): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta)) headers[`X-Container-Meta-${k}`] = v;
    const what = `creating container ${name}`;
    const res = await this.request({ method: 'PUT', container: name, headers, signal, what });
    if (res.status !== 201 && res.status !== 202) throw statusError(what, res.status, res.body.toString('utf8'));
  }

  /** Delete an empty container; a missing one is not an error. 409 means objects remain. */
  async deleteContainer(name: string, signal?: AbortSignal): Promise<void> {
    const what = `deleting container ${name}`;
    const res = await this.request({ method: 'DELETE', container: name, signal, what });
    if (res.status === 409) throw new StoreError('fatal', `${what}: it still has objects`, 409);
    if (res.status !== 204 && res.status !== 404) throw statusError(what, res.status, res.body.toString('utf8'));
  }
}
