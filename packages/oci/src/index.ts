export {
  StrataError,
  InvalidArgumentError,
  NotFoundError,
  DigestMismatchError,
  SizeMismatchError,
  InvalidDocumentError,
  UnsafeEntryError,
  LockedError,
  ToolFailedError,
  CorruptError,
  DAMAGED_BLOB_HINT,
  ParseError,
  NoSpaceError,
  noSpaceAt,
  isNoSpace,
  isStrataError,
  redact,
} from './errors';
export type { ErrorCode, ErrorOptions } from './errors';
export { isDigest, parseDigest, digestHex, sha256, chainId, Hasher } from './digest';
export type { Digest } from './digest';
export {
  MediaTypes,
  ArtifactTypes,
  Annotations,
  layerMediaType,
  compressionOf,
  isIndexMediaType,
  isImageMediaType,
} from './media-types';
export type { MediaType, Compression } from './media-types';
export type {
  Descriptor,
  ImageManifest,
  ImageIndex,
  ImageConfig,
  HistoryEntry,
  DebianPackage,
  Distribution,
  Exclusion,
  LayerRecord,
  EmptyStepRecord,
  ShadowedPackage,
  DebuildRecord,
  BaseTemplate,
  TemplateMetadata,
  StoreConfigFile,
} from './types';
export { allSchemas } from './schemas';
export {
  assertValid,
  parseJson,
  validateOciLayout,
  validateIndex,
  validateManifest,
  validateConfig,
  validateTemplateMetadata,
  validateStoreConfig,
  validateGcReport,
  validateDfReport,
  validateDiffReport,
  validateSourceIndex,
} from './validate';
export { encodeJson } from './canonical';
export { parseReference, withDefaultTag, formatReference } from './reference';
export type { Reference } from './reference';
export { VerifyingStream } from './verify';
export type { Expected } from './verify';
export {
  ROLES,
  roleOf,
  matchesPlatform,
  platformSatisfies,
  selectManifest,
  requireManifest,
  resolveManifest,
  requirePlatform,
} from './select';
export type { Role, Selector, PlatformSelector } from './select';
export {
  parsePlatform,
  parsePlatforms,
  normalizePlatform,
  formatPlatform,
  platformsOf,
  isMultiPlatform,
  configPlatform,
} from './platform';
export { counted } from './counted';
export { stepLine } from './step-line';
export { walkGraph, graphDigests } from './walk';
export { describeReferrer } from './referrer';
export type { Graph, GraphNode } from './walk';
export { drain, imageOf, indexOf, layerOf } from './image';
export type { ContentSource, Image, Index, Layer, LayerFile } from './image';
export { copyGraph, pool } from './copy';
export type { ContentSink, CopyEvent, CopyOptions } from './copy';
