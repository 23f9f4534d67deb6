export * from './atomic';
export { BlobReader } from './blob-reader';
export type { ChunkWriter } from './blob-reader';
export { PartialBlob, copyToFile } from './ingest';
export * from './lock';
export * from './store';
export * from './archive';
