import yargs, { type Argv } from 'yargs';
import { ConfigError, parseSize, toKebab } from '@nbdts/plugin-api';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import { StoreError, consoleOutput, stderrLogger } from '@nbdts/objstore';
import { swiftConfig, resolveExports, authFromConfig, type SwiftConfig } from '../config.ts';
import { containerStore } from '../disk.ts';
import { createAuthenticator, SwiftConnection, type SwiftContainerStore } from '../client/index.ts';
import { DEFAULT_OBJECT_SIZE, SWIFTNBD_OBJECT_SIZE } from '../format.ts';
import * as cmd from './commands.ts';

/** Command-line options that are plugin parameters, passed through the plugin's own schema. */
const AUTH_OPTIONS = [
  'authUrl',
  'authVersion',
  'username',
  'password',
  'userId',
  'userDomainName',
  'userDomainId',
  'projectName',
  'projectId',
  'projectDomainName',
  'projectDomainId',
  'region',
  'interface',
  'applicationCredentialId',
  'applicationCredentialName',
  'applicationCredentialSecret',
  'storageUrl',
  'token',
  'secrets',
  'timeout',
] as const;

const DEFAULT_SECRETS = '/etc/swiftnbd/secrets.conf';

interface Global {
  verbose: boolean;
  quiet: boolean;
  force: boolean;
  jobs: number;
  listLimit?: number;
  [key: string]: unknown;
}

/** The plugin config for these options (so the tool and the server read credentials the same way). */
async function pluginConfig(argv: Global, container?: string): Promise<SwiftConfig> {
  const raw: Record<string, string> = {};
  for (const key of AUTH_OPTIONS) {
    const v = argv[key];
    if (v !== undefined && v !== '') raw[key] = String(v);
  }
  // Like swiftnbd-ctl: the default secrets file is used when it exists and nothing else was given.
  if (
    raw.secrets === undefined &&
    raw.username === undefined &&
    raw.token === undefined &&
    raw.applicationCredentialId === undefined
  ) {
    const { existsSync } = await import('node:fs');
    if (existsSync(DEFAULT_SECRETS)) raw.secrets = DEFAULT_SECRETS;
  }
  if (container !== undefined) raw.container = container;
  const parsed = await swiftConfig.safeParseAsync(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new ConfigError(`--${toKebab(String(first.path[0] ?? ''))}: ${first.message}`);
  }
  return parsed.data;
}

async function storeFor(argv: Global, container: string): Promise<SwiftContainerStore> {
  const c = await pluginConfig(argv, container);
  const { exports } = resolveExports(c);
  const s = exports[0]!;
  return containerStore(s.container, s.auth, { listLimit: argv.listLimit });
}

async function allStores(argv: Global): Promise<SwiftContainerStore[]> {
  const c = await pluginConfig(argv);
  if (c.secrets) return resolveExports(c).exports.map((s) => containerStore(s.container, s.auth));
  // No secrets file: every container of the account.
  const auth = authFromConfig(c);
  let conn: SwiftConnection;
  try {
    conn = new SwiftConnection(createAuthenticator(auth), { timeoutMs: auth.timeoutMs });
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const names: string[] = [];
  for await (const ct of conn.listContainers()) names.push(ct.name);
  return names.map((n) => containerStore(n, auth));
}

function common(argv: Global): cmd.CommonOptions {
  return { jobs: argv.jobs, quiet: argv.quiet, force: argv.force };
}

function globalOptions(y: Argv): Argv<Global> {
  return (
    y
      .option('secrets', {
        type: 'string',
        describe: `swiftnbd secrets file (default ${DEFAULT_SECRETS} when it exists)`,
      })
      .option('auth-url', { alias: 'a', type: 'string', describe: 'auth URL (tempauth …/auth/v1.0 or Keystone …/v3)' })
      .option('auth-version', {
        type: 'string',
        choices: ['1', '2', '3'],
        describe: 'auth version (default: from the URL)',
      })
      .option('username', { alias: 'u', type: 'string', describe: 'user (account:user for tempauth)' })
      .option('password', { alias: 'p', type: 'string', describe: 'password: +FILE, -, -FD, env:NAME or the value' })
      .option('user-id', { type: 'string', hidden: true })
      .option('user-domain-name', { type: 'string', describe: 'Keystone v3 user domain' })
      .option('user-domain-id', { type: 'string', hidden: true })
      .option('project-name', { type: 'string', describe: 'Keystone project (tenant)' })
      .option('project-id', { type: 'string', hidden: true })
      .option('project-domain-name', { type: 'string', describe: 'Keystone v3 project domain' })
      .option('project-domain-id', { type: 'string', hidden: true })
      .option('region', { type: 'string', describe: 'object-store region' })
      .option('interface', { type: 'string', choices: ['public', 'internal', 'admin'], describe: 'catalog interface' })
      .option('application-credential-id', { type: 'string', describe: 'Keystone v3 application credential id' })
      .option('application-credential-name', { type: 'string', hidden: true })
      .option('application-credential-secret', {
        type: 'string',
        describe: 'application credential secret (+FILE, env:NAME, …)',
      })
      .option('storage-url', { type: 'string', describe: 'account URL (with --token: no auth)' })
      .option('token', { type: 'string', describe: 'token to use as is' })
      .option('timeout', { type: 'string', describe: 'seconds per request (default 60)' })
      // Objects per listing page: only tests change it, to cover pagination without 10,000 objects.
      .option('list-limit', { type: 'number', hidden: true })
      .option('jobs', { alias: 'j', type: 'number', default: 16, describe: 'requests in parallel' })
      .option('force', {
        alias: 'f',
        type: 'boolean',
        default: false,
        describe: 'overwrite / break locks (see each command)',
      })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress bar' })
      .option('verbose', {
        alias: 'v',
        type: 'boolean',
        default: false,
        describe: 'debug messages',
      }) as unknown as Argv<Global>
  );
}

/** Run the tool; resolves with the exit status. */
export async function main(args: string[], output: cmd.Output = consoleOutput()): Promise<number> {
  let status = 0;
  const run = (fn: (argv: Global) => Promise<number>) => async (argv: unknown) => {
    const a = argv as Global;
    setPluginLogger(stderrLogger(a.verbose));
    status = await fn(a);
  };
  const parser = globalOptions(yargs(args))
    .scriptName('nbdts-swift')
    .usage('$0 COMMAND ...\n\nManage swiftnbd-format disks in Swift containers (swiftnbd-ctl compatible).')
    .command(
      'list',
      'list the containers (of the secrets file, else of the account) and their state',
      (y) => y.option('simple-output', { alias: 's', type: 'boolean', default: false, describe: 'key=value output' }),
      run(async (a) => cmd.listDisks(await allStores(a), Boolean(a.simpleOutput), output)),
    )
    .command(
      'setup <container> [objects]',
      'set up a container as a disk (refuses to overwrite without --force)',
      (y) =>
        y
          .positional('container', { type: 'string' })
          .positional('objects', { type: 'string', describe: 'number of objects (or give --size)' })
          .option('size', { type: 'string', describe: 'disk size, e.g. 1G (a multiple of the object size)' })
          .option('object-size', {
            type: 'string',
            describe: 'object size (default 1M with --size; 64K with OBJECTS, as swiftnbd-ctl)',
          }),
      run(async (a) => {
        // A count of objects is swiftnbd-ctl's form: keep its 64 KiB so old scripts make the same disk.
        const objectSize =
          a.objectSize !== undefined
            ? parseSize(String(a.objectSize), '--object-size')
            : a.size !== undefined
              ? DEFAULT_OBJECT_SIZE
              : SWIFTNBD_OBJECT_SIZE;
        let objects: number;
        if (a.size !== undefined) objects = Math.ceil(parseSize(String(a.size), '--size') / objectSize);
        else if (a.objects !== undefined && /^\d+$/.test(String(a.objects))) objects = Number(a.objects);
        else throw new ConfigError('setup needs the number of objects (setup CONTAINER OBJECTS) or --size');
        if (objects < 1) throw new ConfigError('the disk needs at least one object');
        return cmd.setup(await storeFor(a, String(a.container)), objects, objectSize, common(a), output);
      }),
    )
    .command(
      'lock <container>',
      'mark a container as in use',
      (y) => y.positional('container', { type: 'string' }),
      run(async (a) => cmd.lock(await storeFor(a, String(a.container)), output)),
    )
    .command(
      'unlock <container>',
      'remove a lock (after checking that no server uses the container)',
      (y) => y.positional('container', { type: 'string' }),
      run(async (a) => cmd.unlock(await storeFor(a, String(a.container)), output)),
    )
    .command(
      'info <container>',
      'show the geometry, lock and usage of a container',
      (y) => y.positional('container', { type: 'string' }),
      run(async (a) => cmd.info(await storeFor(a, String(a.container)), output)),
    )
    .command(
      'download <container> <image>',
      'save a disk as a sparse raw image',
      (y) => y.positional('container', { type: 'string' }).positional('image', { type: 'string' }),
      run(async (a) => cmd.download(await storeFor(a, String(a.container)), String(a.image), common(a), output)),
    )
    .command(
      'upload <image> <container>',
      'store a raw image in a container (zero objects are skipped)',
      (y) =>
        y.positional('image', { type: 'string' }).positional('container', { type: 'string' }).option('object-size', {
          type: 'string',
          describe: 'object size when the container is set up now (default 1M)',
        }),
      run(async (a) =>
        cmd.upload(
          String(a.image),
          await storeFor(a, String(a.container)),
          a.objectSize === undefined ? undefined : parseSize(String(a.objectSize), '--object-size'),
          common(a),
          output,
        ),
      ),
    )
    .command(
      'delete <container>',
      'delete every object and the container',
      (y) => y.positional('container', { type: 'string' }),
      run(async (a) => cmd.deleteDisk(await storeFor(a, String(a.container)), common(a), output)),
    )
    .demandCommand(1, 'give a command (see --help)')
    .strict()
    .help()
    .alias('h', 'help')
    .version('0.1.0')
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    })
    .exitProcess(false);
  try {
    await parser.parseAsync();
    return status;
  } catch (err) {
    if (err instanceof UsageError) {
      output.err(`nbdts-swift: ${err.message} (see nbdts-swift --help)`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof StoreError || err instanceof Error) {
      output.err(`nbdts-swift: ${(err as Error).message}`);
      return 1;
    }
    throw err;
  }
}

class UsageError extends Error {}
