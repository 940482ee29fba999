export { Flag, type FlagBits, type Support } from './flags.ts';
export { NbdError, nbdError, ConfigError, type Errno } from './errors.ts';
export { parseSize, parseBool, formatSize, MAX_SIZE } from './size.ts';
export { Secret, resolveSecret } from './secret.ts';
export { isAllZero } from './zero.ts';
export { loadAddon, type AddonLoad } from './addon.ts';
export { lent, releaseOf } from './lent.ts';
export { PrefaultedBuffers, freshSlabs, MIN_PREFAULT, type SlabSource } from './prefault.ts';
export { BufferPool } from './pool.ts';
export * as param from './params.ts';
export { toKebab, toCamel, type ParamMeta } from './params.ts';
export { log, setPluginLogger, type PluginLogger } from './log.ts';
export {
  ExtentType,
  definePlugin,
  defineFilter,
  type Plugin,
  type Filter,
  type ServerInfo,
  type Extent,
  type ExportInfo,
  type BlockSize,
  type ReadResult,
  type Awaitable,
  type PluginThreads,
} from './types.ts';
export { z } from 'zod';
