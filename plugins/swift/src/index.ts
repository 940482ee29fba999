import { createSwiftPlugin } from './plugin.ts';

export { createSwiftPlugin, type SwiftHandle, type SwiftPluginOptions } from './plugin.ts';
export { swiftConfig, resolveExports, type SwiftConfig, type ExportSettings } from './config.ts';
export * from './format.ts';
export { lockContainer, unlockContainer, forceUnlock, lockOwner, type ContainerLock } from './container-lock.ts';
export { parseSecrets, readSecretsFile, type SecretsFile, type SecretsSection } from './secrets-file.ts';
export { containerStore } from './disk.ts';
export * from './client/index.ts';

/** The `swift` plugin: `nbdts swift container=mynbd0 auth-url=URL username=U password=P`. */
export default createSwiftPlugin();
