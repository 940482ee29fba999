import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { Secret } from '@nbdts/plugin-api';
import { DEFAULT_CONNECTIONS, DEFAULT_CONNECT_TIMEOUT_MS } from '@nbdts/objstore';

/** How to reach S3 and who we are. Secrets stay wrapped until the SDK needs them. */
export interface ConnectOptions {
  /** e.g. http://127.0.0.1:7480 for Ceph RGW or MinIO; unset for AWS. Implies path-style URLs. */
  endpointUrl?: string;
  region?: string;
  /** Static credentials; unset means the SDK's chain (environment, ~/.aws files, SSO, instance roles). */
  accessKey?: Secret;
  secretKey?: Secret;
  sessionToken?: Secret;
  /** A profile from ~/.aws/config and ~/.aws/credentials. */
  profile?: string;
  /** Unsigned requests, for public buckets and objects. */
  anonymous?: boolean;
  /** Virtual-hosted (bucket.host) or path-style (host/bucket) URLs. Default: path-style when endpointUrl is set. */
  forcePathStyle?: boolean;
  /** Sockets per host: at least the number of requests the block layer runs at once. */
  maxSockets?: number;
  /** Connect timeout, ms. */
  connectTimeoutMs?: number;
}

// nbdts supports Node 20; the SDK's notice that later SDKs will not is noise in a server's log.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** What the direct data path (direct.ts) needs to know about a client made here. */
export interface ClientSettings {
  anonymous: boolean;
  /** Sockets per host, for the direct path's pool too. */
  connections: number;
  connectTimeoutMs: number;
}

const settings = new WeakMap<S3Client, ClientSettings>();

/** The settings a client was made with (for a client made elsewhere: signed, the transport's defaults). */
export function clientSettings(client: S3Client): ClientSettings {
  return (
    settings.get(client) ?? {
      anonymous: false,
      connections: DEFAULT_CONNECTIONS,
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
    }
  );
}

/** Requests without a signature (public objects). */
const unsigned = { sign: async <T>(request: T): Promise<T> => request };

/**
 * An S3 client tuned for the block layer:
 *  - keep-alive sockets, enough for every request in flight (the SDK's default is 50 per host);
 *  - no retries of its own (maxAttempts 1): ObjectIO retries with backoff, and two layers would multiply;
 *  - checksums only when an operation requires them: newer SDKs add CRC32 headers and
 *    aws-chunked bodies that some S3 implementations reject; we send Content-MD5 instead;
 *  - followRegionRedirects so a wrong or default region still reaches an AWS bucket.
 */
export function makeS3Client(opts: ConnectOptions, region: string | undefined): S3Client {
  const maxSockets = Math.max(4, opts.maxSockets ?? DEFAULT_CONNECTIONS);
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const agent = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' as const };
  const config: S3ClientConfig = {
    region,
    endpoint: opts.endpointUrl,
    forcePathStyle: opts.forcePathStyle ?? opts.endpointUrl !== undefined,
    followRegionRedirects: true,
    maxAttempts: 1,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new HttpAgent(agent),
      httpsAgent: new HttpsAgent(agent),
      connectionTimeout: connectTimeoutMs,
      // ObjectIO times out each attempt itself (and aborts it through the signal).
      requestTimeout: 0,
    },
  };
  if (opts.profile !== undefined) config.profile = opts.profile;
  if (opts.anonymous) {
    config.credentials = { accessKeyId: '', secretAccessKey: '' };
    config.signer = unsigned;
  } else if (opts.accessKey !== undefined && opts.secretKey !== undefined) {
    const accessKeyId = opts.accessKey.reveal();
    const secretAccessKey = opts.secretKey.reveal();
    const sessionToken = opts.sessionToken?.reveal();
    // A provider function rather than a plain object: the SDK keeps it in its config,
    // and a function prints as [Function] rather than the key if the config is logged.
    config.credentials = async () => ({ accessKeyId, secretAccessKey, sessionToken });
  }
  const client = new S3Client(config);
  settings.set(client, { anonymous: opts.anonymous ?? false, connections: maxSockets, connectTimeoutMs });
  return client;
}

/**
 * The region to sign for: region=, then what the SDK finds (AWS_REGION,
 * the profile's region), else us-east-1 (what Ceph, MinIO and Swift's s3api
 * accept by default; AWS redirects us to the bucket's region).
 */
export async function resolveRegion(opts: ConnectOptions): Promise<string> {
  if (opts.region) return opts.region;
  const probe = new S3Client(opts.profile !== undefined ? { profile: opts.profile } : {});
  try {
    return (await probe.config.region()) || 'us-east-1';
  } catch {
    return 'us-east-1';
  } finally {
    probe.destroy();
  }
}
