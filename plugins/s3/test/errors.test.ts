import { describe, expect, it } from 'vitest';
import { StoreError } from '@nbdts/objstore';
import { classifyKind, toStoreError } from '../src/errors.ts';
import { partSize } from '../src/ctl/commands.ts';
import { splitKeys } from '../src/disk.ts';

/** An error shaped like the SDK's: name = S3 code, $metadata.httpStatusCode. */
function sdkError(name: string, status?: number, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} message`), { name, $metadata: { httpStatusCode: status }, ...extra });
}

describe('S3 error classification', () => {
  it.each([
    ['SlowDown', 503, 'transient'],
    ['InternalError', 500, 'transient'],
    ['ServiceUnavailable', 503, 'transient'],
    ['TooManyRequests', 429, 'transient'],
    ['RequestTimeout', 400, 'transient'],
    ['BadDigest', 400, 'transient'],
    ['NoSuchBucket', 404, 'missing-container'],
    ['PreconditionFailed', 412, 'precondition'],
    ['AccessDenied', 403, 'auth'],
    ['InvalidAccessKeyId', 403, 'auth'],
    ['SignatureDoesNotMatch', 403, 'auth'],
    ['ExpiredToken', 400, 'auth'],
    ['Unknown', 403, 'auth'],
    ['NotImplemented', 501, 'fatal'],
    ['InvalidArgument', 400, 'fatal'],
    ['EntityTooLarge', 400, 'fatal'],
  ])('%s (%s) is %s', (name, status, kind) => {
    expect(classifyKind(sdkError(name, status))).toBe(kind);
  });

  it.each(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE'])('socket error %s is transient', (code) => {
    expect(classifyKind(Object.assign(new Error(`connect ${code}`), { code }))).toBe('transient');
    // Also when the SDK wraps it.
    expect(classifyKind(new Error('wrapped', { cause: Object.assign(new Error('x'), { code }) }))).toBe('transient');
  });

  it('timeouts and aborts are transient', () => {
    expect(classifyKind(Object.assign(new Error('timed out'), { name: 'TimeoutError' }))).toBe('transient');
    expect(classifyKind(Object.assign(new Error('aborted'), { name: 'AbortError' }))).toBe('transient');
  });

  it('makes a StoreError naming the call, the code and a hint', () => {
    const e = toStoreError(sdkError('SignatureDoesNotMatch', 403), 'GET disk/0000000000000000');
    expect(e).toBeInstanceOf(StoreError);
    expect(e.status).toBe(403);
    expect(e.message).toMatch(/^GET disk\/0000000000000000: SignatureDoesNotMatch: .*wrong secret key/);
    expect(toStoreError(sdkError('Unknown', 403), 'HEAD k').message).toMatch(
      /HTTP 403 Forbidden \(wrong credentials or no permission\)/,
    );
    const same = new StoreError('fatal', 'x');
    expect(toStoreError(same, 'y')).toBe(same);
  });
});

describe('naming and sizes', () => {
  it('names split objects KEY/%016x like nbdkit, and ignores our own objects', () => {
    const k = splitKeys('disk');
    expect(k.keyOf(0)).toBe('disk/0000000000000000');
    expect(k.keyOf(0x1ab)).toBe('disk/00000000000001ab');
    expect(k.indexOf('disk/00000000000001ab')).toBe(0x1ab);
    expect(k.indexOf('disk/nbdts-lock')).toBeNull();
    expect(k.indexOf('disk/nbdts-disk.json')).toBeNull();
    expect(k.indexOf('disk2/0000000000000000')).toBeNull();
    // Our objects sort after every data object, where nbdkit's trim stops listing.
    expect('disk/nbdts-lock' > 'disk/ffffffffffffffff').toBe(true);
  });

  it('keeps multipart uploads under 10,000 parts', () => {
    expect(partSize(100 * 2 ** 20)).toBe(16 * 2 ** 20);
    const big = 5 * 2 ** 40;
    expect(Math.ceil(big / partSize(big))).toBeLessThanOrEqual(10_000);
  });
});
