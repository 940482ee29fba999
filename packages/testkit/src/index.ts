export { repoRoot, nbdtsBin, unixUri } from './paths.ts';
export { run, runOk, killGroup, type RunOptions, type RunResult } from './run.ts';
export { requireTool, findTool, systemFirstPath } from './tools.ts';
export { tempDir, cleanupTempDirs, type TempDir } from './tmp.ts';
export {
  startServer,
  startNbdts,
  startNbdkit,
  serverKind,
  serverCommand,
  runCaptive,
  type ServerKind,
  type ServerProcess,
  type StartOptions,
} from './server.ts';
export {
  nbdsh,
  nbdshOk,
  NBDSH_TRYIT,
  nbdinfoJson,
  nbdinfoMap,
  type NbdinfoJson,
  type NbdinfoExport,
  type MapEntry,
} from './clients.ts';
export { writeRandomFile, sha256File, treeChecksums, writeRandomTree, sparseFile } from './data.ts';
export { spawnBackground, waitFor, type BackgroundProcess } from './background.ts';
export { withNbdfuse, withLoopMount } from './mounts.ts';
export { ensureAddon } from './addon.ts';
// Written by others, re-exported so tests can import everything from '@nbdts/testkit'.
export { RawClient, type OptionReply, type ExportDetails, type Reply } from './raw-client.ts';
export { ensureSwift, parseStoreEnv, type SwiftEnv } from './stores/swift.ts';
export { ensureCeph, type CephEnv } from './stores/ceph.ts';
export { Forwarder } from './forwarder.ts';
export {
  startPair,
  exportFacts,
  allocationMap,
  nbdshOnBoth,
  type Pair,
  type PairOptions,
  type ExportFacts,
  type FactsOptions,
} from './compare.ts';
