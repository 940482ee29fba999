/**
 * Side-by-side runs against nbdkit, the reference: the same command line on
 * both servers, the same real clients, and what they see compared. Used by
 * every built-in filter's comparison tests.
 *
 *   const pair = await startPair(['--filter=offset', 'memory', '1M', 'offset=4096']);
 *   expect(await exportFacts(pair.nbdts.uri)).toEqual(await exportFacts(pair.nbdkit.uri));
 *   await pair.stop();
 */
import { nbdinfoJson, nbdinfoMap, nbdsh, type MapEntry } from './clients.ts';
import type { RunResult } from './run.ts';
import { startNbdkit, startNbdts, type ServerProcess, type StartOptions } from './server.ts';

export interface Pair {
  nbdts: ServerProcess;
  nbdkit: ServerProcess;
  /** Both, for `for (const s of pair.both)` loops. */
  both: [ServerProcess, ServerProcess];
  /** Stop both; resolves with their exit codes. */
  stop(): Promise<[number | null, number | null]>;
}

export interface PairOptions extends StartOptions {
  /** nbdkit's arguments when they must differ (a plugin nbdts names otherwise); default the same. */
  nbdkitArgs?: readonly string[];
}

/** Start nbdts and nbdkit with the same arguments (options, filters, plugin, parameters), each on its own socket. */
export async function startPair(args: readonly string[], opts: PairOptions = {}): Promise<Pair> {
  const { nbdkitArgs, ...start } = opts;
  const [a, b] = await Promise.allSettled([startNbdts(args, start), startNbdkit(nbdkitArgs ?? args, start)]);
  if (a.status === 'rejected' || b.status === 'rejected') {
    if (a.status === 'fulfilled') await a.value.stop('SIGKILL');
    if (b.status === 'fulfilled') await b.value.stop('SIGKILL');
    throw a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason;
  }
  const nbdts = a.value;
  const nbdkit = b.value;
  return {
    nbdts,
    nbdkit,
    both: [nbdts, nbdkit],
    stop: async () => [await nbdts.stop(), await nbdkit.stop()],
  };
}

/** What a client learns about an export from the handshake (nbdinfo --json), without names and descriptions. */
export interface ExportFacts {
  size: number;
  readOnly: boolean;
  canFlush: boolean;
  canFua: boolean;
  canTrim: boolean;
  canZero: boolean;
  canFastZero: boolean;
  canMultiConn: boolean;
  canCache: boolean;
  canDf: boolean;
  rotational: boolean;
  /** Only when the server advertised NBD_INFO_BLOCK_SIZE. */
  blockSize?: { minimum: number; preferred: number; maximum: number };
}

export interface FactsOptions {
  /** Leave out the block size (nbdkit's plugins often advertise none where nbdts does). */
  blockSize?: boolean;
}

export async function exportFacts(uri: string, opts: FactsOptions = {}): Promise<ExportFacts> {
  const e = (await nbdinfoJson(uri)).exports[0];
  if (!e) throw new Error(`nbdinfo --json ${uri}: no export`);
  const facts: ExportFacts = {
    size: e['export-size'],
    readOnly: e.is_read_only,
    canFlush: e.can_flush,
    canFua: e.can_fua,
    canTrim: e.can_trim,
    canZero: e.can_zero,
    canFastZero: e.can_fast_zero,
    canMultiConn: e.can_multi_conn,
    canCache: e.can_cache,
    canDf: e.can_df,
    rotational: e.is_rotational,
  };
  if (opts.blockSize !== false && e.block_size_minimum !== undefined) {
    facts.blockSize = {
      minimum: e.block_size_minimum,
      preferred: e.block_size_preferred!,
      maximum: e.block_size_maximum!,
    };
  }
  return facts;
}

/** base:allocation extents as [offset, length, type], neighbours of one type merged (servers may split differently). */
export async function allocationMap(uri: string): Promise<Array<[number, number, number]>> {
  const out: Array<[number, number, number]> = [];
  for (const e of (await nbdinfoMap(uri)) as MapEntry[]) {
    const last = out.at(-1);
    if (last && last[2] === e.type && last[0] + last[1] === e.offset) last[1] += e.length;
    else out.push([e.offset, e.length, e.type]);
  }
  return out;
}

/**
 * Run the same nbdsh script on both servers (strict mode off, so a server's
 * error replies are seen, not libnbd's own checks); returns what each printed.
 * Fails the test if either exits non-zero.
 */
export async function nbdshOnBoth(pair: Pair, script: string, meta = true): Promise<{ nbdts: string; nbdkit: string }> {
  const prelude = `h.set_strict_mode(0)\n${meta ? 'h.add_meta_context("base:allocation")\n' : ''}`;
  const one = async (s: ServerProcess): Promise<string> => {
    const r: RunResult = await nbdsh(`${prelude}h.connect_uri(${JSON.stringify(s.uri)})\n${script}`, null);
    if (r.code !== 0) throw new Error(`nbdsh against ${s.kind} failed (code ${r.code}):\n${r.stderr}\n${s.stderr()}`);
    return r.stdout;
  };
  const [nbdts, nbdkit] = await Promise.all([one(pair.nbdts), one(pair.nbdkit)]);
  return { nbdts, nbdkit };
}
