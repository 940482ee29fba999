import { ConfigError, param, z } from '@nbdts/plugin-api';
import type { ConnectOptions } from './client.ts';

const opt = () => z.string().min(1, 'must not be empty').optional();

/**
 * Parameters of `nbdts s3 ...` (camelCase here, kebab-case on the command
 * line). The first ones are nbdkit-S3-plugin's, with the same meaning.
 */
export const s3Config = z.object({
  bucket: z.string().min(1, 'must not be empty').describe('Bucket holding the object(s) (required)'),
  key: z
    .string()
    .min(1, 'must not be empty')
    .describe('The object (single-object mode) or the prefix of the objects KEY/%016x (split mode) (required)'),
  accessKey: param
    .secret()
    .optional()
    .describe('AWS access key id: +FILE, -, -FD, env:NAME or the value (default: the AWS credential chain)'),
  secretKey: param
    .secret()
    .optional()
    .describe('AWS secret access key (with access-key): +FILE, -, -FD, env:NAME or the value'),
  sessionToken: param
    .secret()
    .optional()
    .describe('Session token of temporary credentials (with access-key and secret-key)'),
  endpointUrl: param
    .url()
    .optional()
    .describe('S3 endpoint of Ceph RGW, MinIO, Swift s3api...: e.g. http://127.0.0.1:7480 (path-style URLs)'),
  size: param
    .size()
    .optional()
    .describe('Split mode: disk size (a multiple of object-size), together with object-size'),
  objectSize: param
    .size()
    .optional()
    .describe(
      'Split mode: bytes per object, together with size (e.g. 1M; nbdkit S3 works best with 64K-sized requests)',
    ),
  region: opt().describe('Region to sign for (default: AWS_REGION, the profile, else us-east-1)'),
  profile: opt().describe('Profile in ~/.aws/config and ~/.aws/credentials (default: AWS_PROFILE or "default")'),
  anonymous: param
    .bool()
    .default(false)
    .describe('Send unsigned requests (public objects); no credentials are looked up'),
  pathStyle: param
    .bool()
    .optional()
    .describe('Path-style URLs (host/bucket/key) instead of bucket.host (default: on with endpoint-url)'),
  chunkSize: param
    .size()
    .default(1024 * 1024)
    .describe('Single-object mode: bytes per ranged GET and unit of the read cache'),
  cacheSize: param.size().optional().describe('Memory for cached object data (default 256M)'),
  readahead: param
    .int(0, 1024)
    .optional()
    .describe(
      'Objects (ranges in single-object mode) fetched ahead of sequential reads (default 4; single-object mode: 4 ranges or 8 MiB, whichever is more, in GETs of up to 4 MiB)',
    ),
  connections: param.int(1, 1024).default(16).describe('S3 requests in flight at once'),
  cache: z
    .enum(['writeback', 'writethrough'])
    .default('writeback')
    .describe(
      'Split mode. writeback: writes complete in memory and are stored within ~1 s, at flush or FUA; writethrough: stored before they complete',
    ),
  timeout: param.int(1, 3600).default(60).describe('Seconds before one S3 request is abandoned and retried'),
  verifyEtag: param
    .bool()
    .default(true)
    .describe(
      "Split mode: compare each PUT's ETag with its MD5; turn off for SSE-KMS/SSE-C buckets, whose ETags are not MD5s (Content-MD5 is still sent, so the store still checks every body)",
    ),
  lock: param.bool().default(true).describe('Split mode: lock the disk (object KEY/nbdts-lock) while serving it'),
  force: param.bool().default(false).describe('Break a lock left by a server that is gone (warns whose lock it was)'),
});

export type S3Config = z.output<typeof s3Config>;

/** Bucket names: 3 to 63 characters of a-z 0-9 . - (what S3 and Ceph accept). */
export function checkBucketName(bucket: string): void {
  if (!/^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$/i.test(bucket)) {
    throw new ConfigError(`bucket '${bucket}': a bucket name is 3 to 63 letters, digits, '.' and '-'`);
  }
}

/** Checks of parameter combinations, as nbdkit's S3 plugin makes them plus ours. */
export function checkConfig(c: S3Config): void {
  checkBucketName(c.bucket);
  if ((c.size === undefined) !== (c.objectSize === undefined)) {
    throw new ConfigError(
      'size= and object-size= go together: give both for a split disk, or neither to serve one object',
    );
  }
  if (c.size !== undefined && c.objectSize !== undefined) checkGeometry(c.size, c.objectSize);
  if ((c.accessKey === undefined) !== (c.secretKey === undefined)) {
    throw new ConfigError(
      'access-key= and secret-key= go together (or leave both out to use the AWS credential chain)',
    );
  }
  if (c.sessionToken !== undefined && c.accessKey === undefined) {
    throw new ConfigError('session-token= needs access-key= and secret-key=');
  }
  if (c.anonymous && (c.accessKey !== undefined || c.profile !== undefined)) {
    throw new ConfigError('anonymous=true sends unsigned requests: leave out access-key=, secret-key= and profile=');
  }
  if (c.key.endsWith('/'))
    throw new ConfigError(`key '${c.key}': leave out the trailing '/' (split objects are named KEY/%016x)`);
}

/** Split-mode sizes: what nbdkit's S3 plugin accepts, so either can serve the disk. */
export function checkGeometry(size: number, objectSize: number): void {
  if (objectSize < 512) throw new ConfigError(`object-size must be at least 512 bytes, got ${objectSize}`);
  if (objectSize > 5 * 2 ** 30)
    throw new ConfigError(`object-size must be at most 5G (the largest S3 PUT), got ${objectSize}`);
  if (size <= 0) throw new ConfigError('size must be more than 0');
  if (size % objectSize !== 0)
    throw new ConfigError(`size (${size}) must be a multiple of object-size (${objectSize})`);
}

export function connectOptions(c: S3Config): ConnectOptions {
  return {
    endpointUrl: c.endpointUrl,
    region: c.region,
    accessKey: c.accessKey,
    secretKey: c.secretKey,
    sessionToken: c.sessionToken,
    profile: c.profile,
    anonymous: c.anonymous,
    forcePathStyle: c.pathStyle,
    // The block layer's requests plus a few for the lock and start-up checks.
    maxSockets: c.connections + 4,
  };
}
