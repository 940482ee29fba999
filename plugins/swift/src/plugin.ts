import {
  ConfigError,
  definePlugin,
  formatSize,
  log,
  NbdError,
  type ExportInfo,
  type Plugin,
  type Support,
} from '@nbdts/plugin-api';
import { ObjectDevice, deviceCallbacks, warnBusy, withStartupRetry, type DeviceOptions } from '@nbdts/objstore';
import type { SwiftContainerStore } from './client/index.ts';
import { resolveExports, swiftConfig, type ExportSettings, type SwiftConfig } from './config.ts';
import { lockContainer, lockOwner, unlockContainer, type ContainerLock } from './container-lock.ts';
import { containerStore, startupError } from './disk.ts';
import {
  DEFAULT_OBJECT_SIZE,
  FORMAT_VERSION,
  diskSize,
  formatMeta,
  layoutFor,
  objectsFor,
  parseFormat,
  type DiskFormat,
} from './format.ts';

/** One container being served. */
interface Export {
  settings: ExportSettings;
  store: SwiftContainerStore;
  /** Set while opening (lock + listing) and after; shared by every connection. */
  ready?: Promise<Served>;
}

interface Served {
  device: ObjectDevice;
  format: DiskFormat;
  lock: ContainerLock;
}

export interface SwiftHandle {
  readonly device: ObjectDevice;
  readonly readOnly: boolean;
  readonly container: string;
  readonly format: DiskFormat;
}

export interface SwiftPluginOptions {
  /** Objects per listing page (tests use small pages). */
  listLimit?: number;
  /** Extra device options (tests shorten delays and retries). */
  device?: DeviceOptions;
}

/** Read (and when asked, create) the disk format of a container. */
async function prepareFormat(store: SwiftContainerStore, config: SwiftConfig): Promise<DiskFormat> {
  let meta: Record<string, string> | undefined;
  try {
    meta = await store.getContainerMeta();
  } catch (err) {
    if ((err as { kind?: string }).kind !== 'missing-container') throw err;
    if (config.size === undefined) {
      throw new ConfigError(
        `swift: container ${store.container} does not exist: add size= (and object-size=) ` +
          `to create it as a disk, or run nbdts-swift setup ${store.container} OBJECTS`,
      );
    }
  }
  let format = meta === undefined ? null : parseFormat(store.container, meta);
  if (format === null) {
    if (config.size === undefined) {
      throw new ConfigError(
        `swift: container ${store.container} is not set up as a disk: add size= (and object-size=) ` +
          `to set it up, or run nbdts-swift setup ${store.container} SIZE`,
      );
    }
    const objectSize = config.objectSize ?? DEFAULT_OBJECT_SIZE;
    const objects = objectsFor(config.size, objectSize);
    await store.create(formatMeta(objects, objectSize));
    log.info(
      `swift: ${store.container}: set up a ${formatSize(config.size)} disk of ${objects} objects of ${formatSize(objectSize)}`,
    );
    format = { version: FORMAT_VERSION, objects, objectSize, client: undefined, last: undefined };
  } else {
    if (config.size !== undefined && config.size !== diskSize(format)) {
      throw new ConfigError(
        `swift: container ${store.container} is a ${formatSize(diskSize(format))} disk but size=${config.size}: ` +
          'resizing is not supported (leave size= out to use it as it is)',
      );
    }
    if (config.objectSize !== undefined && config.objectSize !== format.objectSize) {
      log.warn(
        `swift: ${store.container}: object-size= is ignored: the container's objects are ${format.objectSize} bytes`,
      );
    }
    if (format.version !== FORMAT_VERSION) {
      log.warn(
        `swift: ${store.container}: disk format version ${format.version}, expected ${FORMAT_VERSION}; serving it anyway`,
      );
    }
  }
  return format;
}

/**
 * The `swift` plugin: `nbdts swift container=mynbd0 auth-url=URL username=U password=P`.
 * Each container is locked while served and cached by an ObjectDevice shared
 * by every connection to it.
 */
export function createSwiftPlugin(options: SwiftPluginOptions = {}): Plugin<SwiftConfig, SwiftHandle> {
  let config: SwiftConfig | undefined;
  const exports = new Map<string, Export>();
  let defaultName = '';
  let singleContainer = false;

  async function serve(exp: Export): Promise<Served> {
    const c = config!;
    const store = exp.store;
    let lock: ContainerLock | undefined;
    try {
      const busy = warnBusy(`swift: ${store.container}`);
      const format = await withStartupRetry(() => prepareFormat(store, c), busy);
      const owner = lockOwner();
      lock = await withStartupRetry(() => lockContainer(store, { force: c.force, owner }), busy);
      const device = await ObjectDevice.open(store, layoutFor(format), {
        cacheSize: c.cacheSize,
        writethrough: c.cache === 'writethrough',
        maxInFlight: c.connections,
        requestTimeoutMs: c.timeout * 1000,
        ...options.device,
      });
      log.info(
        `swift: serving ${store.container}${exp.settings.readOnly ? ' read-only' : ''}: ` +
          `${formatSize(diskSize(format))} in ${format.objects} objects of ${formatSize(format.objectSize)}, ` +
          `${c.cache} cache of ${formatSize(device.cacheSize)}`,
      );
      return { device, format, lock };
    } catch (err) {
      if (lock) await unlockContainer(store, lock).catch(() => {});
      throw startupError(store.container, err);
    }
  }

  function ensureServed(exp: Export): Promise<Served> {
    exp.ready ??= serve(exp);
    // A failed start (lock held, network down) may be retried by the next client.
    exp.ready.catch(() => {
      exp.ready = undefined;
    });
    return exp.ready;
  }

  async function release(exp: Export): Promise<void> {
    if (!exp.ready) return;
    const served = await exp.ready.catch(() => undefined);
    exp.ready = undefined;
    if (!served) return;
    const name = exp.store.container;
    try {
      await served.device.close();
    } catch (err) {
      // Keep the lock: another server must not start from a disk missing these writes unnoticed.
      log.error(
        `swift: ${name}: data could not be stored: ${(err as Error).message}. ` +
          `The container stays locked; check it, then run nbdts-swift unlock ${name}`,
      );
      return;
    }
    try {
      const clean = await unlockContainer(exp.store, served.lock);
      if (!clean) log.warn(`swift: ${name}: the lock had been broken by someone else while we served it`);
      else log.info(`swift: ${name}: stored everything and unlocked`);
    } catch (err) {
      log.error(`swift: ${name}: could not unlock: ${(err as Error).message}; run nbdts-swift unlock ${name}`);
    }
  }

  const io = deviceCallbacks<SwiftHandle>((h) => h.device);
  const writable = (h: SwiftHandle): boolean => !h.readOnly;

  return definePlugin({
    name: 'swift',
    version: '0.1.0',
    description: 'A disk stored in an OpenStack Swift container (swiftnbd-compatible format)',
    usage: [
      'Serves a container laid out as swiftnbd does: objects disk.part/00000000, ... of object-size bytes.',
      'Set a container up with size= (or nbdts-swift setup), then serve it:',
      '  nbdts swift container=mynbd0 auth-url=http://127.0.0.1:8080/auth/v1.0 username=test:tester password=+pw.txt size=1G',
      'With secrets=FILE and no container=, every [container] section of the file is an export.',
      'A served container is locked; force=true breaks a lock left by a server that died. See docs/plugins/swift.md.',
    ].join('\n'),
    config: swiftConfig,

    configComplete(c) {
      const resolved = resolveExports(c);
      if (resolved.secretsExposed) {
        log.warn(`swift: ${resolved.secretsPath} is readable by group or others: chmod 600 it`);
      }
      if (c.size !== undefined && !c.container)
        throw new ConfigError('size= sets up one container: give container= too');
      config = c;
      exports.clear();
      for (const s of resolved.exports) {
        exports.set(s.container, {
          settings: s,
          store: containerStore(s.container, s.auth, { listLimit: options.listLimit, requestsInFlight: c.connections }),
        });
      }
      defaultName = resolved.exports[0]!.container;
      singleContainer = Boolean(c.container);
    },

    async getReady() {
      // One container: take it now, so a held lock or bad password stops the server with one clear line.
      // Several (secrets file): each is taken when a client first asks for it, as swiftnbd does.
      if (singleContainer) await ensureServed(exports.get(defaultName)!);
    },

    async unload() {
      await Promise.all([...exports.values()].map(release));
    },

    listExports(): ExportInfo[] {
      return [...exports.values()].map((e) => ({
        name: e.store.container,
        description: `swift container ${e.store.container}${e.settings.readOnly ? ' (read-only)' : ''}`,
      }));
    },

    defaultExport: () => defaultName,

    async open(exportName, readonly) {
      const name = exportName === '' ? defaultName : exportName;
      const exp = exports.get(name);
      if (!exp)
        throw new NbdError('ENOENT', `swift: no export '${exportName}' (exports: ${[...exports.keys()].join(', ')})`);
      let served: Served;
      try {
        served = await ensureServed(exp);
      } catch (err) {
        throw new NbdError('EACCES', (err as Error).message, { cause: err });
      }
      return {
        device: served.device,
        format: served.format,
        container: name,
        readOnly: readonly || exp.settings.readOnly,
      };
    },

    exportDescription: (h) =>
      `swift container ${h.container}: ${h.format.objects} objects of ${h.format.objectSize} bytes`,

    ...io,
    canWrite: writable,
    canTrim: writable,
    canZero: (h): Support => (writable(h) ? 'native' : 'none'),
    canFastZero: writable,
    canFua: (h): Support => (writable(h) ? 'native' : 'none'),
  });
}
