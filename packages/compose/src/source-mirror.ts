/**
 * The mirror side of `strata sources`: the deb-src of a template's apt sources, read and
 * verified along the chain Release → Sources → .dsc → each file, every file kept as a store
 * blob named by its SHA-256 (so a second run downloads nothing).
 */
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Digest, DigestMismatchError, InvalidDocumentError, SizeMismatchError } from '@strata/oci';
import {
  AptSources,
  Authorizer,
  SourceFile,
  SourcePackage,
  openRepoFile,
  parseDsc,
  readIndexFile,
  releaseChecksums,
  scanSourcesIndex,
} from '@strata/debian';
import type { Store } from '@strata/store';
import { xzDecompress } from '@strata/tools';

export interface SourcesStats {
  /** Release or InRelease files read (always read: they say what the mirror holds now). */
  releaseRequests: number;
  /** Files downloaded: Sources indices and source package files. */
  downloads: number;
  downloadedBytes: number;
  /** Files the store already held (from an earlier run), so not downloaded. */
  fromCache: number;
  cachedBytes: number;
}

export class SourceFetcher {
  readonly stats: SourcesStats = {
    releaseRequests: 0,
    downloads: 0,
    downloadedBytes: 0,
    fromCache: 0,
    cachedBytes: 0,
  };
  constructor(
    private readonly store: Store,
    private readonly auth?: Authorizer,
  ) {}

  async release(uri: string, base: string): Promise<Map<string, SourceFile> | undefined> {
    for (const name of ['InRelease', 'Release']) {
      this.stats.releaseRequests++;
      const data = await readIndexFile(uri, `${base}${name}`, this.auth);
      if (data !== undefined)
        return releaseChecksums(data.toString('utf8'), `${uri} ${base}${name}`);
    }
    return undefined;
  }

  /**
   * The blob of a repository file that an index lists with checksum `f`: from the store when
   * it holds it, else downloaded and verified against `f` (a mismatch fails, and nothing is
   * kept). Undefined when the repository does not have the file.
   */
  async blob(uri: string, rel: string, f: SourceFile): Promise<Digest | undefined> {
    const digest = `sha256:${f.sha256}` as Digest;
    if (await this.store.hasBlob(digest)) {
      this.stats.fromCache++;
      this.stats.cachedBytes += f.size;
      return digest;
    }
    const body = await openRepoFile(uri, rel, this.auth);
    if (body === undefined) return undefined;
    try {
      await this.store.putBlob(body, { digest, size: f.size });
    } catch (e) {
      body.destroy();
      // Say which file of which repository did not match what its index promised.
      if (e instanceof DigestMismatchError) {
        throw new DigestMismatchError(e.expected, e.actual, `${uri}/${rel}`);
      }
      if (e instanceof SizeMismatchError) {
        throw new SizeMismatchError(e.expected, e.actual, `${uri}/${rel}`);
      }
      throw e;
    }
    this.stats.downloads++;
    this.stats.downloadedBytes += f.size;
    return digest;
  }

  async open(digest: Digest, size: number): Promise<Readable> {
    return this.store.openBlob(digest, size);
  }
}

/** Where a suite's files lie: `dists/<suite>/`, or a flat repository's own folder. */
function suiteBase(suite: string): string {
  return suite.endsWith('/') ? (suite === './' ? '' : suite) : `dists/${suite}/`;
}

export interface Candidate {
  pkg: SourcePackage;
  uri: string;
}

/** The text of a Sources index blob, decompressed as its name says. */
async function scanIndexBlob(
  fetcher: SourceFetcher,
  digest: Digest,
  f: SourceFile,
  wanted: ReadonlySet<string>,
  what: string,
): Promise<Map<string, SourcePackage>> {
  const raw = await fetcher.open(digest, f.size);
  if (f.name.endsWith('.xz')) {
    const xz = xzDecompress();
    raw.on('error', (err) => xz.stdout.destroy(err));
    raw.pipe(xz.stdin);
    const [found] = await Promise.all([scanSourcesIndex(xz.stdout, wanted, what), xz.done]);
    return found;
  }
  const text = f.name.endsWith('.gz') ? raw.pipe(createGunzip()) : raw;
  if (text !== raw) raw.on('error', (err) => text.destroy(err));
  return scanSourcesIndex(text, wanted, what);
}

/**
 * Read the Sources indices of every apt source (as deb-src) and find the wanted source
 * packages in them, each with every source that lists it, in the order of the apt sources (the
 * first one that has all its files is used). Returns the indices
 * read, and the sources (`uri suite component`) that have none.
 */
export async function findSources(
  fetcher: SourceFetcher,
  sources: AptSources,
  wanted: ReadonlySet<string>,
): Promise<{ found: Map<string, Candidate[]>; read: string[]; none: string[] }> {
  const found = new Map<string, Candidate[]>();
  const read: string[] = [];
  const none: string[] = [];
  const seen = new Set<string>();
  for (const e of sources.entries) {
    if (seen.has(`${e.uri} ${e.suite}`)) continue;
    seen.add(`${e.uri} ${e.suite}`);
    const base = suiteBase(e.suite);
    const release = await fetcher.release(e.uri, base);
    const flat = e.suite.endsWith('/');
    for (const comp of flat ? [''] : e.components) {
      const dir = flat ? '' : `${comp}/source/`;
      let done = false;
      // gzip first: Node reads it in-process. A Release lists the uncompressed file's checksum
      // even where the mirror serves only compressed ones, so each listed name is tried.
      for (const name of ['Sources.gz', 'Sources.xz', 'Sources'].map((n) => `${dir}${n}`)) {
        const f = release?.get(name);
        if (f === undefined) continue;
        const digest = await fetcher.blob(e.uri, `${base}${name}`, f);
        if (digest === undefined) continue;
        const what = `${e.uri} ${base}${name}`;
        const here = await scanIndexBlob(fetcher, digest, f, wanted, what);
        for (const [key, pkg] of here)
          found.set(key, [...(found.get(key) ?? []), { pkg, uri: e.uri }]);
        read.push(what);
        done = true;
        break;
      }
      if (!done) none.push(`${e.uri} ${e.suite}${flat ? '' : ` ${comp}`}`);
    }
  }
  return { found, read, none };
}

/**
 * Download one source package: its .dsc, verified against the Sources index, then every file
 * the .dsc lists, verified against the .dsc. A .dsc that disagrees with the index about any
 * file is refused. Returns why it could not, when the repository lacks a file.
 */
export async function fetchSource(
  store: Store,
  fetcher: SourceFetcher,
  c: Candidate,
): Promise<string | undefined> {
  const { pkg, uri } = c;
  const dscDigest = await fetcher.blob(uri, `${pkg.directory}/${pkg.dsc.name}`, pkg.dsc);
  if (dscDigest === undefined) return `${uri} has no ${pkg.directory}/${pkg.dsc.name}`;
  const what = `${pkg.dsc.name} (${uri})`;
  const dsc = parseDsc((await store.readBlob(dscDigest, pkg.dsc.size)).toString('utf8'), what);
  if (dsc.source !== pkg.name || dsc.version !== pkg.version) {
    throw new InvalidDocumentError(what, [
      `it is ${dsc.source} ${dsc.version}, the Sources index says ${pkg.name} ${pkg.version}`,
    ]);
  }
  const listed = new Map(pkg.files.map((f) => [f.name, f]));
  for (const f of dsc.files) {
    const l = listed.get(f.name);
    if (!l || l.sha256 !== f.sha256 || l.size !== f.size) {
      throw new InvalidDocumentError(what, [
        `${f.name} is not in the Sources index with the .dsc's checksum`,
      ]);
    }
  }
  for (const f of dsc.files) {
    const got = await fetcher.blob(uri, `${pkg.directory}/${f.name}`, f);
    if (got === undefined) return `${uri} has no ${pkg.directory}/${f.name}`;
  }
  return undefined;
}
