/** What the packer reads of the filesystem: file types, device numbers, sorted directories. */
import * as fs from 'node:fs';
import { InvalidArgumentError, StrataError } from '@strata/oci';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;

const NON_ASCII = /[^\x00-\x7f]/; // eslint-disable-line no-control-regex

export function major(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 0x100000000) & ~0xfff);
}
export function minor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
}

function sortBytewise(names: string[]): string[] {
  if (!names.some((n) => NON_ASCII.test(n))) return names.sort();
  return names
    .map((n) => [Buffer.from(n, 'utf8'), n] as const)
    .sort((a, b) => Buffer.compare(a[0], b[0]))
    .map((x) => x[1]);
}

export function ioError(what: string, e: unknown): StrataError {
  if (e instanceof StrataError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new StrataError('UNAVAILABLE', `pack: ${what}: ${msg}`, { cause: e });
}

/**
 * The names in a directory, sorted bytewise (as their UTF-8 bytes, so the order does not depend
 * on the locale). Names that are not valid UTF-8 are refused: they would not survive the tar.
 */
export function listDir(abs: string, rel: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(abs);
  } catch (e) {
    throw ioError(rel || '.', e);
  }
  for (const n of names) {
    if (n.includes('\ufffd')) {
      throw new InvalidArgumentError(
        `pack: ${JSON.stringify(rel + n)}: file names that are not valid UTF-8 are not supported`,
      );
    }
  }
  return sortBytewise(names);
}
