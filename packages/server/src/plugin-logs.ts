import { setPluginLogger } from '@nbdts/plugin-api/engine';
import type { Logger } from 'pino';

/** Send the plugin API's `log` to this engine's logger (one per thread: module state is per thread). */
export function routePluginLogs(logger: Logger): void {
  const plog = logger.child({ component: 'plugin' });
  setPluginLogger({
    debug: (msg, fields) => plog.debug(fields ?? {}, msg),
    info: (msg, fields) => plog.info(fields ?? {}, msg),
    warn: (msg, fields) => plog.warn(fields ?? {}, msg),
    error: (msg, fields) => plog.error(fields ?? {}, msg),
    get debugEnabled() {
      return plog.isLevelEnabled('debug');
    },
  });
}
