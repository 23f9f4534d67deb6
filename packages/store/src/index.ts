export * from './atomic';
export * from './lock';
export * from './store';
export * from './archive';
