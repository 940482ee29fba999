import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { z, param, Secret, resolveSecret, toCamel, toKebab } from '../src/index.ts';

describe('param helpers', () => {
  const schema = z
    .object({
      size: param.size(),
      readonly: param.bool().optional(),
      connections: param.int(1, 64).optional(),
      password: param.secret().optional(),
    })
    .strict();

  it('parses strings into typed values', async () => {
    const cfg = await schema.parseAsync({ size: '1G', readonly: 'yes', connections: '8', password: 'hunter2' });
    expect(cfg.size).toBe(2 ** 30);
    expect(cfg.readonly).toBe(true);
    expect(cfg.connections).toBe(8);
    expect(cfg.password).toBeInstanceOf(Secret);
    expect(cfg.password?.reveal()).toBe('hunter2');
  });

  it('reports the problem for bad values', async () => {
    const r = await schema.safeParseAsync({ size: 'huge', connections: '65' });
    expect(r.success).toBe(false);
    const msgs = r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(msgs).toContain("size: size: cannot parse 'huge' as a size (examples: 4096, 512M, 1G, 1.5T)");
    expect(msgs).toContain('connections: must be between 1 and 64, got 65');
  });

  it('maps kebab-case and camelCase keys', () => {
    expect(toCamel('auth-url')).toBe('authUrl');
    expect(toCamel('project_domain_name')).toBe('projectDomainName');
    expect(toKebab('applicationCredentialId')).toBe('application-credential-id');
  });
});

describe('secrets', () => {
  it('never print their value', () => {
    const s = new Secret('swordfish');
    expect(`${s}`).toBe('[secret]');
    expect(JSON.stringify({ s })).toBe('{"s":"[secret]"}');
    expect(inspect({ s })).not.toContain('swordfish');
  });

  it('read +FILE and env:NAME', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbdts-secret-'));
    writeFileSync(join(dir, 'pw'), 'from-file\n');
    expect((await resolveSecret(`+${join(dir, 'pw')}`)).reveal()).toBe('from-file');
    process.env.NBDTS_TEST_SECRET = 'from-env';
    expect((await resolveSecret('env:NBDTS_TEST_SECRET')).reveal()).toBe('from-env');
    await expect(resolveSecret('env:NBDTS_NO_SUCH_VAR', 'password')).rejects.toThrow(
      'password: environment variable NBDTS_NO_SUCH_VAR is not set',
    );
    await expect(resolveSecret(`+${join(dir, 'missing')}`, 'password')).rejects.toThrow(/^password: cannot read/);
  });
});
