/**
 * `strata sources`: the source packages of a template's binaries, fetched from the deb-src of
 * its apt sources and verified along the chain Release → Sources → .dsc → each file, with the
 * template's own COPY'd content, written to a folder with an index (and optionally attached to
 * the template as an OCI artifact).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  ArtifactTypes,
  Descriptor,
  Digest,
  InvalidArgumentError,
  InvalidDocumentError,
  MediaTypes,
  PlatformSelector,
  StrataError,
  compressionOf,
  digestHex,
  encodeJson,
} from '@strata/oci';
import type { DebianPackage, ShadowedPackage, TemplateMetadata } from '@strata/oci';
import {
  AptSources,
  SourceFile,
  authorizationFor,
  hostSources,
  makeSources,
  parseAuthConf,
} from '@strata/debian';
import { AttachedFile, Store, commitFile, tempPathFor, writeFileAtomic } from '@strata/store';
import { debSourcesAttachedTo } from './export-debs';
import { DebuildSource, byName, carriedSources, debuildSources } from './source-carried';
import { Candidate, SourceFetcher, SourcesStats, fetchSource, findSources } from './source-mirror';

export type { DebuildSource } from './source-carried';
export type { SourcesStats } from './source-mirror';

/**
 * A binary package (`name:arch=version`) that embeds a source package, and the field of its
 * control data that says so (Debian Policy 7.8): that source must be shipped with it.
 */
export interface BuiltUsing {
  binary: string;
  field: 'Built-Using' | 'Static-Built-Using';
}

/** A source package of the template, and the files written for it. */
export interface BundledSource {
  name: string;
  version: string;
  /** The binary packages built from it, `name:arch=version`, sorted. */
  binaries: string[];
  /**
   * Those of `binaries` that a later layer removed or replaced: only a lower layer's blob, which
   * a push distributes, holds them. Sorted.
   */
  shadowed?: string[];
  /** The binaries that embed it (Built-Using), when any do; sorted. */
  builtUsing?: BuiltUsing[];
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
  shadowed?: string[];
  builtUsing?: BuiltUsing[];
  reason: string;
}

/** A COPY step's layer, written to the folder as it is in the store. */
export interface CopiedLayer {
  createdBy: string;
  layer: Digest;
  file: string;
  /**
   * A `COPY --from`: the stage whose result it copied. That stage is not in the template, so
   * the sources of what it built (its own COPY inputs, what it compiled against) are not here.
   */
  fromStage?: string;
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
  shadowed?: string[];
  builtUsing?: BuiltUsing[];
}

/**
 * The source packages that `packages` (a template's metadata) were built from, keyed
 * `name=version`. The source version is dpkg's `Source: foo (version)` where it differs from
 * the binary's (a binNMU, or a binary versioned on its own), else the binary's version.
 * Packages that `skip` names (`name=version`, DEBUILD's) are left out; the sources that a
 * package's Built-Using and Static-Built-Using name are in, skipped or not: it embeds them, and
 * Debian Policy 7.8 wants them shipped with it. A ShadowedPackage's binary is also listed as
 * shadowed: a push distributes it in a lower layer's blob.
 */
export function sourcesOf(
  packages: ReadonlyArray<DebianPackage | ShadowedPackage>,
  skip: ReadonlySet<string> = new Set(),
): Map<string, Wanted> {
  const out = new Map<string, Wanted>();
  const want = (name: string, version: string): Wanted => {
    const key = `${name}=${version}`;
    const w = out.get(key) ?? { name, version, binaries: [] };
    out.set(key, w);
    return w;
  };
  for (const p of packages) {
    const binary = `${p.name}:${p.architecture}=${p.version}`;
    if (!skip.has(`${p.name}=${p.version}`)) {
      const w = want(p.source, p.sourceVersion ?? p.version);
      w.binaries.push(binary);
      if ('layer' in p) (w.shadowed ??= []).push(binary);
    }
    for (const [field, used] of [
      ['Built-Using', p.builtUsing],
      ['Static-Built-Using', p.staticBuiltUsing],
    ] as const) {
      for (const u of used ?? []) {
        const eq = u.indexOf('=');
        const w = want(u.slice(0, eq), u.slice(eq + 1));
        (w.builtUsing ??= []).push({ binary, field });
      }
    }
  }
  for (const w of out.values()) {
    w.binaries.sort();
    w.shadowed?.sort();
    w.builtUsing?.sort((a, b) =>
      a.binary < b.binary ? -1 : a.binary > b.binary ? 1 : a.field < b.field ? -1 : 1,
    );
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
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

function layerFileName(i: number, layer: Descriptor): string {
  const ext = { zstd: '.tar.zst', gzip: '.tar.gz', none: '.tar' }[
    compressionOf(layer.mediaType) ?? 'none'
  ];
  return `copy-${i}-${digestHex(layer.digest).slice(0, 12)}${ext}`;
}

/** The binaries built from a source, and those that embed it (`fgetty:amd64=0.7-6 (Built-Using)`). */
function binariesCell(s: Wanted): string {
  const lower = new Set(s.shadowed ?? []);
  return [
    ...s.binaries.map((b) => (lower.has(b) ? `${b} (lower layer)` : b)),
    ...(s.builtUsing ?? []).map((b) => `${b.binary} (${b.field})`),
  ].join(' ');
}

function table(index: SourceIndex): string {
  const rows: string[][] = [['SOURCE', 'VERSION', 'BINARIES', 'FILES']];
  for (const s of index.sources) {
    rows.push([s.name, s.version, binariesCell(s), s.files.map((f) => f.name).join(' ')]);
  }
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => (r[c] as string).length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c < widths.length ? cell.padEnd(widths[c] as number) : cell)).join('  ');
  const out = [`Sources of ${index.name} (${index.architecture}, ${index.digest})`, ''];
  out.push(...rows.map(line));
  if (index.missing.length > 0) {
    out.push('', 'MISSING (not on the mirror):');
    for (const m of index.missing) {
      const by = (m.builtUsing ?? []).map((b) => `${b.binary} (${b.field})`);
      out.push(
        `${m.name} ${m.version}: ${m.reason}${by.length > 0 ? `; needed by ${by.join(', ')}` : ''}`,
      );
    }
  }
  if (index.copied.length > 0) {
    out.push('', 'COPY layers:');
    for (const c of index.copied)
      out.push(
        `${c.file}  ${c.createdBy}${c.fromStage !== undefined ? `  (made in stage ${c.fromStage}, whose sources are not in this bundle)` : ''}`,
      );
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
 * A compliance bundle must hold one template's sources and nothing else: `dir` may be empty, or
 * hold the bundle of this same image (a run again, after a mirror served what it lacked).
 */
async function refuseOtherBundle(dir: string, digest: Digest): Promise<void> {
  const names = await fsp.readdir(dir);
  if (names.length === 0) return;
  const index = await fsp
    .readFile(path.join(dir, INDEX_FILE), 'utf8')
    .then((t) => JSON.parse(t) as Partial<SourceIndex>)
    .catch(() => undefined);
  if (index?.digest === digest) return;
  throw new StrataError(
    'ALREADY_EXISTS',
    index?.digest !== undefined
      ? `${dir} holds the sources of another template (${index.name ?? ''} ${index.digest})`
      : `${dir} is not empty`,
    { hint: "write each template's sources into a directory of their own" },
  );
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
  const debuilt = new Set([
    ...(meta.debuilds ?? []).flatMap((d) => d.packages),
    ...meta.layers.flatMap((l) => l.ownDebs ?? []),
  ]);
  const own = (p: DebianPackage) => fromCarried(p) || debuilt.has(`${p.name}=${p.version}`);
  // What a later layer removed is still in a lower layer's blob: pushing the image distributes
  // it, and its source with it.
  const shipped = [...meta.packages, ...(meta.shadowedPackages ?? [])];
  const wanted = sourcesOf(
    shipped,
    new Set(shipped.filter(own).map((p) => `${p.name}=${p.version}`)),
  );
  // Only their own sources: what they embed is in `wanted`, fetched from the mirror.
  const uncarried = sourcesOf(
    shipped
      .filter((p) => own(p) && !fromCarried(p))
      .map((p) => ({ ...p, builtUsing: [], staticBuiltUsing: [] })),
  );
  const aptSources =
    opts.aptSources ??
    (meta.aptSources !== undefined && meta.aptSources.length > 0
      ? makeSources(meta.aptSources.join('\n'), "the template's apt sources")
      : await hostSources());
  const authConf = opts.aptAuth && parseAuthConf(opts.aptAuth.toString('utf8'));
  const fetcher = new SourceFetcher(
    store,
    authConf && ((url: string) => authorizationFor(authConf, url)),
  );
  await fsp.mkdir(dir, { recursive: true });
  await refuseOtherBundle(dir, img.descriptor.digest);
  return store.withLease(async () => {
    // A template without packages (a tree of files) wants no Sources index.
    const { found, read, none } =
      wanted.size > 0
        ? await findSources(fetcher, aptSources, new Set([...wanted.values()].map((w) => w.name)))
        : { found: new Map<string, Candidate[]>(), read: [], none: [] };
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
      // The index names the indices it read: the reason names neither the ref it was asked by
      // nor the file the sources came from, so the bundle is the same whatever they were.
      reasons.set(key, why.length > 0 ? why.join('; ') : 'not in any of the Sources indices read');
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
      copied.push({
        createdBy: l.createdBy,
        layer: layer.digest,
        file: layerFileName(i, layer),
        ...(l.copiedFrom !== undefined ? { fromStage: l.copiedFrom.stage } : {}),
      });
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
      const files: AttachedFile[] = [
        { path: path.join(dir, INDEX_FILE), mediaType: MediaTypes.sourcesIndex, title: INDEX_FILE },
      ];
      for (const [title, blob] of names)
        files.push({ blob, mediaType: MediaTypes.debianSourceFile, title });
      for (const [i, c] of copied.entries()) {
        const layer = copyLayers[i] as Descriptor;
        files.push({ blob: layer, mediaType: layer.mediaType, title: c.file });
      }
      // The new bundle is the template's bundle: one made before (a mirror that lacked a
      // package then) is no longer attached, so inspect and push show only this one.
      result.attached = await store.attach(
        img.descriptor,
        ArtifactTypes.sources,
        files,
        undefined,
        {
          replace: true,
        },
      );
    }
    return result;
  });
}
