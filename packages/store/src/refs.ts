import { promises as fsp } from 'node:fs';
import {
  Annotations,
  Descriptor,
  Digest,
  ImageIndex,
  InvalidArgumentError,
  MediaTypes,
  NotFoundError,
  assertValid,
  encodeJson,
  formatReference,
  isDigest,
  parseDigest,
  parseJson,
  parseReference,
  StrataError,
  validateIndex,
  withDefaultTag,
} from '@strata/oci';
import { exists, writeFileAtomic } from './atomic';
import { BlobStore } from './blobs';
import { withFileLock } from './lock';
import {
  SUBJECT_ANNOTATION,
  isReferrerRecord,
  referrerRecord,
  referrersIn,
  withRecord,
} from './referrers';

/** Normalise a local tag to the ref name stored in index.json (`name:tag`). */
export function normalizeTag(ref: string): string {
  const r = withDefaultTag(parseReference(ref));
  if (r.digest !== undefined) {
    throw new InvalidArgumentError(`a tag cannot carry a digest: ${ref}`);
  }
  return formatReference(r);
}

/** What a local ref names in index.json: a ref name, or a digest (`named` for `name@sha256:…`). */
type LocalRef = { kind: 'name'; name: string } | { kind: 'digest'; digest: Digest; named: boolean };

/**
 * How a local ref reads against `index`; the one place that decides it. A ref that is exactly
 * the ref name of an entry names that entry: a layout written by another tool (`skopeo copy …
 * oci:DIR:x`, umoci) may name an image `x`, without a tag. Otherwise a digest is a digest, and a
 * tag is normalised as `tag` stores it (`x` is `x:latest`).
 */
function readLocalRef(index: ImageIndex, ref: string): LocalRef {
  if (index.manifests.some((d) => d.annotations?.[Annotations.refName] === ref))
    return { kind: 'name', name: ref };
  if (isDigest(ref)) return { kind: 'digest', digest: parseDigest(ref), named: false };
  const r = parseReference(ref);
  if (r.digest !== undefined) return { kind: 'digest', digest: r.digest, named: true };
  return { kind: 'name', name: normalizeTag(ref) };
}

/** The entry of `index` that `local` names, if any (for a digest, the first that has it). */
function findEntry(index: ImageIndex, local: LocalRef): Descriptor | undefined {
  return local.kind === 'name'
    ? index.manifests.find((d) => d.annotations?.[Annotations.refName] === local.name)
    : index.manifests.find((d) => d.digest === local.digest);
}

/**
 * The tagged image whose digest starts with `ref`, when `ref` is bare hex and names no tag: the
 * DIGEST column of `strata ls`, or a whole digest without its `sha256:`, as docker takes an
 * image ID. Several images under one prefix is an error that lists them.
 */
function byDigestPrefix(index: ImageIndex, ref: string): Descriptor | undefined {
  if (!/^[0-9a-f]{6,64}$/.test(ref)) return undefined;
  const hits = index.manifests.filter(
    (d) =>
      d.annotations?.[Annotations.refName] !== undefined && d.digest.startsWith(`sha256:${ref}`),
  );
  const digests = [...new Set(hits.map((d) => d.digest))];
  if (digests.length > 1)
    throw new InvalidArgumentError(
      `${ref} is the start of ${digests.length} images' digests: ${digests.map((d) => d.slice(7, 19)).join(', ')}`,
      { hint: 'give more of the digest' },
    );
  return hits[0];
}

/**
 * An error met reading what tag `ref` uses (its manifest or config damaged or missing), as one
 * that names the tag and the way out: one broken image is not to stop the whole store.
 */
export function brokenTagError(ref: string, e: unknown, lead = ref): unknown {
  if (!(e instanceof StrataError)) return e;
  return new StrataError(e.code, `${lead}: ${e.message}`, {
    cause: e,
    hint: `\`strata fsck\` lists what is damaged; \`strata rm ${ref}\` drops the tag, or pull or create it again`,
  });
}

/** A store's tags: `index.json`, read and changed under the store's lock. */
export class RefStore extends BlobStore {
  async readIndex(): Promise<ImageIndex> {
    const doc = parseJson(await fsp.readFile(this.paths.indexPath), this.paths.indexPath);
    return assertValid(validateIndex, doc, `${this.paths.indexPath}`);
  }

  protected async writeIndex(index: ImageIndex): Promise<void> {
    await writeFileAtomic(this.paths.indexPath, encodeJson(index));
  }

  /** Replace index.json, for a caller that holds the store's lock already (gc). */
  async writeIndexHeld(index: ImageIndex): Promise<void> {
    await this.writeIndex(index);
  }

  /** Read-modify-write index.json under the store's lock. */
  async updateIndex<T>(fn: (index: ImageIndex) => T | Promise<T>): Promise<T> {
    return withFileLock(
      this.paths.lockPath,
      async () => {
        const index = await this.readIndex();
        const out = await fn(index);
        await this.writeIndex(index);
        return out;
      },
      { what: `store ${this.root}` },
    );
  }

  /** Tagged images, in index order (not the records of attached artifacts). */
  async list(): Promise<Array<{ ref: string; descriptor: Descriptor }>> {
    const index = await this.readIndex();
    return index.manifests
      .filter((d) => !isReferrerRecord(d))
      .map((d) => ({
        ref: d.annotations?.[Annotations.refName] ?? d.digest,
        descriptor: d,
      }));
  }

  /**
   * Point a tag at a manifest or index that is already in the store. Returns what the tag named
   * before, if anything (the same digest when it did not move), so callers can say it moved.
   */
  async tag(ref: string, desc: Descriptor): Promise<Descriptor | undefined> {
    const name = normalizeTag(ref);
    if (!(await this.hasBlob(desc.digest))) {
      throw new NotFoundError(`cannot tag ${name}: ${desc.digest} is not in the store`);
    }
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      annotations: { ...(desc.annotations ?? {}), [Annotations.refName]: name },
    };
    if (desc.platform) entry.platform = desc.platform;
    // A tag that names this very entry already is left as it is: no lock, no write.
    const same = (await this.readIndex()).manifests.find(
      (d) => d.annotations?.[Annotations.refName] === name,
    );
    if (same && encodeJson(same).equals(encodeJson(entry))) return same;
    return this.updateIndex((index) => {
      const before = index.manifests.find((d) => d.annotations?.[Annotations.refName] === name);
      index.manifests = index.manifests.filter(
        (d) => d.annotations?.[Annotations.refName] !== name,
      );
      index.manifests.push(entry);
      return before;
    });
  }

  /**
   * Record the artifact manifest `d` (whose bytes, already in the store, are `bytes`) as a
   * referrer of its subject, so that {@link referrers} finds it and gc keeps it while the
   * subject is kept. Recording it again changes nothing. With `replace`, the records of other
   * artifacts of its type attached to the same subject are dropped.
   */
  async recordReferrer(d: Descriptor, bytes: Buffer, replace = false): Promise<Descriptor> {
    const record = referrerRecord(d, bytes);
    const subject = record.annotations?.[SUBJECT_ANNOTATION];
    const replaced = (x: Descriptor) =>
      replace &&
      isReferrerRecord(x) &&
      x.digest !== d.digest &&
      x.artifactType === record.artifactType &&
      x.annotations?.[SUBJECT_ANNOTATION] === subject;
    const manifests = (await this.readIndex()).manifests;
    const held = manifests.find((x) => isReferrerRecord(x) && x.digest === d.digest);
    if (held && encodeJson(held).equals(encodeJson(record)) && !manifests.some(replaced))
      return record;
    await this.updateIndex((index) => {
      index.manifests = index.manifests.filter((x) => !replaced(x));
      withRecord(index, record);
    });
    return record;
  }

  /**
   * The referrers of manifest or index `subject` the store holds (OCI 1.1), of `artifactType`
   * only when given: descriptors with artifactType and annotations, as a registry's referrers
   * index lists them.
   */
  async referrers(subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    return referrersIn(await this.readIndex(), subject, artifactType);
  }

  /** Remove a tag. Blobs stay until `gc`. */
  async untag(ref: string): Promise<Descriptor> {
    return ((await this.untagAll([ref]))[0] as { descriptor: Descriptor }).descriptor;
  }

  /**
   * Remove tags (or untagged entries, by digest), all or none: every ref is looked up first,
   * under the store's lock, and when any names nothing, NotFoundError names each such one and
   * nothing is removed. Two refs for one entry remove it once. Returns what was removed, in the
   * order of `refs`, each with the name it had (its digest when untagged). Blobs stay until `gc`.
   */
  async untagAll(refs: readonly string[]): Promise<Array<{ ref: string; descriptor: Descriptor }>> {
    return this.updateIndex((index) => {
      const hits = new Map<Descriptor, string>();
      const missing: string[] = [];
      for (const ref of refs) {
        const local = readLocalRef(index, ref);
        if (local.kind === 'digest' && local.named) {
          throw new InvalidArgumentError(`a tag cannot carry a digest: ${ref}`);
        }
        const hit = findEntry(index, local);
        if (!hit) missing.push(ref);
        else if (!hits.has(hit))
          hits.set(hit, hit.annotations?.[Annotations.refName] ?? hit.digest);
      }
      if (missing.length > 0) {
        throw new NotFoundError(
          `no ${missing.length === 1 ? 'image' : 'images'} ${missing.join(', ')} in the store ${this.root}; nothing was removed`,
          { hint: 'see `strata ls` for what the store holds' },
        );
      }
      index.manifests = index.manifests.filter((d) => !hits.has(d));
      return [...hits].map(([descriptor, ref]) => ({ ref, descriptor }));
    });
  }

  /** Resolve a local tag, `name@sha256:…` or a bare digest to its descriptor. */
  async resolve(ref: string): Promise<Descriptor> {
    const index = await this.readIndex();
    // A path is not a tag, and pulling it would ask a registry named "." for it.
    const notAFile = async () => {
      if (
        ref.endsWith('.tmpl.img') ||
        (ref.includes('/') && (await exists(ref).catch(() => false)))
      )
        throw new NotFoundError(`no image ${ref} in the store ${this.root}: ${ref} is a file`, {
          hint: `load it into the store first: strata load ${ref} -t NAME`,
        });
    };
    let local;
    try {
      local = readLocalRef(index, ref);
    } catch (e) {
      await notAFile();
      throw e;
    }
    const hit = findEntry(index, local);
    if (hit) return hit;
    if (local.kind === 'digest') return this.describeBlob(local.digest);
    const byId = byDigestPrefix(index, ref);
    if (byId) return byId;
    await notAFile();
    // A registry reference names a local tag only once it was pulled under that name.
    const remote = parseReference(ref).registry !== undefined;
    throw new NotFoundError(`no image ${local.name} in the store ${this.root}`, {
      hint: remote
        ? `pull it first: strata pull ${ref}`
        : 'see `strata ls` for what the store holds',
    });
  }

  private async describeBlob(digest: Digest): Promise<Descriptor> {
    const data = await this.readBlob(digest);
    const doc = parseJson(data, digest) as { mediaType?: string; manifests?: unknown };
    const mediaType =
      doc.mediaType ?? (doc.manifests ? MediaTypes.imageIndex : MediaTypes.imageManifest);
    return { mediaType, digest, size: data.length };
  }
}
