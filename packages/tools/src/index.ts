export type { ToolProcess } from './spawn';
export { zstdCompress, zstdDecompress, ZSTD_COMPRESS_ARGS } from './zstd';
export type { Xattrs, XattrMap } from './xattr';
export {
  readTreeXattrs,
  readXattrs,
  applyXattrs,
  parseGetfattrDump,
  formatSetfattrDump,
  escapeAttrText,
  unescapeAttrText,
} from './xattr';
export { mknodSync, mkfifoSync } from './nodes';
export type { HelperCredentials } from './credential-helper';
export {
  credentialHelperGet,
  credentialHelperStore,
  credentialHelperErase,
} from './credential-helper';
