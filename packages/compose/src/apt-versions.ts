/** The package versions the current apt indices offer, for `strata check`'s newer-version report. */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { StrataError, ToolFailedError } from '@strata/oci';
import { AptSources, parsePackagesIndex } from '@strata/debian';
import { writeFileAtomic } from '@strata/store';
import { aptGetUpdate } from '@strata/tools';

/**
 * The versions read from the lists, with the sha256s of the Release files that sign them. A
 * Release file lists the hash of every index, so while the mirror serves the same Release files
 * the lists, and these versions, are the same.
 */
interface VersionsCache {
  releases: string[];
  versions: Array<[string, string]>;
}

const CACHE = 'versions.json';

async function readCache(dir: string): Promise<VersionsCache | undefined> {
  try {
    const doc = JSON.parse(await fsp.readFile(path.join(dir, CACHE), 'utf8')) as VersionsCache;
    return Array.isArray(doc.releases) && Array.isArray(doc.versions) ? doc : undefined;
  } catch {
    return undefined;
  }
}

/** The sha256s of the InRelease or Release file of each suite in apt's lists. */
async function releasesIn(lists: string): Promise<string[]> {
  const out = new Set<string>();
  for (const f of await fsp.readdir(lists)) {
    if (!f.endsWith('_InRelease') && !f.endsWith('_Release')) continue;
    out.add(
      createHash('sha256')
        .update(await fsp.readFile(path.join(lists, f)))
        .digest('hex'),
    );
  }
  return [...out].sort();
}

const sameSet = (a: readonly string[], b: readonly string[]) => {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
};

/**
 * Download the Packages indices of `sources` with the host's apt into `dir` (kept between runs,
 * so a second check only revalidates) and return the highest version of every package. When
 * the caller knows the Release files the mirror serves now (`releases`, their sha256s) and they
 * are those the versions were last read under, neither apt nor the indices are run or read.
 */
export async function availableVersions(
  sources: AptSources,
  architecture: string,
  dir: string,
  /** apt's auth.conf for a private repository (the `apt-auth` secret). */
  auth?: Buffer,
  releases?: readonly string[],
): Promise<Map<string, string>> {
  if (releases !== undefined && releases.length > 0) {
    const cached = await readCache(dir);
    if (cached && sameSet(cached.releases, releases)) return new Map(cached.versions);
  }
  const lists = path.join(dir, 'lists');
  await fsp.mkdir(path.join(lists, 'partial'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'cache'), { recursive: true });
  const sourcesFile = path.join(dir, 'sources.list');
  await fsp.writeFile(sourcesFile, sources.text);
  const authDir = path.join(dir, 'auth');
  if (auth !== undefined) await fsp.mkdir(authDir, { recursive: true });
  await aptGetUpdate(
    [
      `Dir::Etc::SourceList=${sourcesFile}`,
      'Dir::Etc::SourceParts=/dev/null',
      `Dir::State::Lists=${lists}`,
      'Dir::State::Status=/dev/null',
      `Dir::Cache=${path.join(dir, 'cache')}`,
      'Dir::Cache::pkgcache=',
      'Dir::Cache::srcpkgcache=',
      `APT::Architecture=${architecture}`,
      `APT::Architectures=${architecture}`,
      'APT::Sandbox::User=root',
      'Acquire::Languages=none',
      'Acquire::GzipIndexes=false',
    ],
    auth !== undefined ? { conf: auth, dir: authDir } : undefined,
  ).catch((e: unknown) => {
    if (e instanceof ToolFailedError && /\b401\s+Unauthorized\b/.test(e.message))
      throw new StrataError('UNAVAILABLE', e.message, {
        cause: e,
        hint:
          auth === undefined
            ? "give apt's auth.conf for the repository: --secret id=apt-auth,src=auth.conf"
            : 'the repository refused the credentials of the apt-auth secret',
      });
    throw e;
  });
  const versions = new Map<string, string>();
  for (const f of (await fsp.readdir(lists)).sort()) {
    if (!f.endsWith('_Packages')) continue;
    // latin1: the fields read are ASCII, and decoding some 50 MB as UTF-8 costs twice the time.
    parsePackagesIndex(await fsp.readFile(path.join(lists, f), 'latin1'), versions);
  }
  const doc: VersionsCache = { releases: await releasesIn(lists), versions: [...versions] };
  await writeFileAtomic(path.join(dir, CACHE), JSON.stringify(doc));
  return versions;
}
