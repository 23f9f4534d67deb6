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
  validateIndex,
  withDefaultTag,
} from '@strata/oci';
import { writeFileAtomic } from './atomic';
import { BlobStore } from './blobs';
import { withFileLock } from './lock';

/** Normalise a local tag to the ref name stored in index.json (`name:tag`). */
export function normalizeTag(ref: string): string {
  const r = withDefaultTag(parseReference(ref));
  if (r.digest !== undefined) {
    throw new InvalidArgumentError(`a tag cannot carry a digest: ${ref}`);
  }
  return formatReference(r);
}

/** A store's tags: `index.json`, read and changed under the store's lock. */
export class RefStore extends BlobStore {
  async readIndex(): Promise<ImageIndex> {
    const doc = parseJson(await fsp.readFile(this.paths.indexPath), 'index.json');
    return assertValid(validateIndex, doc, `${this.paths.indexPath}`);
  }

  protected async writeIndex(index: ImageIndex): Promise<void> {
    await writeFileAtomic(this.paths.indexPath, encodeJson(index));
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

  /** Tagged images, in index order. */
  async list(): Promise<Array<{ ref: string; descriptor: Descriptor }>> {
    const index = await this.readIndex();
    return index.manifests.map((d) => ({
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

  /** Remove a tag. Blobs stay until `gc`. */
  async untag(ref: string): Promise<Descriptor> {
    const name = ref.startsWith('sha256:') ? ref : normalizeTag(ref);
    return this.updateIndex((index) => {
      const hit = index.manifests.find(
        (d) => d.annotations?.[Annotations.refName] === name || d.digest === name,
      );
      if (!hit) throw new NotFoundError(`no image ${ref} in the store`);
      index.manifests = index.manifests.filter((d) => d !== hit);
      return hit;
    });
  }

  /** Resolve a local tag, `name@sha256:…` or a bare digest to its descriptor. */
  async resolve(ref: string): Promise<Descriptor> {
    const index = await this.readIndex();
    if (isDigest(ref)) {
      const hit = index.manifests.find((d) => d.digest === ref);
      if (hit) return hit;
      return this.describeBlob(parseDigest(ref));
    }
    const r = parseReference(ref);
    if (r.digest !== undefined) {
      const hit = index.manifests.find((d) => d.digest === r.digest);
      return hit ?? this.describeBlob(r.digest);
    }
    const name = normalizeTag(ref);
    const hit = index.manifests.find((d) => d.annotations?.[Annotations.refName] === name);
    if (!hit) {
      throw new NotFoundError(`no image ${name} in the store ${this.root}`, {
        hint: 'see `strata ls` for what the store holds',
      });
    }
    return hit;
  }

  private async describeBlob(digest: Digest): Promise<Descriptor> {
    const data = await this.readBlob(digest);
    const doc = parseJson(data, digest) as { mediaType?: string; manifests?: unknown };
    const mediaType =
      doc.mediaType ?? (doc.manifests ? MediaTypes.imageIndex : MediaTypes.imageManifest);
    return { mediaType, digest, size: data.length };
  }
}
