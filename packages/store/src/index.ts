export * from './atomic';
export { PartialBlob } from './ingest';
export * from './lock';
export * from './store';
export * from './archive';
