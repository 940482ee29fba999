import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setPluginLogger } from '@nbdts/plugin-api/engine';
import { main } from '../src/ctl/main.ts';
import { LOCK_KEY, META, SwiftContainerStore } from '../src/index.ts';
import { ensureSwift, removeContainer, uniqueName, v1Connection, type SwiftEnv } from './helpers.ts';

let env: SwiftEnv;
const dir = mkdtempSync(join(tmpdir(), 'nbdts-swift-ctl-'));
const cleanup: SwiftContainerStore[] = [];

beforeAll(async () => {
  env = await ensureSwift();
});

afterAll(async () => {
  for (const s of cleanup) await removeContainer(s);
});

/** Run nbdts-swift with the test account; returns status and what it printed. */
async function ctl(...args: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await main(['-a', env.authUrl, '-u', env.user, '-p', env.key, '-q', ...args], {
    out: (l) => {
      out += `${l}\n`;
    },
    err: (l) => {
      err += `${l}\n`;
    },
  });
  setPluginLogger({ debug() {}, info() {}, warn() {}, error() {}, debugEnabled: false });
  return { status, out, err };
}

function store(name: string): SwiftContainerStore {
  const s = new SwiftContainerStore(v1Connection(env), name);
  cleanup.push(s);
  return s;
}

describe('nbdts-swift', () => {
  it('sets up a container and refuses to clobber it without --force', async () => {
    const name = uniqueName('ctl-setup');
    const s = store(name);
    expect((await ctl('setup', name, '32', '--object-size', '4096')).status).toBe(0);
    expect(await s.getContainerMeta()).toMatchObject({
      [META.version]: '1',
      [META.objects]: '32',
      [META.objectSize]: '4096',
    });
    const again = await ctl('setup', name, '64');
    expect(again.status).toBe(1);
    expect(again.err).toMatch(/already set up.*--force/);
    expect((await ctl('setup', name, '--size', '1M', '--object-size', '64K', '--force')).status).toBe(0);
    expect((await s.getContainerMeta())[META.objects]).toBe('16');
    const info = await ctl('info', name);
    expect(info.out).toMatch(/size: 1048576/);
    expect(info.out).toMatch(/objects: 16 of 65536 bytes/);
    const list = await ctl('list', '-s');
    expect(list.out).toContain(`${name} objects=16 object-size=65536 size=1048576 version=1 unlocked`);
  });

  it("defaults to 1 MiB objects for --size, and to swiftnbd-ctl's 64 KiB for a count of objects", async () => {
    const bySize = uniqueName('ctl-defsize');
    expect((await ctl('setup', bySize, '--size', '4M')).status).toBe(0);
    expect(await store(bySize).getContainerMeta()).toMatchObject({ [META.objects]: '4', [META.objectSize]: '1048576' });
    const byCount = uniqueName('ctl-defcount');
    expect((await ctl('setup', byCount, '16')).status).toBe(0);
    expect(await store(byCount).getContainerMeta()).toMatchObject({ [META.objects]: '16', [META.objectSize]: '65536' });
    await ctl('delete', bySize);
    await ctl('delete', byCount);
  });

  it('locks and unlocks like swiftnbd-ctl', async () => {
    const name = uniqueName('ctl-lock');
    const s = store(name);
    await ctl('setup', name, '4');
    expect((await ctl('lock', name)).status).toBe(0);
    expect((await s.getContainerMeta())[META.client]).toMatch(/^ctl\//);
    expect(await s.head(LOCK_KEY)).not.toBeNull();
    const twice = await ctl('lock', name);
    expect(twice.status).toBe(1);
    expect(twice.err).toMatch(/already locked/);
    expect((await ctl('unlock', name)).status).toBe(0);
    const meta = await s.getContainerMeta();
    expect(meta[META.client]).toBeUndefined();
    expect(meta[META.last]).toMatch(/^ctl\//);
    expect(await s.head(LOCK_KEY)).toBeNull();
    expect((await ctl('unlock', name)).status).toBe(1);
  });

  it('uploads skipping zero objects and downloads a sparse identical image', async () => {
    const name = uniqueName('ctl-img');
    const s = store(name);
    const image = join(dir, 'in.raw');
    const size = 64 * 4096;
    const data = Buffer.alloc(size);
    randomBytes(4096).copy(data, 3 * 4096);
    randomBytes(100).copy(data, 40 * 4096 + 7);
    writeFileSync(image, data);
    const up = await ctl('upload', image, name, '--object-size', '4096', '-j', '4');
    expect(up.status).toBe(0);
    expect(up.err).toMatch(/2 objects stored, 62 zero objects skipped/);
    const keys: string[] = [];
    for await (const o of s.list('disk.part/')) keys.push(o.key);
    expect(keys).toEqual(['disk.part/00000003', 'disk.part/00000040']);
    const out = join(dir, 'out.raw');
    expect((await ctl('download', name, out)).status).toBe(0);
    const back = readFileSync(out);
    expect(createHash('md5').update(back).digest('hex')).toBe(createHash('md5').update(data).digest('hex'));
    // Sparse: only the two data objects take space.
    expect(statSync(out).blocks * 512).toBeLessThan(size / 4);
    // A locked disk is not downloaded.
    await ctl('lock', name);
    const locked = await ctl('download', name, out);
    expect(locked.status).toBe(1);
    expect(locked.err).toMatch(/in use/);
    await ctl('unlock', name);
    // Upload again with object 3 now zero: it is deleted so the container reads as the image.
    data.fill(0, 3 * 4096, 4 * 4096);
    writeFileSync(image, data);
    expect((await ctl('upload', image, name)).status).toBe(0);
    expect(await s.head('disk.part/00000003')).toBeNull();
  });

  it('deletes every object across listing pages, then the container', async () => {
    const name = uniqueName('ctl-del');
    const s = store(name);
    await ctl('setup', name, '40', '--object-size', '512');
    const b = Buffer.alloc(512, 1);
    const md5 = createHash('md5').update(b).digest('hex');
    await Promise.all(
      Array.from({ length: 23 }, (_, i) => s.put(`disk.part/${String(i).padStart(8, '0')}`, b, { md5 })),
    );
    const res = await ctl('delete', name, '--list-limit', '5', '-j', '8');
    expect(res.status).toBe(0);
    expect(res.err).toMatch(/deleted \(23 objects\)/);
    expect((await ctl('info', name)).err).toMatch(/does not exist/);
  });

  it('refuses to delete a locked disk without --force', async () => {
    const name = uniqueName('ctl-del-locked');
    store(name);
    await ctl('setup', name, '2');
    await ctl('lock', name);
    const res = await ctl('delete', name);
    expect(res.status).toBe(1);
    expect(res.err).toMatch(/locked.*--force/);
    expect((await ctl('delete', name, '--force')).status).toBe(0);
  });

  it('reads credentials from a swiftnbd secrets file', async () => {
    const name = uniqueName('ctl-secrets');
    store(name);
    const file = join(dir, 'secrets.conf');
    writeFileSync(file, `[${name}]\nusername = ${env.user}\npassword = ${env.key}\nauthurl = ${env.authUrl}\n`, {
      mode: 0o600,
    });
    let err = '';
    const status = await main(['--secrets', file, 'setup', name, '3'], {
      out: () => {},
      err: (l) => {
        err += l;
      },
    });
    expect(status).toBe(0);
    let out = '';
    expect(
      await main(['--secrets', file, 'list', '-s'], {
        out: (l) => {
          out += l;
        },
        err: () => {},
      }),
    ).toBe(0);
    expect(out).toContain(`${name} objects=3`);
    expect(err).not.toContain(env.key);
  });

  it('explains usage mistakes', async () => {
    const r = await ctl('setup');
    expect(r.status).toBe(2);
    expect(r.err).toMatch(/non-option arguments.*--help/);
    const noCreds = await main(['info', 'x'], { out: () => {}, err: () => {} });
    expect(noCreds).toBe(1);
  });
});
