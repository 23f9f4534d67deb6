export type { ToolProcess } from './spawn';
export { zstdCompress, zstdDecompress, ZSTD_COMPRESS_ARGS } from './zstd';
export type { Xattrs, XattrMap } from './xattr';
export {
  readTreeXattrs,
  readXattrs,
  applyXattrs,
  removeXattr,
  parseGetfattrDump,
  formatSetfattrDump,
  escapeAttrText,
  unescapeAttrText,
} from './xattr';
export { mknodSync, mkfifoSync, makeNodes, makeNodesSync } from './nodes';
export type { NodeSpec } from './nodes';
export type { HelperCredentials } from './credential-helper';
export {
  credentialHelperGet,
  credentialHelperStore,
  credentialHelperErase,
} from './credential-helper';
export {
  runInSandbox,
  overlayMountData,
  MountOptionsTooLongError,
  MOUNT_DATA_MAX,
  StepFailedError,
} from './sandbox';
export type { SandboxSpec } from './sandbox';
export { mmdebstrap } from './mmdebstrap';
export type { MmdebstrapOptions } from './mmdebstrap';
export * from './disk';
export { zstdDecompressFile } from './zstd-file';
export { gunzipFile, igzipPath } from './gzip-file';
export { compressStream, decompressFile, decompressStream } from './codec';
