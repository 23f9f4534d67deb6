export * from './exclusions';
export * from './facts';
export * from './rootfs';
export * from './source';
export * from './create';
export * from './inspect';
