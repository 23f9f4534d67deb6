export * from './errors';
export * from './digest';
export * from './media-types';
export * from './types';
export * from './schemas';
export * from './validate';
export * from './canonical';
export * from './reference';
