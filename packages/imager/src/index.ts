export { flattenToTar, flattenToDir } from './flatten';
export { createBundle, describeBundle } from './bundle';
export { readWksFile, parseSizeArg } from './wks';
export { buildExt4Image } from './ext4';
export { buildDiskImage } from './disk';
