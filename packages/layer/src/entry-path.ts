import { StrataError, UnsafeEntryError } from '@strata/oci';

/**
 * Clean a tar path into a root-relative path without '.', empty or trailing components
 * ('' is the root itself). Absolute paths and '..' components are refused, never rewritten.
 */
export function cleanEntryPath(raw: string, entry: string = raw, what = 'path'): string {
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

/** A root-relative path split into its parent directory ('' for the root) and its last name. */
export function splitParent(rel: string): [string, string] {
  const i = rel.lastIndexOf('/');
  return i < 0 ? ['', rel] : [rel.slice(0, i), rel.slice(i + 1)];
}

/** An unpack failure on one entry, named in the message; a StrataError passes through. */
export function ioError(entry: string, e: unknown): StrataError {
  if (e instanceof StrataError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new StrataError('UNAVAILABLE', `unpack: ${JSON.stringify(entry)}: ${msg}`, { cause: e });
}
