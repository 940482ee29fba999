import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Plugin } from '@nbdts/plugin-api';
import { setPluginLogger, type PluginLogger } from '@nbdts/plugin-api/engine';
import { withStartupRetry } from '@nbdts/objstore';
import {
  createSwiftPlugin,
  parseSecrets,
  resolveExports,
  swiftConfig,
  LOCK_KEY,
  META,
  SwiftContainerStore,
  type SwiftConfig,
  type SwiftHandle,
} from '../src/index.ts';
import { ensureSwift, removeContainer, uniqueName, v1Connection, type SwiftEnv } from './helpers.ts';

const OBJ = 4096;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

let env: SwiftEnv;
const cleanup: SwiftContainerStore[] = [];
const started: Plugin<SwiftConfig, SwiftHandle>[] = [];
const warnings: string[] = [];

/** Collect warnings; everything else is dropped. */
const logger: PluginLogger = {
  debug() {},
  info() {},
  error(m) {
    warnings.push(m);
  },
  warn(m) {
    warnings.push(m);
  },
  debugEnabled: false,
};

beforeAll(async () => {
  env = await ensureSwift();
  setPluginLogger(logger);
});

afterEach(async () => {
  // Unload whatever a test left running so its locks do not leak into the next.
  await Promise.all(started.splice(0).map((p) => p.unload?.()));
  warnings.length = 0;
});

afterAll(async () => {
  for (const s of cleanup) await removeContainer(s);
});

function store(name: string): SwiftContainerStore {
  const s = new SwiftContainerStore(v1Connection(env), name);
  cleanup.push(s);
  return s;
}

/** Lay out a disk by hand exactly as swiftnbd-ctl setup + swiftnbd-server would. */
async function swiftnbdDisk(
  name: string,
  objects: number,
  parts: Record<number, Buffer>,
): Promise<SwiftContainerStore> {
  const s = store(name);
  // Set-up, not what is tested: a Swift still busy starting (503) is given the server's start-up grace.
  await withStartupRetry(() =>
    s.conn.createContainer(name, {
      'Swiftnbd-Version': '1',
      'Swiftnbd-Objects': String(objects),
      'Swiftnbd-Object-Size': String(OBJ),
    }),
  );
  for (const [i, data] of Object.entries(parts)) {
    await withStartupRetry(() => s.put(`disk.part/${String(i).padStart(8, '0')}`, data, { md5: md5(data) }));
  }
  return s;
}

async function startPlugin(params: Record<string, string>): Promise<Plugin<SwiftConfig, SwiftHandle>> {
  const plugin = createSwiftPlugin({
    listLimit: 5,
    device: { writebackDelayMs: 50, retry: { retries: 1, budgetMs: 2000 } },
  });
  const config = await swiftConfig.parseAsync({
    authUrl: env.authUrl,
    username: env.user,
    password: env.key,
    ...params,
  });
  await plugin.configComplete!(config);
  started.push(plugin);
  await plugin.getReady!(config, { readonly: false });
  return plugin;
}

function swiftConfigDefaults(): SwiftConfig {
  return swiftConfig.parse({});
}

async function read(
  p: Plugin<SwiftConfig, SwiftHandle>,
  h: SwiftHandle,
  offset: number,
  count: number,
): Promise<Buffer> {
  const buf = Buffer.alloc(count, 0xee);
  await p.pread!(h, buf, offset, 0);
  return buf;
}

describe('serving a swiftnbd container', () => {
  it('serves a container laid out by hand in swiftnbd format unchanged, holes as zeros', async () => {
    const name = uniqueName('fmt');
    const part0 = Buffer.alloc(OBJ, 0x11);
    const part2 = Buffer.from(Array.from({ length: OBJ }, (_, i) => (i * 7) % 256));
    await swiftnbdDisk(name, 4, { 0: part0, 2: part2 });
    const p = await startPlugin({ container: name });
    const h = await p.open('', false);
    expect(await p.getSize(h)).toBe(4 * OBJ);
    expect(await read(p, h, 0, OBJ)).toEqual(part0);
    expect(await read(p, h, OBJ, OBJ)).toEqual(Buffer.alloc(OBJ));
    expect(await read(p, h, 2 * OBJ + 100, 200)).toEqual(part2.subarray(100, 300));
    // Across an object boundary.
    expect(await read(p, h, OBJ - 10, 20)).toEqual(Buffer.concat([part0.subarray(OBJ - 10), Buffer.alloc(10)]));
    expect(await p.canWrite!(h)).toBe(true);
    const extents = await p.extents!(h, 4 * OBJ, 0, 0);
    expect(extents.map((e) => e.type)).toEqual([0, 3, 0, 3]);
  });

  it('writes whole swiftnbd objects that a swiftnbd reader would find', async () => {
    const name = uniqueName('write');
    const s = await swiftnbdDisk(name, 4, {});
    const p = await startPlugin({ container: name });
    const h = await p.open('', false);
    const data = Buffer.alloc(100, 0x5a);
    await p.pwrite!(h, data, OBJ * 3 + 10, 0);
    await p.flush!(h, 0);
    const stored = await s.get('disk.part/00000003');
    expect(stored!.length).toBe(OBJ);
    expect(stored!.subarray(10, 110)).toEqual(data);
    expect(stored!.subarray(0, 10)).toEqual(Buffer.alloc(10));
    expect(await s.head('disk.part/00000000')).toBeNull();
  });

  it('locks while serving (lock object + swiftnbd-client) and unlocks into swiftnbd-last on unload', async () => {
    const name = uniqueName('lock');
    const s = await swiftnbdDisk(name, 2, {});
    const p = await startPlugin({ container: name });
    const meta = await s.getContainerMeta();
    expect(meta[META.client]).toMatch(/^nbdts\/.+@\d+$/);
    expect(await s.head(LOCK_KEY)).not.toBeNull();
    await p.unload!();
    started.pop();
    const after = await s.getContainerMeta();
    expect(after[META.client]).toBeUndefined();
    expect(after[META.last]).toBe(meta[META.client]);
    expect(await s.head(LOCK_KEY)).toBeNull();
  });

  it('refuses a second server with a clear error; force=true breaks the lock with a warning', async () => {
    const name = uniqueName('twice');
    const s = await swiftnbdDisk(name, 2, {});
    const first = await startPlugin({ container: name });
    const h1 = await first.open('', false);
    await expect(startPlugin({ container: name })).rejects.toThrow(/in use by nbdts\/.*force=true/);
    const second = await startPlugin({ container: name, force: 'true' });
    expect(warnings.some((w) => /force=true: breaking the lock/.test(w))).toBe(true);
    const h2 = await second.open('', false);
    await second.pwrite!(h2, Buffer.alloc(OBJ, 0x77), 0, 0);
    await second.flush!(h2, 0);
    expect((await s.get('disk.part/00000000'))![0]).toBe(0x77);
    // The first server finds its lock gone and leaves the new owner's lock alone.
    await first.close?.(h1);
    await first.unload!();
    started.splice(started.indexOf(first), 1);
    expect(warnings.some((w) => /lock had been broken/.test(w))).toBe(true);
    expect((await s.getContainerMeta())[META.client]).toMatch(/^nbdts\//);
    expect(await s.head(LOCK_KEY)).not.toBeNull();
  });

  it('respects a lock taken by swiftnbd itself (metadata only)', async () => {
    const name = uniqueName('swiftnbd-lock');
    const s = await swiftnbdDisk(name, 2, {});
    await s.setContainerMeta({ [META.client]: '127.0.0.1:40000@1700000000' });
    await expect(startPlugin({ container: name })).rejects.toThrow(/127\.0\.0\.1:40000@1700000000/);
    await startPlugin({ container: name, force: 'true' });
    expect(warnings.some((w) => /taking over from 127\.0\.0\.1:40000/.test(w))).toBe(true);
  });

  it('sets up a new container with size= and object-size=, and refuses a mismatched size', async () => {
    const name = uniqueName('new');
    const s = store(name);
    await expect(startPlugin({ container: name })).rejects.toThrow(/does not exist: add size=/);
    await s.create();
    await expect(startPlugin({ container: name })).rejects.toThrow(/not set up as a disk: add size=/);
    const p = await startPlugin({ container: name, size: '64K', objectSize: '8K' });
    const h = await p.open('', false);
    expect(await p.getSize(h)).toBe(65536);
    const meta = await new SwiftContainerStore(v1Connection(env), name).getContainerMeta();
    expect(meta).toMatchObject({ [META.version]: '1', [META.objects]: '8', [META.objectSize]: '8192' });
    await p.unload!();
    started.pop();
    await expect(startPlugin({ container: name, size: '128K' })).rejects.toThrow(/resizing is not supported/);
    await expect(startPlugin({ container: uniqueName('bad'), size: '10000', objectSize: '4K' })).rejects.toThrow(
      /multiple of the object size/,
    );
  });

  it('says so when the password is wrong', async () => {
    await expect(startPlugin({ container: uniqueName('x'), password: 'nope' })).rejects.toThrow(
      /credentials refused.*check/,
    );
  });
});

describe('secrets file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nbdts-swift-'));

  it('parses swiftnbd files: sections, authurl alias, [DEFAULT], comments', () => {
    const s = parseSecrets(
      [
        '# swiftnbd secrets',
        '[DEFAULT]',
        'authurl = http://a/auth/v1.0',
        '',
        '[disk0]',
        'username = t:u',
        'password = p',
        '[disk1]',
        'Username: t:v',
        'password=q',
        'read-only = 1',
        'auth_url = http://b/auth/v1.0',
      ].join('\n'),
    );
    expect([...s.keys()]).toEqual(['disk0', 'disk1']);
    expect(s.get('disk0')).toEqual({ 'auth-url': 'http://a/auth/v1.0', username: 't:u', password: 'p' });
    expect(s.get('disk1')).toMatchObject({ 'auth-url': 'http://b/auth/v1.0', username: 't:v', 'read-only': '1' });
    expect(() => parseSecrets('[a]\nbogus = 1')).toThrow(/unknown key 'bogus'/);
    expect(() => parseSecrets('username = x')).toThrow(/outside any \[container\]/);
  });

  it('serves every section as an export, honours read-only, and warns about a readable file', async () => {
    const a = uniqueName('sa');
    const b = uniqueName('sb');
    await swiftnbdDisk(a, 2, { 1: Buffer.alloc(OBJ, 0xa1) });
    await swiftnbdDisk(b, 3, { 0: Buffer.alloc(OBJ, 0xb0) });
    const file = join(dir, 'secrets.conf');
    writeFileSync(
      file,
      `[${a}]\nusername = ${env.user}\npassword = ${env.key}\nauthurl = ${env.authUrl}\n\n` +
        `[${b}]\nusername = ${env.user}\npassword = ${env.key}\nauthurl = ${env.authUrl}\nread-only = 1\n`,
    );
    chmodSync(file, 0o644);
    const plugin = createSwiftPlugin({ listLimit: 5 });
    const config = await swiftConfig.parseAsync({ secrets: file });
    await plugin.configComplete!(config);
    started.push(plugin);
    expect(warnings.some((w) => w.includes('readable by group or others'))).toBe(true);
    await plugin.getReady!(config, { readonly: false });
    expect((await plugin.listExports!(false)).map((e) => e.name)).toEqual([a, b]);
    expect(await plugin.defaultExport!(false)).toBe(a);
    const ha = await plugin.open(a, false);
    const hb = await plugin.open(b, false);
    expect(await plugin.getSize(ha)).toBe(2 * OBJ);
    expect(await plugin.getSize(hb)).toBe(3 * OBJ);
    expect((await read(plugin, ha, OBJ, 4))[0]).toBe(0xa1);
    expect((await read(plugin, hb, 0, 4))[0]).toBe(0xb0);
    expect(await plugin.canWrite!(ha)).toBe(true);
    expect(await plugin.canWrite!(hb)).toBe(false);
    await expect(Promise.resolve().then(() => plugin.open('nope', false))).rejects.toThrow(/no export 'nope'/);
  });

  it('lets the file override command-line defaults, section by section', async () => {
    const file = join(dir, 'layered.conf');
    writeFileSync(
      file,
      '[DEFAULT]\nauth-version = 3\nuser_domain_name = people\n[a]\nusername = alice\npassword = pa\n' +
        '[b]\nusername = bob\npassword = pb\nauthurl = https://other/v3\nregion = r9\n',
      { mode: 0o600 },
    );
    const config = await swiftConfig.parseAsync({
      secrets: file,
      authUrl: 'https://keystone/v3',
      projectName: 'proj',
      password: 'cli',
    });
    const { exports } = resolveExports(config);
    expect(
      exports.map((e) => [
        e.container,
        e.auth.authUrl,
        e.auth.username,
        e.auth.password?.reveal(),
        e.auth.authVersion,
        e.auth.userDomainName,
        e.auth.projectName,
        e.auth.region,
      ]),
    ).toEqual([
      ['a', 'https://keystone/v3', 'alice', 'pa', 3, 'people', 'proj', undefined],
      ['b', 'https://other/v3', 'bob', 'pb', 3, 'people', 'proj', 'r9'],
    ]);
    const one = await swiftConfig.parseAsync({ secrets: file, container: 'zzz' });
    expect(() => resolveExports(one)).toThrow(/has no \[zzz\] section \(it has: a, b\)/);
    expect(() => resolveExports(swiftConfigDefaults())).toThrow(/container= is required/);
  });

  it('does not warn about a private file, and takes one section with container=', async () => {
    const a = uniqueName('sc');
    await swiftnbdDisk(a, 2, {});
    const file = join(dir, 'private.conf');
    writeFileSync(
      file,
      `[${a}]\nusername = ${env.user}\npassword = ${env.key}\nauthurl = ${env.authUrl}\n[other]\nusername = x\npassword = y\n`,
    );
    chmodSync(file, 0o600);
    const plugin = createSwiftPlugin();
    const config = await swiftConfig.parseAsync({ secrets: file, container: a });
    await plugin.configComplete!(config);
    started.push(plugin);
    await plugin.getReady!(config, { readonly: false });
    expect(warnings.filter((w) => w.includes('readable'))).toEqual([]);
    expect((await plugin.listExports!(false)).map((e) => e.name)).toEqual([a]);
  });
});
