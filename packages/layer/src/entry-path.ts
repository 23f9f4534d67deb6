import { StrataError, UnsafeEntryError } from '@strata/oci';

/**
 * Clean a tar path into a root-relative path without '.', empty or trailing components
 * ('' is the root itself). Absolute paths and '..' components are refused, never rewritten.
 */
export function cleanEntryPath(raw: string, entry: string = raw, what = 'path'): string {
  checkNameLengths(raw, entry, what);
  // Most paths are clean already: no leading '/' or '.', no trailing '/', no '//', no component
  // that starts with '.', no NUL. Those are returned without splitting them.
  const first = raw.charCodeAt(0);
  if (
    first !== 0x2f &&
    first !== 0x2e &&
    raw.charCodeAt(raw.length - 1) !== 0x2f &&
    !raw.includes('/.') &&
    !raw.includes('//') &&
    !raw.includes('\0')
  ) {
    return raw;
  }
  if (raw.startsWith('/')) throw new UnsafeEntryError(entry, `absolute ${what}`);
  if (raw.includes('\0')) throw new UnsafeEntryError(entry, `NUL byte in ${what}`);
  const parts = raw.split('/');
  let clean = true;
  for (const p of parts) {
    if (p === '..') throw new UnsafeEntryError(entry, `${what} contains a '..' component`);
    if (p === '.' || p === '') clean = false;
  }
  if (clean) return raw;
  return parts.filter((p) => p !== '' && p !== '.').join('/');
}

/** The longest name (one path component) that Linux file systems take, in bytes. */
export const NAME_MAX = 255;

/**
 * Refuse a path with a name longer than NAME_MAX bytes, naming the entry: the file system would
 * refuse it anyway, with an errno that names the unpack's own folder instead.
 */
function checkNameLengths(raw: string, entry: string, what: string): void {
  // A UTF-16 unit is at most 3 bytes of UTF-8: shorter names need no counting.
  const fits = Math.floor(NAME_MAX / 3);
  if (raw.length <= fits) return;
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i < raw.length && raw.charCodeAt(i) !== 0x2f) continue;
    if (i - start > fits) {
      const bytes = Buffer.byteLength(raw.slice(start, i));
      if (bytes > NAME_MAX)
        throw new UnsafeEntryError(
          shortEntry(entry),
          `a name in its ${what} is ${bytes} bytes long; the limit is ${NAME_MAX} bytes per name`,
        );
    }
    start = i + 1;
  }
}

/** An entry's path cut to a length that fits in a one-line message. */
export function shortEntry(entry: string): string {
  return entry.length <= 80 ? entry : `${entry.slice(0, 40)}…${entry.slice(-30)}`;
}

/** A root-relative path split into its parent directory ('' for the root) and its last name. */
export function splitParent(rel: string): [string, string] {
  const i = rel.lastIndexOf('/');
  return i < 0 ? ['', rel] : [rel.slice(0, i), rel.slice(i + 1)];
}

/** An unpack failure on one entry, named in the message; a StrataError passes through. */
export function ioError(entry: string, e: unknown): StrataError {
  if (e instanceof StrataError) return e;
  // The errno's message names the path in the unpack's own folder: the entry says more.
  if ((e as NodeJS.ErrnoException).code === 'ENAMETOOLONG')
    return new UnsafeEntryError(
      shortEntry(entry),
      `its path is too long to create (${NAME_MAX} bytes per name, 4096 per path)`,
    );
  const msg = e instanceof Error ? e.message : String(e);
  return new StrataError('UNAVAILABLE', `unpack: ${JSON.stringify(entry)}: ${msg}`, { cause: e });
}
