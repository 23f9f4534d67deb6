export * from './exclusions';
export * from './facts';
export * from './rootfs';
export * from './rootfs-input';
export * from './create';
export * from './inspect';
