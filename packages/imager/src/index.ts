export * from './source';
export * from './merge';
export * from './flatten';
export * from './bundle';
export * from './wks';
export * from './disk';
