import { z } from 'zod';
import { parseBool, parseSize } from './size.ts';
import { resolveSecret, type Secret } from './secret.ts';

/**
 * Zod helpers for plugin parameters. Every value arrives from `key=value` on
 * the command line as a string; these parse it and label the type for --help.
 * Keys in a config schema are camelCase; on the command line they are written
 * in kebab-case (`authUrl` is `auth-url=`).
 */

/** The label shown by --help for a parameter, stored in zod's metadata. */
export interface ParamMeta {
  /** e.g. SIZE, BOOL, INT, SECRET, PATH, URL; defaults to STRING or the enum's values. */
  type?: string;
  /** Print this instead of the default value in --help. */
  defaultText?: string;
}

function issue(ctx: z.core.$RefinementCtx<string>, err: unknown): never {
  ctx.addIssue({ code: 'custom', message: (err as Error).message });
  return z.NEVER;
}

/** A byte size: 4096, 512M, 1G, 1.5T. */
export function size() {
  return z
    .string()
    .transform((s, ctx) => {
      try {
        return parseSize(s);
      } catch (err) {
        return issue(ctx, err);
      }
    })
    .meta({ type: 'SIZE' } satisfies ParamMeta);
}

/** true/false, yes/no, on/off, 1/0. */
export function bool() {
  return z
    .string()
    .transform((s, ctx) => {
      try {
        return parseBool(s);
      } catch (err) {
        return issue(ctx, err);
      }
    })
    .meta({ type: 'BOOL' } satisfies ParamMeta);
}

/** A whole number in [min, max]. */
export function int(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return z
    .string()
    .transform((s, ctx) => {
      const n = Number(s.trim());
      if (!/^\s*-?\d+\s*$/.test(s) || !Number.isSafeInteger(n)) {
        ctx.addIssue({ code: 'custom', message: `expected a whole number, got '${s}'` });
        return z.NEVER;
      }
      if (n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `must be between ${min} and ${max}, got ${n}` });
        return z.NEVER;
      }
      return n;
    })
    .meta({ type: 'INT' } satisfies ParamMeta);
}

/** A password or key: `+FILE`, `-` (stdin), `-FD`, `env:NAME` or the literal value. Parse with parseAsync. */
export function secret() {
  return z
    .string()
    .transform(async (s, ctx): Promise<Secret> => {
      try {
        return await resolveSecret(s);
      } catch (err) {
        return issue(ctx, err);
      }
    })
    .meta({ type: 'SECRET' } satisfies ParamMeta);
}

/** A filesystem path. */
export function path() {
  return z
    .string()
    .min(1, 'must not be empty')
    .meta({ type: 'PATH' } satisfies ParamMeta);
}

/** A URL (http or https). */
export function url() {
  return z
    .string()
    .url('expected a URL such as http://127.0.0.1:8080/auth/v1.0')
    .meta({ type: 'URL' } satisfies ParamMeta);
}

/** kebab-case spelling of a camelCase config key, as written on the command line. */
export function toKebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** camelCase config key for a kebab-case (or snake_case) command-line key. */
export function toCamel(key: string): string {
  return key.replace(/[-_]([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
