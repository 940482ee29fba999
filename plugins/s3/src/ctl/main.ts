import yargs, { type Argv } from 'yargs';
import { ConfigError, parseSize, toKebab } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import { StoreError, consoleOutput, stderrLogger } from '@nbdts/objstore';
import { checkConfig, connectOptions, s3Config, type S3Config } from '../config.ts';
import { connect, startupError } from '../connect.ts';
import type { S3Store } from '../s3-store.ts';
import type { DiskDescriptor } from '../disk.ts';
import * as cmd from './commands.ts';

/** Options that are plugin parameters: parsed by the plugin's schema, so secrets work the same (+FILE, -, env:NAME). */
const CONNECT_OPTIONS = [
  'endpointUrl',
  'accessKey',
  'secretKey',
  'sessionToken',
  'region',
  'profile',
  'anonymous',
  'pathStyle',
] as const;

interface Global {
  jobs: number;
  force: boolean;
  quiet: boolean;
  verbose: boolean;
  size?: string;
  objectSize?: string;
  [key: string]: unknown;
}

async function pluginConfig(argv: Global, bucket: string, key: string): Promise<S3Config> {
  const raw: Record<string, string> = { bucket, key };
  for (const k of CONNECT_OPTIONS) {
    const v = argv[k];
    if (v !== undefined && v !== '') raw[k] = String(v);
  }
  const parsed = await s3Config.safeParseAsync(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new ConfigError(`--${toKebab(String(first.path[0] ?? ''))}: ${first.message}`);
  }
  checkConfig(parsed.data);
  return parsed.data;
}

function geometry(argv: Global, required: boolean): DiskDescriptor | undefined {
  if (argv.size === undefined && argv.objectSize === undefined) {
    if (required) throw new ConfigError('give --size and --object-size (e.g. --size 10G --object-size 1M)');
    return undefined;
  }
  if (argv.objectSize === undefined) throw new ConfigError('--size needs --object-size');
  const objectSize = parseSize(argv.objectSize, '--object-size');
  return { objectSize, size: argv.size === undefined ? 0 : parseSize(argv.size, '--size') };
}

/** Run `fn` on a store for BUCKET, turning failures into one line. */
async function withStore(
  argv: Global,
  bucket: string,
  key: string,
  fn: (store: S3Store, common: cmd.CommonOptions) => Promise<number>,
): Promise<number> {
  setPluginLogger(stderrLogger(argv.verbose));
  const c = await pluginConfig(argv, bucket, key);
  const opts = { ...connectOptions(c), maxSockets: argv.jobs + 4 };
  const store = await connect(opts, c.bucket);
  try {
    // Credentials and bucket first: a clear error rather than one from the first HEAD.
    if (!c.anonymous) {
      try {
        await store.checkBucket(key);
      } catch (err) {
        // Commands that create the bucket handle its absence themselves.
        if (!(err instanceof StoreError && err.kind === 'missing-container')) throw err;
      }
    }
    return await fn(store, {
      jobs: argv.jobs,
      force: argv.force,
      progress: !argv.quiet && process.stderr.isTTY === true,
    });
  } catch (err) {
    if (err instanceof StoreError) throw startupError(err, store, opts);
    throw err;
  } finally {
    await store.close();
  }
}

function connectionOptions(y: Argv): Argv<Global> {
  return y
    .option('endpoint-url', { type: 'string', describe: 'S3 endpoint (Ceph RGW, MinIO, ...); path-style URLs' })
    .option('access-key', {
      type: 'string',
      describe: 'Access key id: +FILE, -, env:NAME or the value (default: AWS chain)',
    })
    .option('secret-key', { type: 'string', describe: 'Secret access key: +FILE, -, env:NAME or the value' })
    .option('session-token', { type: 'string', describe: 'Session token (temporary credentials)' })
    .option('region', { type: 'string', describe: 'Region (default: AWS_REGION, the profile, else us-east-1)' })
    .option('profile', { type: 'string', describe: 'AWS profile in ~/.aws/config and credentials' })
    .option('anonymous', { type: 'string', describe: 'true: unsigned requests (public objects)' })
    .option('path-style', {
      type: 'string',
      describe: 'true/false: path-style URLs (default: true with --endpoint-url)',
    })
    .option('jobs', { alias: 'j', type: 'number', default: 8, describe: 'S3 requests at once' })
    .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'Break a lock; start a disk over' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'No progress bar' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Debug messages' })
    .option('size', { type: 'string', describe: 'Split disk size (e.g. 10G)' })
    .option('object-size', {
      type: 'string',
      describe: 'Split disk object size (e.g. 1M; 64K for nbdkit S3)',
    }) as unknown as Argv<Global>;
}

/** nbdts-s3 COMMAND ...: returns the exit status. */
export async function main(args: string[], out: cmd.Output = consoleOutput()): Promise<number> {
  let status = 0;
  const wrap = (f: (a: Global & Record<string, string>) => Promise<number>) => async (a: unknown) => {
    status = await f(a as Global & Record<string, string>);
  };
  const parser = connectionOptions(yargs(args))
    .scriptName('nbdts-s3')
    .usage(
      '$0 COMMAND [OPTIONS]: manage disks for nbdts s3 (split disks KEY/%016x, as nbdkit S3 writes them, or single objects)',
    )
    .command(
      'create BUCKET KEY',
      'Create an empty split disk (needs --size and --object-size; creates the bucket if missing)',
      {},
      wrap((a) =>
        withStore(a, a.BUCKET, a.KEY, (s, c) => {
          const d = geometry(a, true)!;
          if (!d.size) throw new ConfigError('give --size');
          return cmd.create(s, a.KEY, d, c, out);
        }),
      ),
    )
    .command(
      'upload FILE BUCKET KEY',
      'Upload an image: as one object, or into a split disk with --object-size (all-zero objects skipped)',
      {},
      wrap((a) =>
        withStore(a, a.BUCKET, a.KEY, async (s, c) => {
          const d = geometry(a, false);
          if (!d) return cmd.uploadObject(s, a.FILE, a.KEY, c, out);
          if (!d.size) {
            const { stat } = await import('node:fs/promises');
            const fileSize = (await stat(a.FILE)).size;
            d.size = Math.max(d.objectSize, Math.ceil(fileSize / d.objectSize) * d.objectSize);
          }
          return cmd.uploadSplit(s, a.FILE, a.KEY, d, c, out);
        }),
      ),
    )
    .command(
      'download BUCKET KEY FILE',
      'Download an object or a split disk into FILE (sparse where objects are missing)',
      {},
      wrap((a) =>
        withStore(a, a.BUCKET, a.KEY, (s, c) => {
          const d = geometry(a, false);
          if (d && !d.size)
            throw new ConfigError("give --size with --object-size (or neither, to use the disk's descriptor)");
          return cmd.download(s, a.KEY, a.FILE, d, c, out);
        }),
      ),
    )
    .command(
      'info BUCKET KEY',
      'Show what KEY is: object or split disk, size, objects stored, lock',
      {},
      wrap((a) => withStore(a, a.BUCKET, a.KEY, (s) => cmd.info(s, a.KEY, out))),
    )
    .command(
      'delete BUCKET KEY',
      'Delete the object, or every object of the split disk (refused while locked unless --force)',
      {},
      wrap((a) => withStore(a, a.BUCKET, a.KEY, (s, c) => cmd.remove(s, a.KEY, c, out))),
    )
    .demandCommand(1, 'give a command: create, upload, download, info or delete')
    .strict()
    .help()
    .version('0.1.0')
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      throw err ?? new ConfigError(msg);
    })
    .exitProcess(false);
  try {
    await parser.parseAsync();
    return status;
  } catch (err) {
    if (err instanceof ConfigError) {
      out.err(`nbdts-s3: ${err.message}`);
      return 1;
    }
    out.err(`nbdts-s3: ${(err as Error).message}`);
    return 1;
  }
}
