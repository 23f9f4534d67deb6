/**
 * Encoding of single tar entries from parsed headers, for code that re-emits entries read with
 * readTar/TarParser (flatten). Produces the same bytes as packTree's writer for the same
 * metadata: ustar headers, a canonical PAX header (keys sorted bytewise) only when something
 * does not fit, no user or group names.
 */
import { InvalidArgumentError } from '@strata/oci';
import {
  BLOCK,
  encodeHeader,
  EncodeFields,
  fitsOctal11,
  fitsOctal7,
  paxRecord,
  splitUstarPath,
  TarHeader,
  TYPEFLAG,
} from './format';

export { BLOCK as TAR_BLOCK } from './format';
export { compressor, decompressor } from './codec';
export type { Filter } from './codec';

/** The end-of-archive marker: two zero blocks. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);

/** Bytes of zero padding that follow a body of `size` bytes. */
export function tarPadding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * Encode the header block(s) of `h` (a PAX 'x' header first when needed). `h.path` is written as
 * given: pass directories with a trailing '/'. `h.size` must be 0 for everything but files.
 */
export function encodeTarHeader(h: TarHeader): Buffer {
  const pathBytes = Buffer.from(h.path, 'utf8');
  const records: [string, Buffer | string][] = [];
  let split = splitUstarPath(pathBytes);
  if (split === undefined) {
    records.push(['path', pathBytes]);
    split = { name: pathBytes.subarray(0, 100) };
  }
  let linkBytes: Buffer | undefined;
  if (h.linkpath !== '') {
    linkBytes = Buffer.from(h.linkpath, 'utf8');
    if (linkBytes.length > 100) {
      records.push(['linkpath', linkBytes]);
      linkBytes = linkBytes.subarray(0, 100);
    }
  }
  let { uid, gid, mtime } = h;
  if (!fitsOctal7(uid)) {
    records.push(['uid', String(uid)]);
    uid = 0;
  }
  if (!fitsOctal7(gid)) {
    records.push(['gid', String(gid)]);
    gid = 0;
  }
  if (!fitsOctal11(h.size)) records.push(['size', String(h.size)]);
  if (!fitsOctal11(mtime)) {
    records.push(['mtime', String(mtime)]);
    mtime = 0;
  }
  if (!fitsOctal7(h.devmajor) || !fitsOctal7(h.devminor)) {
    throw new InvalidArgumentError(`tar: ${JSON.stringify(h.path)}: device number too large`);
  }
  for (const k of Object.keys(h.xattrs)) {
    records.push([`SCHILY.xattr.${k}`, h.xattrs[k] as Buffer]);
  }
  const fields: EncodeFields = {
    name: split.name,
    prefix: split.prefix,
    mode: h.mode & 0o7777,
    uid,
    gid,
    size: fitsOctal11(h.size) ? h.size : 0,
    mtime,
    typeflag: TYPEFLAG[h.type],
    linkname: linkBytes,
    devmajor: h.devmajor,
    devminor: h.devminor,
  };
  if (records.length === 0) {
    const out = Buffer.alloc(BLOCK);
    encodeHeader(out, 0, fields);
    return out;
  }
  records.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  const padded = Math.ceil(body.length / BLOCK) * BLOCK;
  const out = Buffer.alloc(2 * BLOCK + padded);
  const slash = pathBytes.lastIndexOf(0x2f, pathBytes.length - 2);
  const paxName = Buffer.concat([
    Buffer.from('PaxHeaders.0/'),
    pathBytes.subarray(slash + 1),
  ]).subarray(0, 100);
  encodeHeader(out, 0, {
    name: paxName,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
    typeflag: 0x78, // 'x'
    devmajor: 0,
    devminor: 0,
  });
  body.copy(out, BLOCK);
  encodeHeader(out, BLOCK + padded, fields);
  return out;
}
