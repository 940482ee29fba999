import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { log } from '@nbdts/plugin-api';
import { StoreError, type ObjectInfo, type ObjectStore, type PutOptions } from '@nbdts/objstore';
import { DirectPath, isRegionRedirect, S3HttpError } from './direct.ts';
import { isNoSuchKey, toStoreError } from './errors.ts';

export interface S3StoreOptions {
  client: S3Client;
  bucket: string;
  /** For messages: the endpoint URL, or "AWS". */
  where: string;
  /** Keys per ListObjectsV2 page (S3 caps it at 1000). Small values are for tests. */
  listPageSize?: number;
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** Read a response body into one buffer, sized from Content-Length when known. */
async function readBody(body: unknown, expected: number | undefined): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  const stream = body as Readable;
  if (expected !== undefined && expected >= 0) {
    const out = Buffer.allocUnsafe(expected);
    let pos = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (pos + chunk.length > expected) {
        throw new StoreError('transient', `body longer than its Content-Length ${expected}`);
      }
      chunk.copy(out, pos);
      pos += chunk.length;
    }
    if (pos !== expected) throw new StoreError('transient', `body cut short: ${pos} of ${expected} bytes`);
    return out;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** "bytes 100-199/1000" -> start 100, end 199. */
function parseContentRange(value: string | undefined): { start: number; end: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value ?? '');
  return m ? { start: Number(m[1]), end: Number(m[2]) } : undefined;
}

/**
 * The body of a ranged GET, checked against what was asked: a 200 without
 * Content-Range is a server that ignored Range (cut out what was asked).
 */
function rangedBody(
  key: string,
  range: { offset: number; length: number },
  body: Buffer,
  status: number | undefined,
  contentRange: string | undefined,
): Buffer {
  const got = parseContentRange(contentRange);
  if (got === undefined) {
    if (contentRange === undefined && status === 200) return body.subarray(range.offset, range.offset + range.length);
    throw new StoreError('transient', `GET ${key}: unparsable Content-Range '${contentRange}'`);
  }
  if (got.start !== range.offset || got.end - got.start + 1 !== body.length) {
    throw new StoreError(
      'transient',
      `GET ${key}: asked for bytes ${range.offset}+${range.length}, ` + `got ${contentRange} with ${body.length} bytes`,
    );
  }
  return body;
}

/**
 * A GET failure that answers the question, from the SDK or the direct path
 * (S3HttpError is named after its code): a missing object reads as null; a
 * range that starts at or past the end as no bytes (the object is shorter
 * than asked; the caller checks lengths). Undefined for real failures.
 */
function getAnswer(err: unknown): Buffer | null | undefined {
  if (isNoSuchKey(err)) return null;
  if ((err as { name?: string }).name === 'InvalidRange') return Buffer.alloc(0);
  return undefined;
}

/**
 * ObjectStore on one S3 bucket: one request per method, failures classified
 * into StoreError kinds. Retries, timeouts and MD5/ETag checks are the block
 * layer's (see makeS3Client for why the SDK does not retry). GET and PUT of
 * objects, the data path, bypass the SDK (direct.ts) unless it must do them.
 */
export class S3Store implements ObjectStore {
  readonly client: S3Client;
  readonly bucket: string;
  readonly description: string;
  readonly #listPageSize: number;
  #direct: Promise<DirectPath | null> | undefined;
  /** Set when the bucket answered with a region redirect: from then on the SDK (which follows them) does it all. */
  #directOff = false;

  constructor(opts: S3StoreOptions) {
    this.client = opts.client;
    this.bucket = opts.bucket;
    this.description = `s3 bucket ${opts.bucket} at ${opts.where}`;
    this.#listPageSize = Math.min(1000, Math.max(1, opts.listPageSize ?? 1000));
  }

  /** The direct data path, set up on first use; null when the SDK must send everything. */
  #directPath(): Promise<DirectPath | null> | null {
    if (this.#directOff) return null;
    return (this.#direct ??= DirectPath.forBucket(this.client, this.bucket).then(
      (d) => {
        if (!d)
          log.info(
            `s3: ${this.description}: the SDK resolves another auth scheme than SigV4 here; all requests go through it (slower)`,
          );
        return d;
      },
      (err: unknown) => {
        log.info(
          `s3: ${this.description}: no direct data path (${(err as Error).message}); all requests go through the SDK (slower)`,
        );
        return null;
      },
    ));
  }

  /** A region redirect: hand this and every later request to the SDK, and say how to avoid it. */
  #redirected(err: S3HttpError, signingRegion: string): void {
    if (this.#directOff) return;
    this.#directOff = true;
    const region = err.region ?? 'another region';
    log.warn(
      `s3: bucket ${this.bucket} is in ${region}, not ${signingRegion}: every request now follows a redirect ` +
        `through the SDK (slower); start with region=${err.region ?? 'THE-BUCKET-REGION'}`,
    );
  }

  async get(key: string, range?: { offset: number; length: number }, signal?: AbortSignal): Promise<Buffer | null> {
    if (range && range.length <= 0) return Buffer.alloc(0);
    const Range = range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined;
    const direct = await this.#directPath();
    const path = direct?.pathFor(key);
    if (direct && path) {
      const what = `GET ${key}`;
      let res;
      try {
        res = await direct.request(path, { method: 'GET', headers: Range ? { range: Range } : {}, signal, what });
      } catch (err) {
        throw toStoreError(err, what);
      }
      if (res.status === 200 || res.status === 206) {
        return range ? rangedBody(key, range, res.body, res.status, res.headers['content-range']) : res.body;
      }
      const err = new S3HttpError(res);
      if (!isRegionRedirect(res, err)) {
        const answer = getAnswer(err);
        if (answer !== undefined) return answer;
        throw toStoreError(err, what);
      }
      this.#redirected(err, direct.target.signingRegion);
    }
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range }), {
        abortSignal: signal,
      });
      const body = await readBody(r.Body, r.ContentLength);
      return range ? rangedBody(key, range, body, r.$metadata.httpStatusCode, r.ContentRange) : body;
    } catch (err) {
      const answer = getAnswer(err);
      if (answer !== undefined) return answer;
      throw toStoreError(err, `GET ${key}`);
    }
  }

  async put(key: string, data: Buffer, opts: PutOptions, signal?: AbortSignal): Promise<string> {
    // The store checks the body against it (BadDigest otherwise), so the body needs no SHA-256.
    const contentMd5 = Buffer.from(opts.md5, 'hex').toString('base64');
    const contentType = opts.contentType ?? 'application/octet-stream';
    const direct = await this.#directPath();
    const path = direct?.pathFor(key);
    if (direct && path) {
      const what = `PUT ${key}`;
      const headers: Record<string, string> = {
        'content-length': String(data.length),
        'content-md5': contentMd5,
        'content-type': contentType,
      };
      if (opts.ifNoneMatch) headers['if-none-match'] = '*';
      for (const [k, v] of Object.entries(opts.metadata ?? {})) headers[`x-amz-meta-${k.toLowerCase()}`] = v;
      let res;
      try {
        res = await direct.request(path, { method: 'PUT', headers, body: data, signal, what });
      } catch (err) {
        throw toStoreError(err, what);
      }
      if (res.status === 200) return unquote(res.headers.etag) ?? '';
      const err = new S3HttpError(res);
      if (!isRegionRedirect(res, err)) throw toStoreError(err, what);
      this.#redirected(err, direct.target.signingRegion);
    }
    try {
      const r = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: data,
          ContentLength: data.length,
          ContentMD5: contentMd5,
          IfNoneMatch: opts.ifNoneMatch ? '*' : undefined,
          Metadata: opts.metadata,
          ContentType: contentType,
        }),
        { abortSignal: signal },
      );
      return unquote(r.ETag) ?? '';
    } catch (err) {
      throw toStoreError(err, `PUT ${key}`);
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: signal });
    } catch (err) {
      if (isNoSuchKey(err)) return;
      throw toStoreError(err, `DELETE ${key}`);
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<(ObjectInfo & { metadata: Record<string, string> }) | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: signal,
      });
      return { key, size: r.ContentLength ?? 0, etag: unquote(r.ETag), metadata: r.Metadata ?? {} };
    } catch (err) {
      if (isNoSuchKey(err)) return null;
      throw toStoreError(err, `HEAD ${key}`);
    }
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ContinuationToken: token,
            MaxKeys: this.#listPageSize,
          }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw toStoreError(err, `LIST ${prefix}`);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, etag: unquote(o.ETag) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && !token)
        throw new StoreError('fatal', `LIST ${prefix}: truncated listing without a continuation token`);
    } while (token);
  }

  /**
   * Does the bucket exist and may we use it? Throws a classified StoreError
   * otherwise. A HEAD answer has no body, so a 403 does not say why: then a
   * one-byte GET of `probeKey` asks again and gets the S3 error code (and
   * succeeds for users allowed to read objects but not to HEAD the bucket).
   */
  async checkBucket(probeKey: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal });
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404)
        throw new StoreError('missing-container', `bucket ${this.bucket} does not exist`, 404, { cause: err });
      if (status === 403) {
        await this.get(probeKey, { offset: 0, length: 1 }, signal);
        return;
      }
      throw toStoreError(err, `HEAD bucket ${this.bucket}`);
    }
  }

  /**
   * Multipart upload of one large object: `parts` yields the parts in order
   * (each at least 5 MiB but the last); `uploadPart` concurrency is the caller's.
   */
  async createMultipart(key: string, contentType = 'application/octet-stream'): Promise<MultipartUpload> {
    try {
      const r = await this.client.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: contentType }),
      );
      if (!r.UploadId) throw new StoreError('fatal', `CreateMultipartUpload ${key}: no UploadId in the answer`);
      return new MultipartUpload(this, key, r.UploadId);
    } catch (err) {
      throw toStoreError(err, `CreateMultipartUpload ${key}`);
    }
  }

  async close(): Promise<void> {
    const direct = this.#direct;
    this.#direct = undefined;
    this.#directOff = true;
    this.client.destroy();
    await (await direct)?.close();
  }
}

/** One multipart upload in progress: parts, then complete (or abort). */
export class MultipartUpload {
  readonly #store: S3Store;
  readonly key: string;
  readonly uploadId: string;
  readonly #etags = new Map<number, string>();

  constructor(store: S3Store, key: string, uploadId: string) {
    this.#store = store;
    this.key = key;
    this.uploadId = uploadId;
  }

  /** Part numbers start at 1. `md5` is hex; the store verifies the part against it. */
  async uploadPart(partNumber: number, data: Buffer, md5: string): Promise<string> {
    try {
      const r = await this.#store.client.send(
        new UploadPartCommand({
          Bucket: this.#store.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          PartNumber: partNumber,
          Body: data,
          ContentLength: data.length,
          ContentMD5: Buffer.from(md5, 'hex').toString('base64'),
        }),
      );
      const etag = unquote(r.ETag) ?? '';
      this.#etags.set(partNumber, etag);
      return etag;
    } catch (err) {
      throw toStoreError(err, `UploadPart ${this.key} #${partNumber}`);
    }
  }

  async complete(): Promise<string> {
    const Parts = [...this.#etags]
      .sort((a, b) => a[0] - b[0])
      .map(([PartNumber, ETag]) => ({ PartNumber, ETag: `"${ETag}"` }));
    try {
      const r = await this.#store.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.#store.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          MultipartUpload: { Parts },
        }),
      );
      return unquote(r.ETag) ?? '';
    } catch (err) {
      throw toStoreError(err, `CompleteMultipartUpload ${this.key}`);
    }
  }

  async abort(): Promise<void> {
    try {
      await this.#store.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.#store.bucket, Key: this.key, UploadId: this.uploadId }),
      );
    } catch (err) {
      throw toStoreError(err, `AbortMultipartUpload ${this.key}`);
    }
  }
}
