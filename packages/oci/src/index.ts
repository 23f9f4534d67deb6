export * from './errors';
export * from './digest';
export * from './media-types';
export * from './types';
export * from './schemas';
export * from './validate';
export * from './canonical';
export * from './reference';
export { VerifyingStream } from './verify';
export type { Expected } from './verify';
export {
  ROLES,
  matchesPlatform,
  roleOf,
  selectManifest,
  requireManifest,
  resolveManifest,
} from './select';
export type { Role, PlatformSelector, Selector, Selection } from './select';
export { walkGraph, graphDigests, childrenOf } from './walk';
export type { Graph, GraphNode, WalkOptions } from './walk';
export { drain, imageOf, indexOf, layerOf } from './image';
export type { ContentSource, Image, Index, Layer } from './image';
export { copyGraph, pool } from './copy';
export type { ContentSink, CopyEvent, CopyOptions } from './copy';
