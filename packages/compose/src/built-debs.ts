/**
 * The .debs of a build: those its DEBUILD steps made or its FROM template carried, the flat apt
 * repository that later steps install them from by name, and the debs artifact (with the
 * source packages they were built from) attached to its result.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Annotations, ArtifactTypes, Descriptor, Digest, MediaTypes } from '@strata/oci';
import { parseDeb822, parseDsc } from '@strata/debian';
import { debControl } from '@strata/tools';
import type { Store } from '@strata/store';
import { linkOrCopy } from './apt-state';
import { debSourcesAttachedTo, debsAttachedTo } from './export-debs';
import { titleOf } from './debuild-source';
import type { BuildContext } from './build-state';
import { RepoContents, writeDebsRepo } from './local-repo';

/** A .deb the build made (or was given): its blob in the store and what it is. */
export interface BuiltDeb {
  blob: Descriptor;
  filename: string;
  package: string;
  version: string;
  /** The version of the source package it was built from, when it is not `version` (a binNMU). */
  sourceVersion?: string;
  architecture: string;
}

/**
 * The packages a build has made so far, and the flat apt repository that holds them for its
 * steps (mounted at /run/strata/local). The repository is written again only when a package is
 * added; its Release digest is part of the cache key of every apt step after that.
 */
export class LocalDebs {
  readonly debs: BuiltDeb[] = [];
  /** The files of the source packages the .debs were built from, by file name. */
  private readonly sourceFiles = new Map<string, Descriptor>();
  private repo?: RepoContents;
  private dirty = false;
  private generation = 0;

  constructor(
    private readonly ctx: Pick<BuildContext, 'store'>,
    private readonly scratch: () => Promise<string>,
  ) {}

  add(debs: readonly BuiltDeb[]): void {
    for (const d of debs) {
      const same = this.debs.findIndex(
        (x) => x.package === d.package && x.architecture === d.architecture,
      );
      if (same >= 0) this.debs.splice(same, 1);
      this.debs.push(d);
    }
    if (debs.length > 0) this.dirty = true;
  }

  /** Keep source package files (titled blobs) to attach with the .debs; a later one replaces one of the same name. */
  addSources(files: readonly Descriptor[]): void {
    for (const f of files) this.sourceFiles.set(titleOf(f), f);
  }

  /**
   * The source package files to attach with the .debs, sorted by name: the .dsc of each source
   * package a kept .deb was built from (one that names the package in its Binary field, at the
   * .deb's source version) and the files it lists. A source package whose .debs a later DEBUILD
   * replaced (a FROM template's 1.0, built again as 1.1) is not carried on.
   */
  async sources(): Promise<Descriptor[]> {
    const keep = new Map<string, Descriptor>();
    for (const [name, f] of this.sourceFiles) {
      if (!name.endsWith('.dsc')) continue;
      const dsc = parseDsc(
        (await this.ctx.store.readBlob(f.digest, f.size)).toString('utf8'),
        name,
      );
      const built = this.debs.some(
        (d) => dsc.binaries.includes(d.package) && (d.sourceVersion ?? d.version) === dsc.version,
      );
      if (!built) continue;
      keep.set(name, f);
      for (const listed of dsc.files) {
        const g = this.sourceFiles.get(listed.name);
        if (g !== undefined) keep.set(listed.name, g);
      }
    }
    return [...keep.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, f]) => f);
  }

  /** The repository, written now if packages were added since; undefined while there are none. */
  async current(): Promise<RepoContents | undefined> {
    if (this.debs.length === 0) return undefined;
    if (this.repo && !this.dirty) return this.repo;
    const dir = path.join(await this.scratch(), `repo-${this.generation++}`);
    const files: string[] = [];
    for (const d of this.debs) {
      const { path: blob } = await this.ctx.store.blobFile(d.blob.digest, d.blob.size);
      const named = path.join(dir, '.blobs', d.filename);
      await fsp.mkdir(path.dirname(named), { recursive: true });
      await linkOrCopy(blob, named);
      files.push(named);
    }
    // A fixed date: the same packages make the same Release, and so the same step keys.
    this.repo = await writeDebsRepo(dir, files, { date: new Date(0) });
    await fsp.rm(path.join(dir, '.blobs'), { recursive: true, force: true });
    this.dirty = false;
    return this.repo;
  }
}

/** A .deb in the store as the build knows it: the blob, and what dpkg-deb says it is. */
export async function builtDeb(
  file: string,
  filename: string,
  blob: { digest: Digest; size: number },
): Promise<BuiltDeb> {
  const control = parseDeb822(await debControl(file))[0] ?? new Map<string, string>();
  const version = control.get('version') ?? '';
  // `Source: name (version)` when the source version is not the package's.
  const sourceVersion = /\((.+)\)\s*$/.exec(control.get('source') ?? '')?.[1]?.trim();
  return {
    blob: {
      mediaType: MediaTypes.debianPackage,
      digest: blob.digest,
      size: blob.size,
      annotations: { [Annotations.title]: filename },
    },
    filename,
    package: control.get('package') ?? filename,
    version,
    ...(sourceVersion !== undefined && sourceVersion !== version ? { sourceVersion } : {}),
    architecture: control.get('architecture') ?? 'all',
  };
}

/**
 * The .debs attached to a FROM template (`desc`, and `rootfs`: the image FROM chose from it),
 * as packages the build can install by name.
 */
export async function inheritedDebs(
  store: Store,
  desc: Descriptor,
  rootfs: Descriptor,
): Promise<{ debs: BuiltDeb[]; sources: Descriptor[] }> {
  const debs: BuiltDeb[] = [];
  for (const a of await debsAttachedTo(store, desc, rootfs, desc.digest)) {
    const { path: file } = await store.blobFile(a.blob.digest, a.blob.size);
    debs.push(await builtDeb(file, a.filename, a.blob));
  }
  const sources = (await debSourcesAttachedTo(store, desc, rootfs, desc.digest)).map((a) => a.blob);
  return { debs, sources };
}

/**
 * Attach the build's .debs, with the files of the source packages they were built from, to its
 * result (`subject`: the rootfs image), as a debs artifact.
 */
export async function attachDebs(
  store: Store,
  subject: Descriptor,
  debs: readonly BuiltDeb[],
  sources: readonly Descriptor[] = [],
): Promise<Descriptor | undefined> {
  if (debs.length === 0) return undefined;
  // All are store blobs already: attached as they are, not read and hashed again.
  const files = [
    ...debs.map((d) => ({ blob: d.blob, mediaType: MediaTypes.debianPackage, title: d.filename })),
    ...sources.map((s) => ({ blob: s, mediaType: MediaTypes.debianSourceFile, title: titleOf(s) })),
  ];
  return store.attach(subject, ArtifactTypes.debs, files);
}
