export * from './atomic';
export { PartialBlob, copyToFile } from './ingest';
export * from './lock';
export * from './store';
export * from './archive';
