/**
 * `@nbdts/plugin-api/engine`: the engine's side of the plugin API, and
 * helpers the built-in plugins share. Not part of the plugin contract (the
 * package root is): installing the logger and the shutdown handler, pooled
 * and prefaulted buffers, loading native addons.
 */
export { setPluginLogger, type PluginLogger } from './log.ts';
export { setShutdownHandler } from './shutdown.ts';
export { loadAddon, type AddonLoad } from './addon.ts';
export { PrefaultedBuffers, freshSlabs, MIN_PREFAULT, type SlabSource } from './prefault.ts';
export { BufferPool } from './pool.ts';
