export {
  exists,
  fsyncDir,
  commitFile,
  prepareOutput,
  tempPathFor,
  writeFileAtomic,
} from './atomic';
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
export { brokenTagError, normalizeTag } from './refs';
export { isReferrerRecord } from './referrers';
export { Store } from './store';
export type { AttachedFile } from './store';
export { saveArchive, loadArchive } from './archive';
export { writeBundle, writeImage } from './image-writer';
export type { BundlePart, NewImage, NewLayer, WrittenImage } from './image-writer';
export type { LoadedImage } from './archive';
export { openArchive, decompressBlob } from './archive-content';
export type { ArchiveLayout } from './archive-content';
export { storeContent } from './content';
export type { StoreContent } from './content';
export { storeSink } from './sink';
export type { StoreOutcome } from './sink';
