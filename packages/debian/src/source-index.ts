/**
 * Debian source packages: the `Sources` indices of an apt repository, `.dsc` files, and the
 * checksums that chain them to a Release file (Release → Sources → .dsc → each file).
 */
import type { Readable } from 'node:stream';
import { InvalidDocumentError } from '@strata/oci';
import { parseDeb822 } from './deb822';

/** One file of a source package, as a `Checksums-Sha256` line lists it. */
export interface SourceFile {
  name: string;
  /** sha256, lowercase hex. */
  sha256: string;
  size: number;
}

/** One source package of a `Sources` index. */
export interface SourcePackage {
  name: string;
  version: string;
  /** Where its files lie, relative to the repository's URI (`pool/main/b/base-files`). */
  directory: string;
  /** The .dsc itself. */
  dsc: SourceFile;
  /** Every file the index lists for it, the .dsc among them, sorted by name. */
  files: SourceFile[];
}

/** A file name as Debian's archive makes them: nothing that could leave the folder it goes to. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9.+~_-]*$/;

/**
 * The text of a clearsigned file (InRelease, most .dsc files) without its OpenPGP armour, with
 * dash-escaped lines restored; an unsigned file as it is. The signature is not checked here.
 */
export function clearsignedText(text: string): string {
  if (!text.startsWith('-----BEGIN PGP SIGNED MESSAGE-----')) return text;
  const body = text.indexOf('\n\n');
  const sig = text.indexOf('\n-----BEGIN PGP SIGNATURE-----');
  if (body < 0 || sig < body) throw new InvalidDocumentError('clearsigned file', ['no body']);
  return text
    .slice(body + 2, sig + 1)
    .split('\n')
    .map((l) => (l.startsWith('- ') ? l.slice(2) : l))
    .join('\n');
}

/** The lines of a `Checksums-Sha256` (or Release `SHA256`) field: `sha256 size name`. */
export function parseChecksums(field: string | undefined, what: string): SourceFile[] {
  const out: SourceFile[] = [];
  for (const line of (field ?? '').split('\n')) {
    if (line.trim() === '') continue;
    const m = /^\s*([0-9a-fA-F]{64})\s+(\d+)\s+(\S+)\s*$/.exec(line);
    if (!m) throw new InvalidDocumentError(what, [`a checksum line ${JSON.stringify(line)}`]);
    out.push({ sha256: (m[1] as string).toLowerCase(), size: Number(m[2]), name: m[3] as string });
  }
  return out;
}

/** The SHA256 list of a Release or InRelease file: path within the suite → checksum. */
export function releaseChecksums(text: string, what = 'Release file'): Map<string, SourceFile> {
  const para = parseDeb822(clearsignedText(text))[0];
  const out = new Map<string, SourceFile>();
  for (const f of parseChecksums(para?.get('sha256'), what)) out.set(f.name, f);
  return out;
}

function safeFiles(files: SourceFile[], what: string): SourceFile[] {
  for (const f of files) {
    if (!FILE_NAME.test(f.name)) {
      throw new InvalidDocumentError(what, [`a file named ${JSON.stringify(f.name)}`]);
    }
  }
  return [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** One paragraph of a `Sources` index (parsed by parseDeb822) as a source package. */
export function sourcePackageOf(p: Map<string, string>, what: string): SourcePackage | undefined {
  const name = p.get('package');
  const version = p.get('version');
  const directory = p.get('directory');
  if (!name || !version || directory === undefined) return undefined;
  const where = `${what}: ${name} ${version}`;
  if (directory.split('/').some((s) => s === '..' || s === '') || directory.startsWith('/')) {
    throw new InvalidDocumentError(where, [`a Directory ${JSON.stringify(directory)}`]);
  }
  const files = safeFiles(parseChecksums(p.get('checksums-sha256'), where), where);
  const dscs = files.filter((f) => f.name.endsWith('.dsc'));
  if (dscs.length !== 1) throw new InvalidDocumentError(where, ['not exactly one .dsc']);
  return { name, version, directory, dsc: dscs[0] as SourceFile, files };
}

/** Paragraphs of deb822 text from a stream, one at a time (a Sources index is ~50 MB). */
export async function* deb822Paragraphs(stream: Readable): AsyncGenerator<string> {
  let rest = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream as AsyncIterable<string>) {
    rest += chunk;
    let start = 0;
    let end: number;
    while ((end = rest.indexOf('\n\n', start)) >= 0) {
      const para = rest.slice(start, end).replace(/^\n+/, '');
      start = end + 2;
      if (para.trim() !== '') yield para;
    }
    rest = rest.slice(start);
  }
  if (rest.trim() !== '') yield rest.replace(/^\n+/, '');
}

/**
 * The source packages of a `Sources` index (a stream of its text) that `wanted` names, keyed
 * `name=version`. Only their paragraphs are parsed.
 */
export async function scanSourcesIndex(
  text: Readable,
  wanted: ReadonlySet<string>,
  what: string,
  into = new Map<string, SourcePackage>(),
): Promise<Map<string, SourcePackage>> {
  for await (const para of deb822Paragraphs(text)) {
    const name = /^Package:[ \t]*(\S+)/m.exec(para)?.[1];
    if (name === undefined || !wanted.has(name)) continue;
    const p = parseDeb822(para)[0];
    const pkg = p && sourcePackageOf(p, what);
    if (pkg) into.set(`${pkg.name}=${pkg.version}`, pkg);
  }
  return into;
}

/** What a `.dsc` says of itself: its source name, version and files (the .dsc not among them). */
export interface Dsc {
  source: string;
  version: string;
  files: SourceFile[];
  /** The binary packages its `Binary` field names (dbgsym packages are never among them). */
  binaries: string[];
}

/** Parse a `.dsc` (clearsigned or not). */
export function parseDsc(text: string, what: string): Dsc {
  const p = parseDeb822(clearsignedText(text))[0];
  const source = p?.get('source');
  const version = p?.get('version');
  if (!p || !source || !version) throw new InvalidDocumentError(what, ['no Source or Version']);
  const files = safeFiles(parseChecksums(p.get('checksums-sha256'), what), what);
  if (files.length === 0) throw new InvalidDocumentError(what, ['no Checksums-Sha256']);
  const binaries = (p.get('binary') ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  return { source, version, files, binaries };
}
