// The package's public API, by name. Helpers (retries, HTTP, query strings, the copy pool) stay
// inside.
export {
  RegistryAuthError,
  RegistryError,
  ManifestNotFoundError,
  isUnreachable,
  type DistributionError,
} from './errors';
export {
  resolveCredentials,
  saveCredentials,
  removeCredentials,
  type AuthConfigOptions,
  type CredentialHelpers,
  type Credentials,
} from './auth-config';
export { login, logout } from './login';
export { Transport, type TransportOptions, type RequestSpec } from './transport';
export type { BodySource, ChunkBody, Response, StreamBody } from './http';
export {
  RegistryClient,
  isIndexMediaType,
  isManifestMediaType,
  type Action,
  type FetchedManifest,
  type OpenBlob,
  type ProgressFn,
  type PullOutcome,
  type PushBlobOptions,
  type PushOutcome,
  type RegistryClientOptions,
} from './client';
export { registryContent, registrySink, type RegistrySinkOptions } from './content';
export { MANIFEST_ACCEPT, MAX_MANIFEST } from './manifests';
export { fallbackTag } from './fallback-tag';
export {
  push,
  pull,
  defaultLocalTag,
  type CopyOptions,
  type PullOptions,
  type PullResult,
  type PushOptions,
  type PushResult,
  type TransferEvent,
  type TransferSummary,
} from './copy';
export { openRemoteImage, type RemoteImage } from './remote-image';
