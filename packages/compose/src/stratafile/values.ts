/** Checks of argument values: package names and versions, build-context paths, keys, URLs. */
import { posix } from 'node:path';
import { Lexer, Word } from './lexer';

/** mmdebstrap's variants. */
export const VARIANTS = [
  'extract',
  'custom',
  'essential',
  'apt',
  'required',
  'minbase',
  'buildd',
  'important',
  'debootstrap',
  'standard',
  '-',
];

export const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9][a-z0-9-]*)?$/;
export const PACKAGE_VERSION = /^[A-Za-z0-9.+~:-]+$/;
export const STAGE_NAME = /^[a-z][a-z0-9_.-]*$/;
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const SUITE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const COMPONENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const ARCHITECTURE = /^[a-z0-9][a-z0-9-]*$/;
export const FEATURE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:+-]*$/;
export const OWNER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;
export const OCTAL_MODE = /^[0-7]{3,4}$/;

export function splitVersion(s: string): [string, string | undefined] {
  const eq = s.indexOf('=');
  return eq < 0 ? [s, undefined] : [s.slice(0, eq), s.slice(eq + 1)];
}

export function checkPackageName(lx: Lexer, w: Word, name: string): void {
  if (!PACKAGE_NAME.test(name)) {
    throw lx.error(
      w.start,
      `invalid package name ${JSON.stringify(name)}`,
      'Debian package names are lowercase [a-z0-9][a-z0-9+.-]+, optionally followed by :<arch>',
    );
  }
}

/** Check a build-context path (relative, not escaping); returns it normalised. */
export function contextPath(lx: Lexer, w: Word, what: string): string {
  const p = w.value;
  if (p === '') throw lx.error(w.start, `${what} is empty`);
  if (p.startsWith('/')) {
    throw lx.error(w.start, `${what} ${JSON.stringify(p)} must be relative to the build context`);
  }
  const n = posix.normalize(p);
  if (n === '..' || n.startsWith('../')) {
    throw lx.error(w.start, `${what} ${JSON.stringify(p)} escapes the build context`);
  }
  return n;
}

export function keyValue(
  lx: Lexer,
  w: Word,
  kw: 'ENV' | 'LABEL',
  strictKey: boolean,
): [string, string] {
  const eq = w.value.indexOf('=');
  if (eq < 0)
    throw lx.error(w.start, `${kw} expects <key>=<value>, got ${JSON.stringify(w.value)}`);
  const key = w.value.slice(0, eq);
  if (key === '' || (strictKey && !VAR_NAME.test(key))) {
    throw lx.error(w.start, `invalid ${kw} key ${JSON.stringify(key)}`);
  }
  return [key, w.value.slice(eq + 1)];
}

export function isUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (
      ['http:', 'https:', 'file:', 'ftp:', 'copy:'].includes(u.protocol) ||
      u.protocol.startsWith('mirror+')
    );
  } catch {
    return false;
  }
}

/** Docker's automatic platform ARGs: set for a Stratafile that declares them (see platform.ts). */
export const AUTOMATIC_ARGS: ReadonlySet<string> = new Set([
  'TARGETPLATFORM',
  'TARGETOS',
  'TARGETARCH',
  'TARGETVARIANT',
  'BUILDPLATFORM',
  'BUILDOS',
  'BUILDARCH',
  'BUILDVARIANT',
]);
