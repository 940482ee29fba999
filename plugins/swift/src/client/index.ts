export {
  createAuthenticator,
  guessAuthVersion,
  pickEndpoint,
  V1Auth,
  V2Auth,
  V3Auth,
  StaticAuth,
  type Authenticator,
  type AuthOptions,
  type AuthVersion,
  type Credentials,
  type EndpointInterface,
} from './auth.ts';
export { SwiftConnection, encodeName, type SwiftRequest, type ContainerSummary } from './connection.ts';
export { SwiftContainerStore, type ContainerStoreOptions, type ContainerInfo } from './container-store.ts';
export { kindOfStatus, statusError } from './errors.ts';
export { send, DEFAULT_TIMEOUT_MS, type HttpRequest, type HttpResponse } from './http.ts';
