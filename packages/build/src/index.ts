export * from './stratafile';
export * from './apt';
export * from './cache';
export * from './snapshots';
export * from './upper';
export * from './lockfile';
export * from './engine';
export * from './check';
