export * from './exclusions';
export * from './debian';
export * from './rootfs';
export * from './source';
export * from './create';
export * from './inspect';
