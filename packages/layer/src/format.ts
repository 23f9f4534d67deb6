/**
 * The tar format, as far as Strata writes and reads it: POSIX ustar headers, PAX extended headers
 * ('x' and 'g'), and on read also GNU long names ('L'/'K') and GNU base-256 numbers.
 */

export const BLOCK = 512;

export type EntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export const TYPEFLAG: Record<EntryType, number> = {
  file: 0x30, // '0'
  link: 0x31, // '1'
  symlink: 0x32, // '2'
  char: 0x33, // '3'
  block: 0x34, // '4'
  dir: 0x35, // '5'
  fifo: 0x36, // '6'
};

/** Metadata of one tar entry, after PAX/GNU extensions have been applied. */
export interface TarHeader {
  /** Path as stored (no leading '/' removal or cleaning is done by the reader); dirs may end in '/'. */
  path: string;
  type: EntryType;
  /** Permission and setuid/setgid/sticky bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Size of the entry body in bytes (0 for everything but regular files). */
  size: number;
  /** Modification time, integer seconds since the epoch. */
  mtime: number;
  /** Target of a symlink or hardlink. */
  linkpath: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes from PAX `SCHILY.xattr.<name>` records. */
  xattrs: Record<string, Buffer>;
}

// ---------------------------------------------------------------------------------------------
// Encoding

const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** Write `value` as zero-padded octal of width-1 digits plus NUL. Caller checks the range. */
function putOctal(buf: Buffer, off: number, width: number, value: number): void {
  const s = value.toString(8);
  const pad = width - 1 - s.length;
  let p = off;
  for (let i = 0; i < pad; i++) buf[p++] = 0x30;
  for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
  buf[p] = 0;
}

/** Write a string field (already known to fit). Remaining bytes must already be zero. */
function putBytes(buf: Buffer, off: number, bytes: Buffer): void {
  bytes.copy(buf, off);
}

/** Fields of a header we encode; strings are raw bytes so the caller measures them once. */
export interface EncodeFields {
  name: Buffer;
  prefix?: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname?: Buffer;
  devmajor: number;
  devminor: number;
}

/**
 * Encode one ustar header into buf[off, off+512). The region must be zero-filled by the caller
 * (the writer zero-fills its output buffer once). Numeric values must fit: callers move larger
 * values into PAX records and pass 0 here.
 */
export function encodeHeader(buf: Buffer, off: number, f: EncodeFields): void {
  putBytes(buf, off, f.name);
  putOctal(buf, off + 100, 8, f.mode);
  putOctal(buf, off + 108, 8, f.uid);
  putOctal(buf, off + 116, 8, f.gid);
  putOctal(buf, off + 124, 12, f.size);
  putOctal(buf, off + 136, 12, f.mtime);
  buf[off + 156] = f.typeflag;
  if (f.linkname) putBytes(buf, off + 157, f.linkname);
  // magic "ustar\0", version "00"
  buf[off + 257] = 0x75;
  buf[off + 258] = 0x73;
  buf[off + 259] = 0x74;
  buf[off + 260] = 0x61;
  buf[off + 261] = 0x72;
  buf[off + 262] = 0;
  buf[off + 263] = 0x30;
  buf[off + 264] = 0x30;
  // uname/gname stay empty
  putOctal(buf, off + 329, 8, f.devmajor);
  putOctal(buf, off + 337, 8, f.devminor);
  if (f.prefix) putBytes(buf, off + 345, f.prefix);
  // checksum: sum of all bytes with the checksum field counted as 8 spaces
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += buf[off + i] as number;
  for (let i = 156; i < BLOCK; i++) sum += buf[off + i] as number;
  const s = sum.toString(8);
  let p = off + 148;
  for (let i = s.length; i < 6; i++) buf[p++] = 0x30;
  for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
  buf[off + 154] = 0;
  buf[off + 155] = 0x20;
}

export const fitsOctal7 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= MAX_OCTAL_7;
export const fitsOctal11 = (n: number): boolean =>
  Number.isInteger(n) && n >= 0 && n <= MAX_OCTAL_11;

/**
 * Split a path into ustar (prefix, name) if it fits: name ≤ 100 bytes, prefix ≤ 155 bytes,
 * split at a '/'. Returns undefined when a PAX `path` record is needed.
 */
export function splitUstarPath(p: Buffer): { name: Buffer; prefix?: Buffer } | undefined {
  if (p.length <= 100) return { name: p };
  if (p.length > 256) return undefined;
  // Find the first '/' such that prefix ≤ 155 and name ≤ 100 (and name non-empty).
  const start = Math.max(0, p.length - 101);
  for (let i = start; i < p.length - 1 && i <= 155; i++) {
    if (p[i] === 0x2f && i > 0) {
      return { prefix: p.subarray(0, i), name: p.subarray(i + 1) };
    }
  }
  return undefined;
}

/** One PAX record "<len> <key>=<value>\n", the length counting itself. */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const k = Buffer.from(key, 'utf8');
  const rest = k.length + v.length + 3; // ' ', '=', '\n'
  let len = rest + String(rest).length;
  if (String(len).length !== String(rest).length) len = rest + String(len).length;
  const out = Buffer.allocUnsafe(len);
  let p = out.write(`${len} `, 0, 'latin1');
  p += k.copy(out, p);
  out[p++] = 0x3d;
  p += v.copy(out, p);
  out[p] = 0x0a;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Parse a numeric header field: octal (space/NUL terminated) or GNU base-256. */
export function parseNumeric(buf: Buffer, off: number, len: number): number {
  const first = buf[off] as number;
  if (first & 0x80) {
    // base-256, big endian, two's complement; the top bit of the first byte is the marker
    const negative = (first & 0x40) !== 0;
    let v = negative ? (first & 0x7f) - 0x80 : first & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + (buf[off + i] as number);
    if (!Number.isSafeInteger(v)) return NaN;
    return v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0)) {
    if (buf[i] === 0) return 0; // empty field
    i++;
  }
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i] as number;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return NaN;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) {
    const c = buf[i];
    if (c !== 0x20 && c !== 0) return NaN;
  }
  return digits === 0 ? 0 : v;
}

/** A NUL-terminated string field. */
export function parseString(buf: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && buf[end] !== 0) end++;
  return buf.toString('utf8', off, end);
}

/** Verify a header block's checksum (unsigned, or the historic signed variant). */
export function checksumOk(buf: Buffer, off: number): boolean {
  const stored = parseNumeric(buf, off + 148, 8);
  if (Number.isNaN(stored)) return false;
  // The checksum field itself counts as eight spaces.
  let unsigned = 8 * 0x20;
  for (let i = off; i < off + 148; i++) unsigned += buf[i] as number;
  for (let i = off + 156; i < off + BLOCK; i++) unsigned += buf[i] as number;
  if (stored === unsigned) return true;
  // The historic signed variant: every byte above 127 counts 256 less.
  let high = 0;
  for (let i = off; i < off + BLOCK; i++) {
    if (i === off + 148) i = off + 156;
    if ((buf[i] as number) > 127) high++;
  }
  return stored === unsigned - 256 * high;
}

export function isZeroBlock(buf: Buffer, off: number): boolean {
  for (let i = 0; i < BLOCK; i += 4) {
    if (buf.readUInt32LE(off + i) !== 0) return false;
  }
  return true;
}

/** Parse PAX records; values stay raw bytes (xattrs are binary). */
export function parsePax(body: Buffer): Map<string, Buffer> | undefined {
  const out = new Map<string, Buffer>();
  let p = 0;
  while (p < body.length) {
    if (body[p] === 0) break; // some writers NUL-pad
    let sp = p;
    let len = 0;
    while (sp < body.length && body[sp] !== 0x20) {
      const c = body[sp] as number;
      if (c < 0x30 || c > 0x39) return undefined;
      len = len * 10 + (c - 0x30);
      sp++;
    }
    if (sp >= body.length || len <= sp - p + 1 || p + len > body.length) return undefined;
    const end = p + len;
    if (body[end - 1] !== 0x0a) return undefined;
    const rec = body.subarray(sp + 1, end - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) return undefined;
    out.set(rec.toString('utf8', 0, eq), rec.subarray(eq + 1));
    p = end;
  }
  return out;
}
