export * from './store.ts';
export { ObjectsLayout, SingleObjectLayout, paddedKeys, type Layout, type KeyScheme } from './layout.ts';
export {
  ObjectDevice,
  DEFAULT_CACHE_SIZE,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_READAHEAD,
  type DeviceOptions,
} from './device.ts';
export { deviceCallbacks, deviceBlockSize, type DeviceCallbacks } from './plugin-adapter.ts';
export {
  acquireLock,
  releaseLock,
  readLock,
  breakLock,
  defaultLockOwner,
  LockHeldError,
  type LockInfo,
  type HeldLock,
} from './lock.ts';
export {
  DEFAULT_RETRY,
  STARTUP_RETRY,
  VerifyError,
  backoffDelay,
  isBusyAnswer,
  isRetryable,
  warnBusy,
  withRetry,
  withStartupRetry,
  type RetryPolicy,
} from './retry.ts';
export { Md5Offload, md5Hex, md5Offload } from './md5.ts';
export { isAllZero } from '@nbdts/plugin-api';
export type { DeviceStats } from './stats.ts';
export { Progress, parallel, consoleOutput, stderrLogger, type Output } from './ctl-support.ts';
export {
  HttpTransport,
  DEFAULT_CONNECTIONS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type HttpTransportOptions,
  type TransportRequest,
  type TransportResponse,
} from './http.ts';
export { networkError } from './net-errors.ts';
