import { run, runOk, type RunOptions, type RunResult } from './run.ts';
import { requireTool, systemFirstPath } from './tools.ts';

/**
 * Run a Python snippet in nbdsh connected to `uri` (the handle is `h`, the
 * module `nbd`); with uri null the handle is not connected (the script
 * connects, e.g. with h.connect_command). PATH puts /usr/bin first: another
 * python3 earlier on PATH lacks the nbd module.
 */
export function nbdsh(script: string, uri: string | null, opts: RunOptions = {}): Promise<RunResult> {
  const bin = requireTool('nbdsh');
  const args = uri === null ? ['-c', script] : ['-u', uri, '-c', script];
  return run(bin, args, { ...opts, env: { PATH: systemFirstPath(), ...opts.env } });
}

/**
 * Python for nbdsh scripts: `tryit(f)` runs f and returns "ok" or the errno
 * name (EINVAL, ENOSPC, ...) of the nbd.Error it raised.
 */
export const NBDSH_TRYIT = `
import errno
def tryit(f):
    try:
        f()
        return "ok"
    except nbd.Error as e:
        return errno.errorcode.get(e.errnum, str(e.errnum))
`;

/** nbdsh that must succeed; returns stdout. */
export async function nbdshOk(script: string, uri: string | null, opts: RunOptions = {}): Promise<string> {
  const r = await nbdsh(script, uri, opts);
  if (r.code !== 0) throw new Error(`nbdsh failed (code ${r.code}):\n${r.stderr}\nscript:\n${script}`);
  return r.stdout;
}

/** The fields of `nbdinfo --json` used by the tests (one export). */
export interface NbdinfoExport {
  'export-name': string;
  'export-size': number;
  content?: string;
  is_read_only: boolean;
  can_flush: boolean;
  can_fua: boolean;
  can_trim: boolean;
  can_zero: boolean;
  can_fast_zero: boolean;
  can_multi_conn: boolean;
  can_cache: boolean;
  can_df: boolean;
  is_rotational: boolean;
  block_size_minimum?: number;
  block_size_preferred?: number;
  block_size_maximum?: number;
  contexts?: string[];
  [key: string]: unknown;
}

export interface NbdinfoJson {
  protocol: string;
  TLS: boolean;
  structured: boolean;
  exports: NbdinfoExport[];
  [key: string]: unknown;
}

/** `nbdinfo --json ...args` parsed. args is a URI or `[ CMD ... ]` plus options. */
export async function nbdinfoJson(...args: string[]): Promise<NbdinfoJson> {
  const r = await runOk(requireTool('nbdinfo'), ['--json', ...args]);
  return JSON.parse(r.stdout) as NbdinfoJson;
}

export interface MapEntry {
  offset: number;
  length: number;
  type: number;
  description: string;
}

/** `nbdinfo --map --json URI`: base:allocation extents. */
export async function nbdinfoMap(uri: string): Promise<MapEntry[]> {
  const r = await runOk(requireTool('nbdinfo'), ['--map', '--json', uri]);
  return JSON.parse(r.stdout) as MapEntry[];
}
