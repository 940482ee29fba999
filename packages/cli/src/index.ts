export { main, formatError, type Io, type Engine } from './main.ts';
export { StartError, DEFAULT_PORT, serveListening, serveSingle, serveActivated } from './serve.ts';
export { activationFds, listenOnFds } from './activation.ts';
export { parseArgs, UsageError, LOG_LEVELS, type CliOptions, type LogLevel } from './args.ts';
export {
  loadPlugin,
  loadFilter,
  isPathLike,
  isPlugin,
  isFilter,
  BUILTIN_PLUGINS,
  BUILTIN_FILTERS,
  type Loaded,
} from './plugin-loader.ts';
export { parsePluginParams, splitParams, type ParsedParams, type RawParam } from './params.ts';
export {
  renderPluginHelp,
  renderGeneralHelp,
  renderDumpPlugin,
  renderDumpConfig,
  renderVersion,
  VERSION,
} from './help.ts';
export { describeSchema, describeParam, objectShape, type ParamInfo } from './schema.ts';
export { nbdUri, captiveEnv, privateSocket, runCaptive, type Endpoint, type RunningCommand } from './captive.ts';
export { createLogger, pluginLogger, redactConfig, type LoggerOptions } from './logging.ts';
export { watchSignals, watchParent, type StopTrigger } from './signals.ts';
