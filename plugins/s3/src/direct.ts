import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { HttpTransport, type TransportResponse } from '@nbdts/objstore';
import { clientSettings } from './client.ts';
import { EMPTY_SHA256, S3Signer, UNSIGNED_PAYLOAD } from './signer.ts';

/**
 * The object data path without the SDK: GET and PUT of objects as plain
 * HTTP requests on a lean transport, signed with SigV4. The SDK costs about a
 * millisecond of CPU per request (middleware, serialisation, body streams),
 * which on one event-loop thread caps throughput; everything else (HEAD,
 * LIST, DELETE, multipart, start-up checks) still goes through the SDK.
 *
 * URLs are not guessed: the SDK's own endpoint resolution is run once for a
 * probe key and the request it would send is taken apart (scheme, host, path
 * up to the key, signing region), so path-style and virtual-hosted
 * addressing, custom endpoints and FIPS/dual-stack settings come out exactly
 * as the SDK makes them.
 */

/** Where the SDK sends requests for objects of one bucket. */
export interface DirectTarget {
  /** "http://127.0.0.1:7480", "https://bucket.s3.eu-west-1.amazonaws.com" */
  origin: string;
  /** The Host header: host[:port], the port only when it is not the scheme's default. */
  host: string;
  /** The path before the encoded key: "/bucket/" (path-style) or "/" (virtual-hosted). */
  prefix: string;
  signingRegion: string;
  signingName: string;
}

const PROBE_KEY = 'nbdts-endpoint-probe';

/** Thrown by the probe middleware to stop the request it captured (an Error, so the SDK passes it through). */
class Captured extends Error {
  readonly request: { protocol: string; hostname: string; port?: number; path: string };
  readonly authScheme: { name?: string; signingRegion?: string; signingName?: string } | undefined;

  constructor(
    request: { protocol: string; hostname: string; port?: number; path: string },
    authScheme: { name?: string; signingRegion?: string; signingName?: string } | undefined,
  ) {
    super('endpoint probe');
    this.request = request;
    this.authScheme = authScheme;
  }
}

/**
 * Resolve the URL the SDK would use for objects of `bucket`, without sending
 * anything: a GetObject for a probe key is stopped once built, before it is
 * signed. Null when the SDK would do something this path does not (another
 * auth scheme than SigV4, e.g. SigV4a for multi-region access points).
 */
export async function resolveTarget(client: S3Client, bucket: string): Promise<DirectTarget | null> {
  const cmd = new GetObjectCommand({ Bucket: bucket, Key: PROBE_KEY });
  cmd.middlewareStack.add(
    (_next, context) => async (args) => {
      const ctx = context as { endpointV2?: { properties?: { authSchemes?: Captured['authScheme'][] } } };
      throw new Captured(args.request as Captured['request'], ctx.endpointV2?.properties?.authSchemes?.[0]);
    },
    { step: 'build', priority: 'low', name: 'nbdtsEndpointProbe' },
  );
  let captured: Captured | undefined;
  try {
    await client.send(cmd);
  } catch (err) {
    if (!(err instanceof Captured)) throw err;
    captured = err;
  }
  if (!captured) return null;
  const { request: r, authScheme } = captured;
  if (authScheme?.name !== undefined && authScheme.name !== 'sigv4') return null;
  if (!r.path.endsWith(`/${PROBE_KEY}`)) return null;
  const defaultPort = r.protocol === 'https:' ? 443 : 80;
  const host = r.port && r.port !== defaultPort ? `${r.hostname}:${r.port}` : r.hostname;
  return {
    origin: `${r.protocol}//${host}`,
    host,
    prefix: r.path.slice(0, -PROBE_KEY.length),
    signingRegion: authScheme?.signingRegion ?? (await client.config.region()),
    signingName: authScheme?.signingName ?? 's3',
  };
}

/**
 * A key as the SDK puts it in the path: each segment URI-encoded, including
 * !'()*, with '/' kept. Null for keys this path cannot send as the SDK would:
 * "." and ".." segments (a URL parser drops them, the SDK sends them
 * verbatim) and lone surrogates (not encodable); those go through the SDK.
 */
export function encodeKey(key: string): string | null {
  const segs = key.split('/');
  if (segs.some((seg) => seg === '.' || seg === '..')) return null;
  try {
    return segs
      .map((seg) =>
        encodeURIComponent(seg).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
      )
      .join('/');
  } catch {
    return null; // URIError: a lone surrogate
  }
}

/** An S3 error answer: the code and message from the XML body, shaped like the SDK's errors for errors.ts. */
export class S3HttpError extends Error {
  readonly Code: string | undefined;
  readonly $metadata: { httpStatusCode: number };
  readonly region: string | undefined;

  constructor(res: TransportResponse) {
    const text = res.body.length > 0 && res.body.length < 64 * 1024 ? res.body.toString('utf8') : '';
    const code = xmlField(text, 'Code');
    // Without a code (HEAD-like answers, proxies), as the SDK: "Unknown", so errors.ts explains the status.
    super(xmlField(text, 'Message') ?? (code ? `${code}` : 'UnknownError'));
    this.name = code ?? 'Unknown';
    this.Code = code;
    this.$metadata = { httpStatusCode: res.status };
    this.region = res.headers['x-amz-bucket-region'] ?? xmlField(text, 'Region');
  }
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function xmlField(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml);
  return m?.[1]?.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => XML_ENTITIES[e]!);
}

/**
 * The bucket's region differs from the one we sign for (AWS answers 301
 * PermanentRedirect, or 400 AuthorizationHeaderMalformed naming the right
 * one). The SDK follows such redirects (followRegionRedirects), so the
 * caller hands the request to it.
 */
export function isRegionRedirect(res: TransportResponse, err: S3HttpError): boolean {
  return (
    res.status === 301 ||
    res.status === 307 ||
    err.Code === 'PermanentRedirect' ||
    err.Code === 'TemporaryRedirect' ||
    err.Code === 'AuthorizationHeaderMalformed' ||
    err.Code === 'IllegalLocationConstraintException'
  );
}

export interface DirectRequest {
  method: 'GET' | 'PUT';
  /** Lower-case names. */
  headers: Record<string, string>;
  body?: Buffer;
  signal?: AbortSignal;
  /** For messages: "GET disk/0000000000000001". */
  what: string;
}

/** One bucket's direct data path: the resolved target, a signer (none when anonymous) and the transport. */
export class DirectPath {
  readonly target: DirectTarget;
  readonly #signer: S3Signer | undefined;
  readonly #transport: HttpTransport;

  constructor(target: DirectTarget, signer: S3Signer | undefined, transport: HttpTransport) {
    this.target = target;
    this.#signer = signer;
    this.#transport = transport;
  }

  /** Resolve the target and set up signing from the client's settings; null when the SDK must do it all. */
  static async forBucket(client: S3Client, bucket: string): Promise<DirectPath | null> {
    const target = await resolveTarget(client, bucket);
    if (!target) return null;
    const settings = clientSettings(client);
    const signer = settings.anonymous
      ? undefined
      : new S3Signer({
          // The SDK's resolved provider: memoized, refreshed before expiry (profiles, SSO, roles, session tokens).
          credentials: () => client.config.credentials(),
          region: target.signingRegion,
          service: target.signingName,
        });
    const transport = new HttpTransport({
      connections: settings.connections,
      connectTimeoutMs: settings.connectTimeoutMs,
    });
    return new DirectPath(target, signer, transport);
  }

  /** The request path for key, or null when the SDK must send it (see encodeKey). */
  pathFor(key: string): string | null {
    const k = encodeKey(key);
    return k === null ? null : this.target.prefix + k;
  }

  /** Send a request for an object; `path` from pathFor. */
  async request(path: string, req: DirectRequest): Promise<TransportResponse> {
    let headers = req.headers;
    if (this.#signer) {
      headers = await this.#signer.sign({
        method: req.method,
        host: this.target.host,
        path,
        headers: { ...req.headers, 'x-amz-content-sha256': req.body ? UNSIGNED_PAYLOAD : EMPTY_SHA256 },
      });
    }
    return this.#transport.request({
      method: req.method,
      url: this.target.origin + path,
      headers,
      body: req.body,
      signal: req.signal,
      what: req.what,
      // No deadline of its own: the block layer times out each attempt (timeout=) through the signal, as with the SDK.
      timeoutMs: 0,
    });
  }

  async close(): Promise<void> {
    await this.#transport.close();
  }
}
