/**
 * Read a plugin's zod config schema for --help, --dump-plugin, unknown-key
 * checks and log redaction. Zod 4 keeps a schema's structure in `_zod.def`;
 * we read only the few fields we need through a narrow local type so that a
 * plugin bundling its own copy of zod still works.
 */
import { toKebab, type ParamMeta } from '@nbdts/plugin-api';

interface Def {
  type: string;
  innerType?: Node;
  in?: Node;
  out?: Node;
  shape?: Record<string, Node>;
  entries?: Record<string, string | number>;
  values?: unknown[];
  options?: Node[];
  defaultValue?: unknown;
}

interface Node {
  _zod: { def: Def };
  description?: string;
  meta?: () => (ParamMeta & { description?: string }) | undefined;
}

export interface ParamInfo {
  /** camelCase key in the schema. */
  key: string;
  /** kebab-case key on the command line. */
  flag: string;
  /** Label for --help: SIZE, BOOL, INT, SECRET, STRING, or enum choices joined by '|'. */
  type: string;
  required: boolean;
  /** Text for the default value, when there is one. */
  defaultText?: string;
  description?: string;
  choices?: string[];
}

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'catch', 'readonly', 'nonoptional', 'lazy']);

function isNode(x: unknown): x is Node {
  return (
    typeof x === 'object' &&
    x !== null &&
    '_zod' in x &&
    typeof (x as { _zod?: { def?: unknown } })._zod?.def === 'object'
  );
}

/** The z.object at the root of a config schema (through pipes, refinements and wrappers), or undefined. */
export function objectShape(schema: unknown): Record<string, Node> | undefined {
  let node = schema;
  for (let depth = 0; depth < 20 && isNode(node); depth++) {
    const def = node._zod.def;
    if (def.type === 'object') return def.shape;
    node = def.type === 'pipe' ? def.in : def.innerType;
  }
  return undefined;
}

/** Compact size text for a default byte count: 1048576 -> "1M". */
function sizeText(n: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P', 'E'];
  let i = 0;
  while (n >= 1024 && n % 1024 === 0 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n}${units[i]}`;
}

function describeValue(v: unknown, type: string): string {
  if (typeof v === 'number' && type === 'SIZE') return sizeText(v);
  if (typeof v === 'string') return v;
  if (v instanceof Object && 'toJSON' in v) return JSON.stringify(v);
  return String(v);
}

/** Describe one parameter by walking its wrappers from the outside in. */
export function describeParam(key: string, schema: unknown): ParamInfo {
  let required = true;
  let description: string | undefined;
  let meta: ParamMeta = {};
  let defaultValue: unknown;
  let hasDefault = false;
  let choices: string[] | undefined;
  let baseType: string | undefined;

  const visit = (node: unknown, depth: number): void => {
    if (!isNode(node) || depth > 20) return;
    const def = node._zod.def;
    description ??= node.description;
    const m = typeof node.meta === 'function' ? node.meta() : undefined;
    if (m) {
      meta = { type: meta.type ?? m.type, defaultText: meta.defaultText ?? m.defaultText };
      description ??= m.description;
    }
    if (def.type === 'optional') required = false;
    if ((def.type === 'default' || def.type === 'prefault') && !hasDefault) {
      required = false;
      hasDefault = true;
      try {
        defaultValue = def.defaultValue;
      } catch {
        hasDefault = false;
      }
    }
    if (WRAPPERS.has(def.type)) return visit(def.innerType, depth + 1);
    if (def.type === 'pipe') {
      visit(def.in, depth + 1);
      // The output side names the type when the input is a plain string (z.string().pipe(z.coerce.number())).
      if (baseType === 'STRING' && !choices) {
        baseType = undefined;
        visit(def.out, depth + 1);
        baseType ??= 'STRING';
      }
      return;
    }
    switch (def.type) {
      case 'enum':
        choices = Object.values(def.entries ?? {}).map(String);
        break;
      case 'literal':
        choices = (def.values ?? []).map(String);
        break;
      case 'union': {
        const lits = (def.options ?? []).flatMap((o) => {
          const d = o._zod.def;
          return d.type === 'literal'
            ? (d.values ?? []).map(String)
            : d.type === 'enum'
              ? Object.values(d.entries ?? {}).map(String)
              : [];
        });
        if (lits.length === (def.options ?? []).length && lits.length > 0) choices = lits;
        break;
      }
      case 'number':
      case 'int':
      case 'bigint':
        baseType ??= 'NUMBER';
        break;
      case 'boolean':
        baseType ??= 'BOOL';
        break;
      case 'string':
        baseType ??= 'STRING';
        break;
      case 'transform':
        break;
      default:
        baseType ??= def.type.toUpperCase();
    }
  };
  visit(schema, 0);

  const type = meta.type ?? (choices ? choices.join('|') : (baseType ?? 'STRING'));
  const info: ParamInfo = { key, flag: toKebab(key), type, required };
  if (meta.defaultText !== undefined) info.defaultText = meta.defaultText;
  else if (hasDefault && defaultValue !== undefined) info.defaultText = describeValue(defaultValue, type);
  if (description !== undefined) info.description = description;
  if (choices) info.choices = choices;
  return info;
}

/** Every parameter of a config schema, in declaration order; undefined when the root is not an object. */
export function describeSchema(schema: unknown): ParamInfo[] | undefined {
  const shape = objectShape(schema);
  if (!shape) return undefined;
  return Object.entries(shape).map(([key, node]) => describeParam(key, node));
}
