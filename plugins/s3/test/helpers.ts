import { createHash, randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { Secret } from '@nbdts/plugin-api';
import type { CephEnv } from '@nbdts/testkit';
import { makeS3Client } from '../src/client.ts';
import { S3Store } from '../src/s3-store.ts';
import { S3Signer } from '../src/signer.ts';

export interface S3Target {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}

/** A bucket name no other test uses (S3 names: 3-63 lower-case characters). */
export function uniqueBucket(tag: string): string {
  return `nbdts-${tag}-${randomBytes(4).toString('hex')}`;
}

export function storeFor(
  t: S3Target,
  bucket: string,
  opts: { listPageSize?: number; secretKey?: string; accessKey?: string } = {},
): S3Store {
  const client = makeS3Client(
    {
      endpointUrl: t.endpoint,
      accessKey: new Secret(opts.accessKey ?? t.accessKey),
      secretKey: new Secret(opts.secretKey ?? t.secretKey),
    },
    'us-east-1',
  );
  return new S3Store({ client, bucket, where: t.endpoint, listPageSize: opts.listPageSize });
}

export async function createBucket(t: S3Target, bucket: string): Promise<S3Store> {
  const store = storeFor(t, bucket);
  await store.client.send(new CreateBucketCommand({ Bucket: bucket }));
  return store;
}

/** Empty and remove a test bucket (best effort). */
export async function removeBucket(store: S3Store): Promise<void> {
  try {
    for (;;) {
      const page = await store.client.send(new ListObjectsV2Command({ Bucket: store.bucket }));
      const keys = (page.Contents ?? []).map((o) => o.Key!).filter(Boolean);
      if (keys.length === 0) break;
      await Promise.all(keys.map((Key) => store.client.send(new DeleteObjectCommand({ Bucket: store.bucket, Key }))));
    }
    await store.client.send(new DeleteBucketCommand({ Bucket: store.bucket }));
  } catch {
    // leave it: the cluster is throw-away
  } finally {
    await store.close();
  }
}

export interface TemporaryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
}

/** Temporary credentials (with a session token) from RGW's STS AssumeRole, asked for as the test user. */
export async function assumeRole(env: CephEnv, durationSeconds = 900): Promise<TemporaryCredentials> {
  const url = new URL(env.endpoint);
  const body = new URLSearchParams({
    Action: 'AssumeRole',
    Version: '2011-06-15',
    RoleArn: env.stsRoleArn,
    RoleSessionName: 'nbdts-tests',
    DurationSeconds: String(durationSeconds),
  }).toString();
  const signer = new S3Signer({
    credentials: async () => ({ accessKeyId: env.accessKey, secretAccessKey: env.secretKey }),
    region: 'us-east-1',
    service: 'sts',
  });
  const headers = await signer.sign({
    method: 'POST',
    host: url.host,
    path: '/',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
    },
  });
  const res = await fetch(`${url.origin}/`, { method: 'POST', headers, body });
  const text = await res.text();
  const field = (name: string): string => {
    const m = new RegExp(`<${name}>([^<]+)</${name}>`).exec(text);
    if (!m) throw new Error(`AssumeRole: HTTP ${res.status}, no ${name} in the answer (${text.slice(0, 200)})`);
    return m[1]!;
  };
  return {
    accessKeyId: field('AccessKeyId'),
    secretAccessKey: field('SecretAccessKey'),
    sessionToken: field('SessionToken'),
  };
}
