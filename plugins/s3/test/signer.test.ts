// The direct data path's signing and addressing against the SDK's own: the
// SDK builds and signs a request (stopped before it is sent), we sign the
// same request with the same headers and time and must get the same
// signature, and must put every key at the same URL. No network.
import { GetObjectCommand, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { encodeKey, resolveTarget, S3HttpError } from '../src/direct.ts';
import { classifyKind, isNoSuchKey } from '../src/errors.ts';
import { S3Signer } from '../src/signer.ts';

interface WireRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
}

/** Thrown by the request handler with what the SDK would have sent (an Error, so the SDK passes it through). */
class Sent extends Error {
  readonly request: WireRequest;

  constructor(request: WireRequest) {
    super('captured');
    this.request = request;
  }
}

const creds = {
  accessKeyId: 'AKIDEXAMPLE0000000',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'FwoGZXIvYXdzEJr//////////token',
};

/** An SDK client that signs like the plugin's but hands the finished request to us instead of sending it. */
function capturingClient(extra: Partial<S3ClientConfig>): S3Client {
  return new S3Client({
    region: 'us-east-1',
    maxAttempts: 1,
    credentials: creds,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      handle: async (request: WireRequest) => {
        throw new Sent(request);
      },
    } as never,
    ...extra,
  });
}

async function sdkRequest(client: S3Client, cmd: GetObjectCommand | PutObjectCommand): Promise<WireRequest> {
  try {
    await client.send(cmd as GetObjectCommand);
  } catch (err) {
    if (err instanceof Sent) return err.request;
    throw err;
  }
  throw new Error('the SDK did not build a request');
}

/** "20261122T081725Z" -> Date */
function amzDate(s: string): Date {
  return new Date(s.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
}

/** Sign what the SDK sent (minus its signature) with ours, at the SDK's time. */
async function ourAuthorization(r: WireRequest, region: string): Promise<string> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers)) {
    const name = k.toLowerCase();
    if (name !== 'authorization' && name !== 'host' && name !== 'x-amz-date' && name !== 'x-amz-security-token')
      headers[name] = v;
  }
  const signer = new S3Signer({ credentials: async () => creds, region });
  const host = r.port ? `${r.hostname}:${r.port}` : r.hostname;
  // The SDK adds ?x-id=GetObject (our requests have no query): signed the same way.
  const signed = await signer.sign(
    { method: r.method, host, path: r.path, headers, query: r.query },
    amzDate(r.headers['x-amz-date']!),
  );
  expect(signed['x-amz-date']).toBe(r.headers['x-amz-date']);
  expect(signed['x-amz-security-token']).toBe(creds.sessionToken);
  expect(signed).not.toHaveProperty('host');
  return signed.authorization!;
}

const KEYS = [
  'disk.img',
  'vol/000000000000002a',
  'a b/c+d',
  "x!'()*~._-y",
  'ünïcødé/€',
  'q?x#y&z=1',
  'per%cent',
  '/lead',
  'trail/',
  'a//b',
  'semi;colon,comma:colon@at$dollar',
];

describe('direct path: SigV4 as the SDK signs it', () => {
  const pathStyle = capturingClient({ endpoint: 'http://127.0.0.1:7480', forcePathStyle: true });

  it.each(KEYS)('GET with Range, key %j: same signature', async (key) => {
    const r = await sdkRequest(pathStyle, new GetObjectCommand({ Bucket: 'bkt', Key: key, Range: 'bytes=0-1048575' }));
    expect(r.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 /);
    expect(await ourAuthorization(r, 'us-east-1')).toBe(r.headers.authorization);
  });

  it('PUT with Content-MD5, metadata and If-None-Match: same signature', async () => {
    const body = Buffer.from('hello world');
    const r = await sdkRequest(
      pathStyle,
      new PutObjectCommand({
        Bucket: 'bkt',
        Key: 'vol/nbdts-lock',
        Body: body,
        ContentLength: body.length,
        ContentMD5: 'XrY7u+Ae7tCTyyK7j1rNww==',
        IfNoneMatch: '*',
        Metadata: { 'nbdts-owner': 'host/1/x' },
        ContentType: 'application/json',
      }),
    );
    expect(r.headers['content-md5']).toBe('XrY7u+Ae7tCTyyK7j1rNww==');
    expect(await ourAuthorization(r, 'us-east-1')).toBe(r.headers.authorization);
  });

  it('a virtual-hosted AWS request in another region: same signature', async () => {
    const aws = capturingClient({ region: 'eu-west-1' });
    const r = await sdkRequest(aws, new GetObjectCommand({ Bucket: 'my-bucket', Key: 'a b/c', Range: 'bytes=5-9' }));
    expect(r.hostname).toBe('my-bucket.s3.eu-west-1.amazonaws.com');
    expect(await ourAuthorization(r, 'eu-west-1')).toBe(r.headers.authorization);
    // Another region or secret gives another signature: the comparison can fail.
    expect(await ourAuthorization(r, 'us-east-1')).not.toBe(r.headers.authorization);
  });
});

describe('direct path: addressing as the SDK does it', () => {
  const cases: [string, Partial<S3ClientConfig>, string][] = [
    ['path-style endpoint', { endpoint: 'http://127.0.0.1:7480', forcePathStyle: true }, 'http://127.0.0.1:7480'],
    ['endpoint with a path', { endpoint: 'http://127.0.0.1:7480/s3', forcePathStyle: true }, 'http://127.0.0.1:7480'],
    ['AWS virtual-hosted', { region: 'ap-southeast-2' }, 'https://my-bucket.s3.ap-southeast-2.amazonaws.com'],
    ['AWS path-style', { region: 'us-west-2', forcePathStyle: true }, 'https://s3.us-west-2.amazonaws.com'],
    [
      'virtual-hosted custom endpoint, default port',
      { endpoint: 'https://minio.example', forcePathStyle: false },
      'https://my-bucket.minio.example',
    ],
  ];

  it.each(cases)('%s', async (_name, config, origin) => {
    const client = capturingClient(config);
    const target = (await resolveTarget(client, 'my-bucket'))!;
    expect(target).not.toBeNull();
    expect(target.origin).toBe(origin);
    expect(target.signingRegion).toBe(await client.config.region());
    for (const key of KEYS) {
      const r = await sdkRequest(client, new GetObjectCommand({ Bucket: 'my-bucket', Key: key }));
      const host = r.port ? `${r.hostname}:${r.port}` : r.hostname;
      expect(`${r.protocol}//${host}`).toBe(target.origin);
      expect(host).toBe(target.host);
      expect(target.prefix + encodeKey(key)).toBe(r.path);
    }
  });

  it('leaves keys with dot segments or lone surrogates to the SDK', () => {
    expect(encodeKey('a/../b')).toBeNull();
    expect(encodeKey('./b')).toBeNull();
    expect(encodeKey('a/.')).toBeNull();
    expect(encodeKey('bad\uD800')).toBeNull();
    expect(encodeKey('a..b/.c')).toBe('a..b/.c');
  });
});

describe('direct path: S3 error answers', () => {
  const answer = (status: number, xml: string, headers: Record<string, string> = {}) =>
    new S3HttpError({ status, headers, body: Buffer.from(xml) });
  const xml = (code: string, message = `${code} message`) =>
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>tx1</RequestId></Error>`;

  it("parses the code and message, classified as the SDK's errors are", () => {
    const e = answer(
      403,
      xml('SignatureDoesNotMatch', 'The request signature we calculated does not match &amp; so on'),
    );
    expect(e.name).toBe('SignatureDoesNotMatch');
    expect(e.message).toBe('The request signature we calculated does not match & so on');
    expect(classifyKind(e)).toBe('auth');
    expect(classifyKind(answer(503, xml('SlowDown')))).toBe('transient');
    expect(classifyKind(answer(500, xml('InternalError')))).toBe('transient');
    expect(classifyKind(answer(429, ''))).toBe('transient');
    expect(classifyKind(answer(400, xml('BadDigest')))).toBe('transient');
    expect(classifyKind(answer(404, xml('NoSuchBucket')))).toBe('missing-container');
    expect(classifyKind(answer(412, xml('PreconditionFailed')))).toBe('precondition');
    expect(classifyKind(answer(501, xml('NotImplemented')))).toBe('fatal');
    expect(classifyKind(answer(400, xml('InvalidArgument')))).toBe('fatal');
    expect(isNoSuchKey(answer(404, xml('NoSuchKey')))).toBe(true);
    expect(isNoSuchKey(answer(404, ''))).toBe(true);
    expect(isNoSuchKey(answer(404, xml('NoSuchBucket')))).toBe(false);
  });

  it('an answer without a body is named by its status, as the SDK names it', () => {
    const e = answer(403, '');
    expect(e.name).toBe('Unknown');
    expect(classifyKind(e)).toBe('auth');
  });

  it('reads the bucket region of a redirect', () => {
    const e = answer(301, xml('PermanentRedirect'), { 'x-amz-bucket-region': 'eu-central-1' });
    expect(e.region).toBe('eu-central-1');
    expect(
      answer(400, `<Error><Code>AuthorizationHeaderMalformed</Code><Region>eu-west-3</Region></Error>`).region,
    ).toBe('eu-west-3');
  });
});
