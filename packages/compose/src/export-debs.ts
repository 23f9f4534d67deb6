import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  Annotations,
  ArtifactTypes,
  Descriptor,
  Image,
  InvalidDocumentError,
  MediaTypes,
  NotFoundError,
  PlatformSelector,
  isIndexMediaType,
  parseJson,
} from '@strata/oci';
import type { ImageManifest } from '@strata/oci';
import { Store, commitFile, tempPathFor } from '@strata/store';
import { RepoContents, writeDebsRepo } from './local-repo';

/**
 * One file attached to a template in a debs artifact (a .deb, or a file of the source package
 * it was built from): its file name (the layer's title) and its blob.
 */
export interface AttachedDeb {
  filename: string;
  blob: Descriptor;
  /** The artifact manifest that holds it. */
  artifact: Descriptor;
}

/** A .deb file name as Debian makes them: nothing that could leave the folder it is written to. */
const DEB_NAME = /^[A-Za-z0-9][A-Za-z0-9.+~_%-]*\.deb$/;

/**
 * The .debs attached to a template (`desc`): those of the debs artifacts whose subject is its
 * rootfs image (chosen by selectManifest, of `platform` when given) or, for a template index,
 * the index itself. A file name held by two different blobs is an error; the same blob twice is
 * one deb. Sorted by file name.
 */
export async function attachedDebs(
  store: Store,
  desc: Descriptor,
  platform?: PlatformSelector,
  what = desc.digest as string,
): Promise<AttachedDeb[]> {
  return debsAttachedTo(
    store,
    desc,
    (await rootfsOf(store, desc, platform, what)).descriptor,
    what,
  );
}

function rootfsOf(
  store: Store,
  desc: Descriptor,
  platform: PlatformSelector | undefined,
  what: string,
): Promise<Image> {
  return store.selectImage(
    desc,
    platform ? { role: 'rootfs', platform } : { role: 'rootfs' },
    what,
  );
}

/**
 * The .debs attached to a template `desc` whose rootfs image (chosen by the caller) is
 * `rootfs`: see {@link attachedDebs}.
 */
export function debsAttachedTo(
  store: Store,
  desc: Descriptor,
  rootfs: Descriptor,
  what: string,
): Promise<AttachedDeb[]> {
  return filesAttachedTo(store, desc, rootfs, what, 'deb');
}

/**
 * The files of the Debian source packages that DEBUILD built the attached .debs from (each
 * .dsc and the files it lists), attached with them: as {@link debsAttachedTo} finds the .debs.
 */
export function debSourcesAttachedTo(
  store: Store,
  desc: Descriptor,
  rootfs: Descriptor,
  what: string,
): Promise<AttachedDeb[]> {
  return filesAttachedTo(store, desc, rootfs, what, 'source');
}

/** A file of a Debian source package: a name as Debian's archive makes them, never a path. */
const SOURCE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9.+~_-]*$/;

const KINDS = {
  deb: { mediaType: MediaTypes.debianPackage, name: DEB_NAME, what: 'a .deb', plural: 'packages' },
  source: {
    mediaType: MediaTypes.debianSourceFile,
    name: SOURCE_FILE_NAME,
    what: 'a file of a source package',
    plural: 'source files',
  },
} as const;

async function filesAttachedTo(
  store: Store,
  desc: Descriptor,
  rootfs: Descriptor,
  what: string,
  kind: keyof typeof KINDS,
): Promise<AttachedDeb[]> {
  const k = KINDS[kind];
  const subjects = isIndexMediaType(desc.mediaType) ? [desc, rootfs] : [desc];
  const byName = new Map<string, AttachedDeb>();
  for (const s of subjects) {
    for (const artifact of await store.referrers(s.digest, ArtifactTypes.debs)) {
      const where = `debs artifact ${artifact.digest} of ${what}`;
      const m = parseJson(
        await store.readBlob(artifact.digest, artifact.size),
        where,
      ) as ImageManifest | null;
      if (m === null || !Array.isArray(m.layers)) {
        throw new InvalidDocumentError(where, ['a manifest without layers']);
      }
      for (const l of m.layers) {
        if (l.mediaType !== k.mediaType) continue;
        const filename = l.annotations?.[Annotations.title];
        if (filename === undefined || !k.name.test(filename)) {
          throw new InvalidDocumentError(where, [
            `${k.what} titled ${JSON.stringify(filename ?? null)}, not a file name of ${k.what}`,
          ]);
        }
        const held = byName.get(filename);
        if (held && held.blob.digest !== l.digest) {
          throw new InvalidDocumentError(where, [
            `two different ${k.plural} are both named ${filename}`,
          ]);
        }
        if (!held) byName.set(filename, { filename, blob: l, artifact });
      }
    }
  }
  return [...byName.values()].sort((a, b) => (a.filename < b.filename ? -1 : 1));
}

export interface ExportedDebs extends RepoContents {
  /** The template's digest (the index or image `ref` names). */
  digest: string;
  /** The artifacts the debs came from. */
  artifacts: string[];
}

/**
 * Write the .debs attached to the template `ref` into `dir` as a flat apt repository (see
 * writeDebsRepo), which plain apt reads as `deb [trusted=yes] file:DIR ./`. Each file is copied
 * from its verified blob and renamed into place. The Release is dated by the template's build
 * date, so the same template gives the same files. A template with no debs attached is a
 * NotFoundError.
 */
export async function exportDebs(
  store: Store,
  ref: string,
  out: string,
  platform?: PlatformSelector,
): Promise<ExportedDebs> {
  const dir = path.resolve(out);
  const desc = await store.resolve(ref);
  const rootfs = await rootfsOf(store, desc, platform, ref);
  const debs = await debsAttachedTo(store, desc, rootfs.descriptor, ref);
  if (debs.length === 0) {
    throw new NotFoundError(`${ref} has no Debian packages attached`, {
      hint: 'a template gets them from the DEBUILD steps that built it',
    });
  }
  const created = (await rootfs.config()).created;
  const date = created !== undefined ? new Date(created) : new Date(0);
  await fsp.mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const d of debs) {
    const target = path.join(dir, d.filename);
    const tmp = tempPathFor(target);
    try {
      await pipeline(
        await store.openBlob(d.blob.digest, d.blob.size),
        (await fsp.open(tmp, 'wx', 0o644)).createWriteStream(),
      );
      await commitFile(tmp, target);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    files.push(target);
  }
  const repo = await writeDebsRepo(dir, files, {
    date: Number.isNaN(date.getTime()) ? new Date(0) : date,
  });
  return {
    ...repo,
    digest: desc.digest,
    artifacts: [...new Set(debs.map((d) => d.artifact.digest))],
  };
}
