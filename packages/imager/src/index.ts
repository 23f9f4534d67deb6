export { checkFlattenDir, flattenToTar, flattenToDir } from './flatten';
export { createBundle, describeBundle } from './bundle';
export { readWksFile, parseSizeArg } from './wks';
export { buildExt4Image } from './ext4';
export { bmapPathFor, buildDiskImage, diskCompression } from './disk';
export { diffImages } from './diff';
export type {
  ChangedFile,
  ChangedPackage,
  DiffOptions,
  DiffReport,
  DiffSide,
  FileChange,
  FileInfo,
  SizeChange,
} from './diff';
export { reportData, sizeTree, packageRows, DEFAULT_LIMITS } from './report/model';
export type {
  ReportData,
  ReportLayer,
  ReportOptions,
  ReportPackage,
  SizeNode,
  TreeLimits,
} from './report/model';
export { renderReport, writeReport } from './report/html';
export { compareBuilds, compareLayerEntries, describeReproReport } from './repro';
export type {
  DocumentDifference,
  EntryDifference,
  EntryField,
  LayerDifference,
  ReproReport,
  ReproSide,
} from './repro';
