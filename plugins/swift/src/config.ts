import { ConfigError, param, parseBool, Secret, z } from '@nbdts/plugin-api';
import type { AuthOptions, AuthVersion, EndpointInterface } from './client/index.ts';
import { readSecretsFile, type SecretsSection } from './secrets-file.ts';

const opt = () => z.string().min(1, 'must not be empty').optional();

/** Parameters of `nbdts swift ...` (camelCase here, kebab-case on the command line). */
export const swiftConfig = z.object({
  container: opt().describe('Container holding the disk. Without it, every container in secrets= is an export'),
  authUrl: param
    .url()
    .optional()
    .describe('Auth URL: tempauth http://host:8080/auth/v1.0, Keystone https://host:5000/v3'),
  authVersion: z
    .enum(['1', '2', '3'])
    .optional()
    .describe('Auth protocol; guessed from auth-url (/v3 -> 3, /v2.0 -> 2, else 1)'),
  username: opt().describe('User: account:user for tempauth (v1), the user name for Keystone'),
  password: param.secret().optional().describe('Password (v1: the key): +FILE, -, -FD, env:NAME or the value'),
  userId: opt().describe('Keystone user id (instead of username)'),
  userDomainName: opt().describe("Keystone v3 user's domain (default: Default)"),
  userDomainId: opt().describe("Keystone v3 user's domain id"),
  projectName: opt().describe('Keystone project (v2: tenant) to scope the token to'),
  projectId: opt().describe('Keystone project id'),
  projectDomainName: opt().describe("Keystone v3 project's domain (default: the user's)"),
  projectDomainId: opt().describe("Keystone v3 project's domain id"),
  region: opt().describe('Region of the object-store endpoint in the catalog'),
  interface: z
    .enum(['public', 'internal', 'admin'])
    .optional()
    .describe('Catalog endpoint interface (default: public)'),
  applicationCredentialId: opt().describe('Keystone v3 application credential id'),
  applicationCredentialName: opt().describe('Keystone v3 application credential name (with username)'),
  applicationCredentialSecret: param.secret().optional().describe('Application credential secret'),
  storageUrl: param
    .url()
    .optional()
    .describe('Account URL (…/v1/AUTH_x): with token= skips auth, else overrides the catalog'),
  token: param.secret().optional().describe('A token to use as is (with storage-url=); it is not renewed'),
  secrets: param
    .path()
    .optional()
    .describe('swiftnbd secrets file: [container] sections with username, password, authurl, read-only'),
  size: param
    .size()
    .optional()
    .describe('Set up a container that is not a disk yet with this size (a multiple of object-size)'),
  objectSize: param
    .size()
    .optional()
    .describe('Object size for a container set up by size= (default 1M; swiftnbd used 64K)'),
  cacheSize: param.size().optional().describe('Memory for cached objects per container (default 256M)'),
  cache: z
    .enum(['writeback', 'writethrough'])
    .default('writeback')
    .describe(
      'writeback: writes complete in memory and are stored within ~1 s or at flush; writethrough: stored before they complete',
    ),
  force: param.bool().default(false).describe('Break a lock left by a server that is gone (warns whose lock it was)'),
  connections: param.int(1, 256).default(16).describe('Swift requests in flight at once per container'),
  timeout: param.int(1, 3600).default(60).describe('Seconds before one Swift request is abandoned and retried'),
});

export type SwiftConfig = z.output<typeof swiftConfig>;

/** One container to serve and how to reach it. */
export interface ExportSettings {
  container: string;
  auth: AuthOptions;
  readOnly: boolean;
}

function authVersionOf(text: string | undefined, where: string): AuthVersion | undefined {
  if (text === undefined || text === '') return undefined;
  if (text === '1' || text === '2' || text === '3') return Number(text) as AuthVersion;
  if (text === '2.0') return 2;
  throw new ConfigError(`${where}: auth-version must be 1, 2 or 3, got '${text}'`);
}

function interfaceOf(text: string | undefined, where: string): EndpointInterface | undefined {
  if (text === undefined || text === '') return undefined;
  const t = text.replace(/URL$/i, '').toLowerCase();
  if (t === 'public' || t === 'internal' || t === 'admin') return t;
  throw new ConfigError(`${where}: interface must be public, internal or admin, got '${text}'`);
}

/** Auth options from the command line alone. */
export function authFromConfig(c: SwiftConfig): AuthOptions {
  return {
    authUrl: c.authUrl,
    authVersion: authVersionOf(c.authVersion, 'auth-version'),
    username: c.username,
    password: c.password,
    userId: c.userId,
    userDomainName: c.userDomainName,
    userDomainId: c.userDomainId,
    projectName: c.projectName,
    projectId: c.projectId,
    projectDomainName: c.projectDomainName,
    projectDomainId: c.projectDomainId,
    region: c.region,
    interface: c.interface,
    applicationCredentialId: c.applicationCredentialId,
    applicationCredentialName: c.applicationCredentialName,
    applicationCredentialSecret: c.applicationCredentialSecret,
    storageUrl: c.storageUrl,
    token: c.token,
    timeoutMs: c.timeout * 1000,
  };
}

/** A secrets-file section over the command-line defaults (the file wins, as in swiftnbd). */
export function authFromSection(base: AuthOptions, s: SecretsSection, where: string): AuthOptions {
  const secret = (v: string | undefined, fallback: Secret | undefined) => (v !== undefined ? new Secret(v) : fallback);
  return {
    ...base,
    authUrl: s['auth-url'] ?? base.authUrl,
    authVersion: authVersionOf(s['auth-version'], where) ?? base.authVersion,
    username: s.username ?? base.username,
    password: secret(s.password, base.password),
    userId: s['user-id'] ?? base.userId,
    userDomainName: s['user-domain-name'] ?? base.userDomainName,
    userDomainId: s['user-domain-id'] ?? base.userDomainId,
    projectName: s['project-name'] ?? base.projectName,
    projectId: s['project-id'] ?? base.projectId,
    projectDomainName: s['project-domain-name'] ?? base.projectDomainName,
    projectDomainId: s['project-domain-id'] ?? base.projectDomainId,
    region: s.region ?? base.region,
    interface: interfaceOf(s.interface, where) ?? base.interface,
    applicationCredentialId: s['application-credential-id'] ?? base.applicationCredentialId,
    applicationCredentialName: s['application-credential-name'] ?? base.applicationCredentialName,
    applicationCredentialSecret: secret(s['application-credential-secret'], base.applicationCredentialSecret),
    storageUrl: s['storage-url'] ?? base.storageUrl,
    token: secret(s.token, base.token),
  };
}

export interface ResolvedExports {
  exports: ExportSettings[];
  /** The secrets file, when one was read (to warn about its permissions once). */
  secretsPath?: string;
  secretsExposed: boolean;
}

/**
 * The containers to serve: container= alone, container= with its section of
 * secrets=, or every section of secrets=.
 */
export function resolveExports(c: SwiftConfig): ResolvedExports {
  const base = authFromConfig(c);
  if (!c.secrets) {
    if (!c.container)
      throw new ConfigError('container= is required (or secrets=FILE to serve every container listed in it)');
    return { exports: [{ container: c.container, auth: base, readOnly: false }], secretsExposed: false };
  }
  const file = readSecretsFile(c.secrets);
  const toExport = (name: string, s: SecretsSection): ExportSettings => {
    const where = `${c.secrets} [${name}]`;
    let readOnly: boolean;
    try {
      readOnly = s['read-only'] !== undefined && parseBool(s['read-only'], `${where} read-only`);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    return { container: name, auth: authFromSection(base, s, where), readOnly };
  };
  if (c.container) {
    const s = file.sections.get(c.container);
    if (!s)
      throw new ConfigError(
        `secrets=${c.secrets} has no [${c.container}] section (it has: ${[...file.sections.keys()].join(', ')})`,
      );
    return { exports: [toExport(c.container, s)], secretsPath: c.secrets, secretsExposed: file.exposed };
  }
  return {
    exports: [...file.sections].map(([name, s]) => toExport(name, s)),
    secretsPath: c.secrets,
    secretsExposed: file.exposed,
  };
}
