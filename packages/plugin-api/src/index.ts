/**
 * `@nbdts/plugin-api`: what a plugin or filter is written against. The
 * engine's own hooks (logger and shutdown installation, buffer pools, addon
 * loading) are on the `@nbdts/plugin-api/engine` subpath.
 */
export { Flag, type FlagBits, type Support } from './flags.ts';
export { NbdError, nbdError, ConfigError, type Errno } from './errors.ts';
export { parseSize, parseBool, formatSize, MAX_SIZE } from './size.ts';
export { Secret, resolveSecret } from './secret.ts';
export { isAllZero } from './zero.ts';
export { lent, releaseOf } from './lent.ts';
export * as param from './params.ts';
export { toKebab, toCamel, type ParamMeta } from './params.ts';
export { log } from './log.ts';
export { requestShutdown } from './shutdown.ts';
export { moduleSettings, type ModuleSettings } from './settings.ts';
export {
  ExtentType,
  definePlugin,
  type Plugin,
  type ServerInfo,
  type Extent,
  type ExportInfo,
  type BlockSize,
  type ReadResult,
  type Awaitable,
  type PluginThreads,
} from './types.ts';
export { z } from 'zod';
export {
  defineFilter,
  type Filter,
  type Next,
  type NextOpen,
  type OwnedNext,
  type NextExports,
  type Client,
} from './filter.ts';
