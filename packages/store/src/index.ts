export { exists, fsyncDir, commitFile, tempPathFor, writeFileAtomic } from './atomic';
export { BlobReader } from './blob-reader';
export type { ChunkWriter } from './blob-reader';
export { PartialBlob, copyToFile } from './ingest';
export { pidAlive, waitForUnlock, withFileLock } from './lock';
export type { LockOptions } from './lock';
export type { BlobInfo } from './blobs';
export { defaultStoreConfig, diskUsage } from './config';
export type { StoreConfig } from './config';
export type { BlobGcResult } from './gc';
export { defaultStorePath } from './paths';
export { normalizeTag } from './refs';
export { Store } from './store';
export { saveArchive, loadArchive } from './archive';
export type { LoadedImage } from './archive';
// Kept for the registry client until it takes the core's streams; it lives in @strata/oci now.
export { VerifyingStream } from '@strata/oci';
export type { Expected } from '@strata/oci';
