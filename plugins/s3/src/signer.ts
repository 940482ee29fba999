import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

/** What the signer needs of a credential set (the SDK's AwsCredentialIdentity). */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

/** SHA-256 (or HMAC-SHA-256 with a secret) for the SigV4 signer, on node:crypto. */
export class NodeSha256 {
  readonly #secret: SourceData | undefined;
  #hash: Hash | Hmac;

  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hash = this.#make();
  }

  #make(): Hash | Hmac {
    if (this.#secret === undefined) return createHash('sha256');
    const s = this.#secret;
    // The signer hands the derived keys back as Uint8Arrays: view them, no copy.
    const key =
      typeof s === 'string'
        ? s
        : ArrayBuffer.isView(s)
          ? Buffer.from(s.buffer, s.byteOffset, s.byteLength)
          : Buffer.from(s);
    return createHmac('sha256', key);
  }

  update(data: Uint8Array | string): void {
    this.#hash.update(data);
  }

  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }

  reset(): void {
    this.#hash = this.#make();
  }
}

/** SHA-256 of no bytes: the payload hash of a request without a body. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Sent instead of a payload hash: the store checks PUT bodies against Content-MD5. */
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

export interface SignableRequest {
  method: string;
  /** host[:port] as sent in the Host header (the port only when not the scheme's default). */
  host: string;
  /** The path exactly as sent, already percent-encoded (S3 signs it without encoding it again). */
  path: string;
  /** Lower-case names; must include x-amz-content-sha256 (the body is never hashed here). */
  headers: Record<string, string>;
  /** Query parameters, unencoded (object requests have none). */
  query?: Record<string, string>;
}

/**
 * AWS Signature Version 4 for S3 requests that bypass the SDK: the SDK's own
 * signer (@smithy/signature-v4, S3 settings: the path is not encoded again),
 * credentials from the SDK client's provider, which caches and refreshes them.
 */
export class S3Signer {
  readonly region: string;
  readonly #signer: SignatureV4;

  constructor(opts: { credentials: () => Promise<Credentials>; region: string; service?: string }) {
    this.region = opts.region;
    this.#signer = new SignatureV4({
      service: opts.service ?? 's3',
      region: opts.region,
      credentials: opts.credentials,
      sha256: NodeSha256,
      uriEscapePath: false,
      applyChecksum: false,
    });
  }

  /**
   * The headers to send: the request's own plus x-amz-date, x-amz-security-token
   * (temporary credentials) and authorization. Host is signed but left out:
   * the HTTP client sends the same value from the URL.
   */
  async sign(req: SignableRequest, date = new Date()): Promise<Record<string, string>> {
    const signed = await this.#signer.sign(
      {
        method: req.method,
        protocol: 'https:',
        hostname: req.host,
        path: req.path,
        query: req.query ?? {},
        headers: { ...req.headers, host: req.host },
      },
      { signingDate: date },
    );
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k !== 'host') out[k] = v;
    return out;
  }
}
