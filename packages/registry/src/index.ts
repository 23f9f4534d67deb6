export * from './errors';
export * from './challenge';
export * from './auth-config';
export * from './transport';
export * from './client';
export * from './copy';
export * from './sources';
export * from './login';
