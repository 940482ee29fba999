import { createFilePlugin } from './plugin.ts';

export { createFilePlugin, fileConfig, type FileConfig, type FileHandle, type FilePluginOptions } from './plugin.ts';
export { loadNative, isUnsupported, BUILD_HINT, type FileOps, type NativeLoad } from './native.ts';

/** The built-in `file` plugin: `nbdts file file=disk.img`. */
export default createFilePlugin();
