export type { EntryType, TarHeader } from './format';
export { packTree } from './pack';
export type { PackOptions, EntryKind, ExcludeDecision } from './pack';
export { createLayer } from './create';
export type { CreatedLayer, LayerResult } from './create';
export { readTar, TarParser } from './reader';
export type { TarEntry, TarSink } from './reader';
export { unpackLayer, unpackLayers, cleanEntryPath } from './unpack';
export type { UnpackOptions, UnpackStats, LayerSource } from './unpack';
