/**
 * The Debian source packages a template carries with its DEBUILD .debs (in the debs artifact):
 * each .dsc checked against the files attached with it, and what `sources.json` says of them.
 */
import type { DebianPackage, DebuildRecord } from '@strata/oci';
import { InvalidDocumentError } from '@strata/oci';
import { Dsc, SourceFile, parseDsc } from '@strata/debian';
import type { Store } from '@strata/store';
import type { AttachedDeb } from './export-debs';

/**
 * A source package that DEBUILD built the template's own .debs from, carried with them (in the
 * debs artifact) since the build: its files are written to the folder by name.
 */
export interface DebuildSource {
  name: string;
  version: string;
  /**
   * The source tree or .dsc as the template's DEBUILD line names it in the build context;
   * absent for one that came with a FROM template's .debs.
   */
  source?: string;
  /** The packages built from it: those the DEBUILD made, else those installed (`name=version`). */
  packages: string[];
  /** Its files (the .dsc among them), sorted by name, checked against the .dsc. */
  files: SourceFile[];
}

export const byName = <T extends { name: string }>(a: T, b: T): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/**
 * The files of an attached source package whose .dsc (`dscName`, with digest `dscDigest` and
 * size) says `dsc`: the .dsc and each file it lists, every one of which must be attached
 * (`attached`, by name) with the .dsc's SHA-256 and size. Sorted by name.
 */
export function checkAttachedSource(
  dscName: string,
  dscBlob: { digest: string; size: number },
  dsc: Dsc,
  attached: ReadonlyMap<string, { digest: string; size: number }>,
  what: string,
): SourceFile[] {
  const files: SourceFile[] = [
    { name: dscName, sha256: dscBlob.digest.replace(/^sha256:/, ''), size: dscBlob.size },
  ];
  for (const f of dsc.files) {
    const a = attached.get(f.name);
    if (a === undefined)
      throw new InvalidDocumentError(what, [`${f.name}, which ${dscName} lists, is not attached`]);
    if (a.digest !== `sha256:${f.sha256}` || a.size !== f.size)
      throw new InvalidDocumentError(what, [
        `${f.name} is attached with another checksum or size than ${dscName} gives`,
      ]);
    files.push(f);
  }
  return files.sort(byName);
}

/**
 * What `sources.json` says of the DEBUILD source packages a template carries (each a .dsc, as
 * parsed, and its checked files): the DEBUILD line of the template's build that made it, found
 * by a package it made that the .dsc's Binary field names at its version, with the packages
 * that line made; or, for one that came with a FROM template's .debs, the installed packages
 * built from it. Sorted by name, then version.
 */
export function debuildSources(
  carried: ReadonlyArray<{ dsc: Dsc; files: SourceFile[] }>,
  records: readonly DebuildRecord[],
  packages: readonly DebianPackage[],
): DebuildSource[] {
  const made = (r: DebuildRecord, dsc: Dsc) =>
    r.packages.some((p) => {
      const i = p.indexOf('=');
      return p.slice(i + 1) === dsc.version && dsc.binaries.includes(p.slice(0, i));
    });
  return carried
    .map(({ dsc, files }) => {
      const record = records.find((r) => made(r, dsc));
      const installed = packages
        .filter((p) => p.source === dsc.source && (p.sourceVersion ?? p.version) === dsc.version)
        .map((p) => `${p.name}=${p.version}`)
        .sort();
      return {
        name: dsc.source,
        version: dsc.version,
        ...(record ? { source: record.source } : {}),
        packages: record ? record.packages : installed,
        files,
      };
    })
    .sort((a, b) => byName(a, b) || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
}

/** The DEBUILD source packages attached with a template's .debs, each checked against its .dsc. */
export async function carriedSources(
  store: Store,
  attached: readonly AttachedDeb[],
  ref: string,
): Promise<Array<{ dsc: Dsc; files: SourceFile[] }>> {
  const byFile = new Map(attached.map((a) => [a.filename, a.blob]));
  const out: Array<{ dsc: Dsc; files: SourceFile[] }> = [];
  for (const a of attached) {
    if (!a.filename.endsWith('.dsc')) continue;
    const what = `${a.filename}, attached to ${ref}`;
    const dsc = parseDsc((await store.readBlob(a.blob.digest, a.blob.size)).toString('utf8'), what);
    out.push({ dsc, files: checkAttachedSource(a.filename, a.blob, dsc, byFile, what) });
  }
  return out;
}
