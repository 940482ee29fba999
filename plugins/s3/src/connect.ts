import { ConfigError } from '@nbdts/plugin-api';
import { StoreError } from '@nbdts/objstore';
import { makeS3Client, resolveRegion, type ConnectOptions } from './client.ts';
import { S3Store } from './s3-store.ts';

/** An S3Store for `bucket`, with the region resolved. */
export async function connect(opts: ConnectOptions, bucket: string, listPageSize?: number): Promise<S3Store> {
  const region = await resolveRegion(opts);
  const client = makeS3Client(opts, region);
  return new S3Store({ client, bucket, where: opts.endpointUrl ?? `AWS ${region}`, listPageSize });
}

function rootCause(err: unknown): Error & { code?: string; name: string } {
  let e = err as Error & { code?: string };
  for (let depth = 0; depth < 4 && e?.cause instanceof Error; depth++) {
    if (e.name === 'CredentialsProviderError' || typeof e.code === 'string') break;
    e = e.cause as Error & { code?: string };
  }
  return e;
}

/**
 * One line for a start-up failure, saying what to do: wrong credentials,
 * missing bucket, unreachable endpoint, no credentials at all.
 */
export function startupError(err: unknown, store: S3Store, opts: ConnectOptions): Error {
  if (err instanceof ConfigError) return err;
  const where = opts.endpointUrl ?? 'AWS S3';
  const cause = rootCause(err);
  if (cause.name === 'CredentialsProviderError' || /Could not load credentials/i.test(cause.message)) {
    return new ConfigError(
      'no AWS credentials found: give access-key= and secret-key=, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY ' +
        'or AWS_PROFILE (or profile=), or anonymous=true for a public object',
      { cause: err },
    );
  }
  if (err instanceof StoreError) {
    switch (err.kind) {
      case 'auth':
        return new ConfigError(
          `${where}: access to bucket ${store.bucket} denied (${err.message.replace(/^[^:]*: /, '')}): ` +
            'check access-key=/secret-key= (or the AWS profile) and the bucket policy',
          { cause: err },
        );
      case 'missing-container':
        return new ConfigError(
          `bucket ${store.bucket} does not exist at ${where}: create it (nbdts-s3 create ... or aws s3 mb) ` +
            'or check bucket= and endpoint-url=',
          { cause: err },
        );
      case 'transient': {
        const code = cause.code ?? '';
        if (
          /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|TimeoutError/.test(
            `${code} ${cause.name}`,
          )
        ) {
          return new ConfigError(
            `cannot reach ${where} (${code || cause.name}): check endpoint-url= and that the service runs`,
            { cause: err },
          );
        }
        return new ConfigError(`${where}: ${err.message} (the service may be overloaded: try again)`, { cause: err });
      }
      default:
        return new ConfigError(`${where}: ${err.message}`, { cause: err });
    }
  }
  return new ConfigError(`${where}: ${(err as Error).message}`, { cause: err });
}
