export type { ToolProcess } from './spawn';
export { zstdCompress } from './zstd';
export type { Xattrs, XattrMap } from './xattr';
export { readTreeXattrs, readXattrs, applyXattrs, removeXattr } from './xattr';
export { makeNodes, makeNodesSync } from './nodes';
export type { NodeSpec } from './nodes';
export type { HelperCredentials } from './credential-helper';
export {
  credentialHelperGet,
  credentialHelperStore,
  credentialHelperErase,
} from './credential-helper';
export { runInSandbox } from './sandbox';
export { mmdebstrap } from './mmdebstrap';
export { aptGetUpdate } from './apt-get';
export { debControl } from './dpkg-deb';
export { mke2fs, sfdiskWrite, sfdiskDump, mkfsVfat, mtoolsCopy } from './disk';
export { igzipPath } from './gzip-file';
export { compressStream, decompressFile, decompressStream } from './codec';
export type { BinfmtEntry, EmulationOptions } from './binfmt';
export {
  BINFMT_MISC,
  EmulatorMissingError,
  binfmtHandler,
  hostDebianArchitecture,
  parseBinfmtEntry,
  qemuName,
  requireBootstrapEmulation,
  requireEmulation,
} from './binfmt';
export { xzDecompress } from './xz';
export type { NativeDpkg } from './native-dpkg';
export { NATIVE_DPKG_DIR, dpkgSeries, kitRefusal, nativeDpkg } from './native-dpkg';
