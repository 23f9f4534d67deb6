/**
 * A flat apt repository (`deb [trusted=yes] file:/DIR ./`): the .debs, one `Packages` index and a
 * `Release` that lists it, as dpkg-scanpackages and apt-ftparchive write them. Only the text is
 * made here; the files are the caller's.
 */
import { parseDeb822 } from './deb822';
import { compareDebianVersions } from './version';

/** A .deb of the repository: its control stanza and what a Packages entry says of the file. */
export interface RepoPackage {
  control: string;
  /** Path relative to the repository, e.g. `hello_1.0_amd64.deb`. */
  filename: string;
  size: number;
  md5: string;
  sha256: string;
}

/** The fields of a control stanza, in order, with continuation lines kept. */
function fieldsOf(control: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of control.replace(/\n+$/, '').split('\n')) {
    if (/^[ \t]/.test(line) && out.length > 0) out[out.length - 1]![1] += `\n${line}`;
    else {
      const i = line.indexOf(':');
      if (i > 0) out.push([line.slice(0, i), line.slice(i + 1).trim()]);
    }
  }
  return out;
}

/** The `Packages` index: one stanza per .deb, sorted by name, version and architecture. */
export function packagesIndex(pkgs: readonly RepoPackage[]): string {
  const keyed = pkgs.map((p) => {
    const f = parseDeb822(p.control)[0] ?? new Map<string, string>();
    return {
      p,
      name: f.get('package') ?? '',
      version: f.get('version') ?? '',
      arch: f.get('architecture') ?? '',
    };
  });
  keyed.sort(
    (a, b) =>
      a.name.localeCompare(b.name) ||
      compareDebianVersions(a.version, b.version) ||
      a.arch.localeCompare(b.arch),
  );
  return keyed
    .map(({ p }) => {
      const fields = fieldsOf(p.control).filter(
        ([k]) => !['Filename', 'Size', 'MD5sum', 'SHA256'].includes(k),
      );
      // apt takes the fields in any order; the file's own come last.
      fields.push(
        ['Filename', `./${p.filename}`],
        ['Size', String(p.size)],
        ['MD5sum', p.md5],
        ['SHA256', p.sha256],
      );
      return fields.map(([k, v]) => `${k}: ${v}`).join('\n') + '\n';
    })
    .join('\n');
}

/** A file the Release lists: its path in the repository, size and hashes. */
export interface ReleaseEntry {
  path: string;
  size: number;
  md5: string;
  sha256: string;
}

/**
 * The `Release` of a flat repository. `date` is given, not read from the clock, so that the same
 * packages make the same file.
 */
export function flatRelease(
  entries: readonly ReleaseEntry[],
  opts: { date: Date; architectures: readonly string[]; origin?: string },
): string {
  const date = opts.date.toUTCString().replace('GMT', 'UTC');
  const list = (h: 'md5' | 'sha256') =>
    entries.map((e) => ` ${e[h]} ${String(e.size).padStart(8)} ${e.path}`).join('\n');
  return [
    `Origin: ${opts.origin ?? 'strata'}`,
    `Label: ${opts.origin ?? 'strata'}`,
    `Architectures: ${[...opts.architectures].sort().join(' ')}`,
    `Date: ${date}`,
    'MD5Sum:',
    list('md5'),
    'SHA256:',
    list('sha256'),
    '',
  ].join('\n');
}
