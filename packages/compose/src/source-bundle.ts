/**
 * `strata sources`: the source packages of a template's binaries, fetched from the deb-src of
 * its apt sources and verified along the chain Release → Sources → .dsc → each file, with the
 * template's own COPY'd content, written to a folder with an index (and optionally attached to
 * the template as an OCI artifact).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import {
  ArtifactTypes,
  Descriptor,
  Digest,
  DigestMismatchError,
  InvalidArgumentError,
  InvalidDocumentError,
  MediaTypes,
  PlatformSelector,
  SizeMismatchError,
  StrataError,
  compressionOf,
  digestHex,
  encodeJson,
} from '@strata/oci';
import type { DebianPackage, DebuildRecord, TemplateMetadata } from '@strata/oci';
import {
  AptSources,
  Authorizer,
  Dsc,
  SourceFile,
  SourcePackage,
  authorizationFor,
  hostSources,
  makeSources,
  openRepoFile,
  parseAuthConf,
  parseDsc,
  readIndexFile,
  releaseChecksums,
  scanSourcesIndex,
} from '@strata/debian';
import { Store, commitFile, tempPathFor, writeFileAtomic } from '@strata/store';
import { xzDecompress } from '@strata/tools';
import { AttachedDeb, debSourcesAttachedTo } from './export-debs';

/** A source package of the template, and the files written for it. */
export interface BundledSource {
  name: string;
  version: string;
  /** The binary packages built from it, `name:arch=version`, sorted. */
  binaries: string[];
  /** The apt repository it came from. */
  repository: string;
  /** Its files (the .dsc among them), sorted by name; each is written to the folder by name. */
  files: SourceFile[];
}

/** A source package that none of the apt sources has (or has only in part). */
export interface MissingSource {
  name: string;
  version: string;
  binaries: string[];
  reason: string;
}

/** A COPY step's layer, written to the folder as it is in the store. */
export interface CopiedLayer {
  createdBy: string;
  layer: Digest;
  file: string;
}

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

/** `sources.json`: what the folder holds. Depends only on the template and the mirror state. */
export interface SourceIndex {
  schemaVersion: 2;
  /** The template's rootfs image manifest. */
  digest: Digest;
  name: string;
  architecture: string;
  sources: BundledSource[];
  missing: MissingSource[];
  copied: CopiedLayer[];
  debuilds: DebuildSource[];
  /** The Sources indices read (`uri path`), and the apt sources without one (`uri suite component`). */
  indices: { read: string[]; none: string[] };
}

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

export interface SourcesResult {
  dir: string;
  index: SourceIndex;
  stats: SourcesStats;
  /** The artifact attached to the template, with `attach`. */
  attached?: Descriptor;
}

export interface SourcesOptions {
  platform?: PlatformSelector;
  /**
   * The apt sources whose deb-src to use (each `deb` entry read as a `deb-src`); default: those
   * the template records it was built with, else the build host's.
   */
  aptSources?: AptSources;
  /** Attach the bundle to the template's rootfs image as a sources artifact. */
  attach?: boolean;
  /** Source packages downloaded at a time. */
  concurrency?: number;
  /** apt's auth.conf for private repositories (the `apt-auth` secret of the build). */
  aptAuth?: Buffer;
}

const INDEX_FILE = 'sources.json';
const TABLE_FILE = 'SOURCES.txt';

interface Wanted {
  name: string;
  version: string;
  binaries: string[];
}

/**
 * The source packages that `packages` (a template's metadata) were built from, keyed
 * `name=version`. The source version is dpkg's `Source: foo (version)` where it differs from
 * the binary's (a binNMU, or a binary versioned on its own), else the binary's version.
 * Packages that `skip` names (`name=version`, DEBUILD's) are left out.
 */
export function sourcesOf(
  packages: readonly DebianPackage[],
  skip: ReadonlySet<string> = new Set(),
): Map<string, Wanted> {
  const out = new Map<string, Wanted>();
  for (const p of packages) {
    if (skip.has(`${p.name}=${p.version}`)) continue;
    const version = p.sourceVersion ?? p.version;
    const key = `${p.source}=${version}`;
    const w = out.get(key) ?? { name: p.source, version, binaries: [] };
    w.binaries.push(`${p.name}:${p.architecture}=${p.version}`);
    out.set(key, w);
  }
  for (const w of out.values()) w.binaries.sort();
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const byName = <T extends { name: string }>(a: T, b: T): number =>
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
async function carriedSources(
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

/** Run `fn` on each item, `n` at a time; the first failure stops the rest from starting. */
async function eachLimited<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const t = items[next++] as T;
      try {
        await fn(t);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

class SourceFetcher {
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

interface Candidate {
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
async function findSources(
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

/** Copy a store blob to `target`, verified while it streams, renamed into place. */
async function writeBlobTo(store: Store, digest: Digest, size: number, target: string) {
  const tmp = tempPathFor(target);
  try {
    await pipeline(
      await store.openBlob(digest, size),
      (await fsp.open(tmp, 'wx', 0o644)).createWriteStream(),
    );
    await commitFile(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Download one source package: its .dsc, verified against the Sources index, then every file
 * the .dsc lists, verified against the .dsc. A .dsc that disagrees with the index about any
 * file is refused. Returns why it could not, when the repository lacks a file.
 */
async function fetchSource(
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

function layerFileName(i: number, layer: Descriptor): string {
  const ext = { zstd: '.tar.zst', gzip: '.tar.gz', none: '.tar' }[
    compressionOf(layer.mediaType) ?? 'none'
  ];
  return `copy-${i}-${digestHex(layer.digest).slice(0, 12)}${ext}`;
}

function table(index: SourceIndex): string {
  const rows: string[][] = [['SOURCE', 'VERSION', 'BINARIES', 'FILES']];
  for (const s of index.sources) {
    rows.push([s.name, s.version, s.binaries.join(' '), s.files.map((f) => f.name).join(' ')]);
  }
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => (r[c] as string).length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c < widths.length ? cell.padEnd(widths[c] as number) : cell)).join('  ');
  const out = [`Sources of ${index.name} (${index.architecture}, ${index.digest})`, ''];
  out.push(...rows.map(line));
  if (index.missing.length > 0) {
    out.push('', 'MISSING (not on the mirror):');
    for (const m of index.missing) out.push(`${m.name} ${m.version}: ${m.reason}`);
  }
  if (index.copied.length > 0) {
    out.push('', 'COPY layers:');
    for (const c of index.copied) out.push(`${c.file}  ${c.createdBy}`);
  }
  if (index.debuilds.length > 0) {
    out.push('', "DEBUILD sources (carried with the template's .debs):");
    for (const d of index.debuilds) {
      const files = d.files.map((f) => f.name).join(' ');
      out.push(`${d.name} ${d.version}  ${d.source ?? '(from its FROM template)'}  ${files}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * Write the sources of template `ref` to `out`: every source package its binaries came from
 * (`<file>` for each file of each, as apt-get source lays them out), the layers of its COPY
 * steps, `sources.json` (a {@link SourceIndex}) and `SOURCES.txt` (the same as a table).
 * Downloads go into the store as blobs by their sha256, so a second run downloads none of
 * them; they are kept by an attached bundle, and otherwise freed by the next `strata gc`.
 * A source package that no apt source has is listed in `missing`, never left out silently.
 */
export async function writeSources(
  store: Store,
  ref: string,
  out: string,
  opts: SourcesOptions,
): Promise<SourcesResult> {
  const dir = path.resolve(out);
  const desc = await store.resolve(ref);
  const img = await store.selectImage(
    desc,
    opts.platform ? { role: 'rootfs', platform: opts.platform } : { role: 'rootfs' },
    ref,
  );
  const config = await img.config();
  const meta: TemplateMetadata | undefined = config.strata;
  if (!meta) {
    throw new InvalidArgumentError(`${ref} has no Strata metadata: its packages are not known`, {
      hint: 'strata sources reads the package list a template records when it is made',
    });
  }
  const debuilds = debuildSources(
    await carriedSources(store, await debSourcesAttachedTo(store, desc, img.descriptor, ref), ref),
    meta.debuilds ?? [],
    meta.packages,
  );
  // The template's own packages come from the sources it carries, not from the mirror; one
  // that DEBUILD made but whose source it does not carry is named as missing.
  const carried = new Set(debuilds.map((d) => `${d.name}=${d.version}`));
  const fromCarried = (p: DebianPackage) =>
    carried.has(`${p.source}=${p.sourceVersion ?? p.version}`);
  const debuilt = new Set((meta.debuilds ?? []).flatMap((d) => d.packages));
  const own = (p: DebianPackage) => fromCarried(p) || debuilt.has(`${p.name}=${p.version}`);
  const wanted = sourcesOf(
    meta.packages,
    new Set(meta.packages.filter(own).map((p) => `${p.name}=${p.version}`)),
  );
  const uncarried = sourcesOf(meta.packages.filter((p) => own(p) && !fromCarried(p)));
  const aptSources =
    opts.aptSources ??
    (meta.aptSources !== undefined && meta.aptSources.length > 0
      ? makeSources(meta.aptSources.join('\n'), `the apt sources ${ref} was built with`)
      : await hostSources());
  const authConf = opts.aptAuth && parseAuthConf(opts.aptAuth.toString('utf8'));
  const fetcher = new SourceFetcher(
    store,
    authConf && ((url: string) => authorizationFor(authConf, url)),
  );
  await fsp.mkdir(dir, { recursive: true });
  return store.withLease(async () => {
    const { found, read, none } = await findSources(
      fetcher,
      aptSources,
      new Set([...wanted.values()].map((w) => w.name)),
    );
    if (read.length === 0 && wanted.size > 0) {
      throw new StrataError(
        'NOT_FOUND',
        `none of the apt sources (${aptSources.origin}) has a Sources index`,
        { hint: 'strata sources reads each deb source as a deb-src: the mirror must serve source' },
      );
    }
    const sources: BundledSource[] = [];
    const missing: MissingSource[] = [];
    const todo = [...wanted.values()];
    const reasons = new Map<string, string>();
    const chosen = new Map<string, Candidate>();
    await eachLimited(todo, opts.concurrency ?? 4, async (w) => {
      const key = `${w.name}=${w.version}`;
      const why: string[] = [];
      for (const c of found.get(key) ?? []) {
        const lacks = await fetchSource(store, fetcher, c);
        if (lacks === undefined) {
          chosen.set(key, c);
          return;
        }
        why.push(lacks);
      }
      reasons.set(
        key,
        why.length > 0 ? why.join('; ') : `not in the Sources indices of ${aptSources.origin}`,
      );
    });
    const names = new Map<string, { digest: Digest; size: number }>();
    const name = (f: SourceFile) => {
      const held = names.get(f.name);
      if (held !== undefined && held.digest !== `sha256:${f.sha256}`) {
        throw new InvalidDocumentError(`source bundle of ${ref}`, [
          `two different files are both named ${f.name}`,
        ]);
      }
      names.set(f.name, { digest: `sha256:${f.sha256}` as Digest, size: f.size });
    };
    for (const w of uncarried.values()) {
      missing.push({
        ...w,
        reason:
          'built by DEBUILD, but the template does not carry its source package (a build by a Strata that did not keep them: build it again)',
      });
    }
    for (const d of debuilds) d.files.forEach(name);
    for (const w of todo) {
      const key = `${w.name}=${w.version}`;
      const c = chosen.get(key);
      if (!c) {
        missing.push({ ...w, reason: reasons.get(key) ?? 'not found' });
        continue;
      }
      c.pkg.files.forEach(name);
      sources.push({ ...w, repository: c.uri, files: c.pkg.files });
    }
    const manifest = await img.manifest();
    const copied: CopiedLayer[] = [];
    const copyLayers: Descriptor[] = [];
    meta.layers.forEach((l, i) => {
      const layer = manifest.layers[config.rootfs.diff_ids.indexOf(l.diffId)];
      if (!/^(COPY|ADD)\s/i.test(l.createdBy) || !layer) return;
      copied.push({ createdBy: l.createdBy, layer: layer.digest, file: layerFileName(i, layer) });
      copyLayers.push(layer);
    });
    const index: SourceIndex = {
      schemaVersion: 2,
      digest: img.descriptor.digest,
      name: meta.name,
      architecture: meta.architecture,
      sources: sources.sort(byName),
      missing: missing.sort(byName),
      copied,
      debuilds,
      indices: { read, none },
    };
    for (const [file, { digest, size }] of [...names].sort(([a], [b]) => (a < b ? -1 : 1))) {
      await writeBlobTo(store, digest, size, path.join(dir, file));
    }
    for (const [i, c] of copied.entries()) {
      const layer = copyLayers[i] as Descriptor;
      await writeBlobTo(store, layer.digest, layer.size, path.join(dir, c.file));
    }
    await writeFileAtomic(path.join(dir, INDEX_FILE), encodeJson(index));
    await writeFileAtomic(path.join(dir, TABLE_FILE), table(index));
    const result: SourcesResult = { dir, index, stats: fetcher.stats };
    if (opts.attach) {
      const files: Array<{ path: string; mediaType: string; title: string }> = [
        { path: path.join(dir, INDEX_FILE), mediaType: MediaTypes.sourcesIndex, title: INDEX_FILE },
      ];
      for (const [title, { digest, size }] of names) {
        const { path: file } = await store.blobFile(digest, size);
        files.push({ path: file, mediaType: MediaTypes.debianSourceFile, title });
      }
      for (const [i, c] of copied.entries()) {
        const layer = copyLayers[i] as Descriptor;
        const { path: file } = await store.blobFile(layer.digest, layer.size);
        files.push({ path: file, mediaType: layer.mediaType, title: c.file });
      }
      result.attached = await store.attach(img.descriptor, ArtifactTypes.sources, files);
    }
    return result;
  });
}
