import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Annotations,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  InvalidDocumentError,
  MediaTypes,
  assertValid,
  encodeJson,
  parseJson,
  validateOciLayout,
} from '@strata/oci';
import { exists, writeFileAtomic } from './atomic';
import { StoreConfig, readStoreConfig } from './config';
import { knownDiffId, recordDiffId } from './diffids';
import { fsck } from './fsck';
import { BlobGcResult, collectGarbage } from './gc';
import { withFileLock } from './lock';
import { StorePaths } from './paths';
import { RootStore } from './roots';

/**
 * A content store laid out as an OCI image layout: `oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`. Strata's own scratch space lives under `.strata/`. Its parts: blobs
 * (blobs.ts), tags (refs.ts), GC roots and leases (roots.ts), gc (gc.ts), diffID records
 * (diffids.ts) and fsck (fsck.ts).
 */
export class Store extends RootStore {
  static async open(root: string): Promise<Store> {
    const s = new Store(new StorePaths(path.resolve(root)));
    await s.init();
    return s;
  }

  /** GC roots besides tags: one JSON file per root holding `{ descriptors: Descriptor[] }`. */
  get rootsDir(): string {
    return this.paths.rootsDir;
  }
  /** The store's settings file (optional). */
  get configPath(): string {
    return this.paths.configPath;
  }

  private async init(): Promise<void> {
    const layout = path.join(this.root, 'oci-layout');
    // A store that exists opens in one round of calls: its directories, its layout, its index.
    const [, layoutBytes, hasIndex] = await Promise.all([
      Promise.all(
        [this.paths.blobDir, this.paths.ingestDir, this.paths.leaseDir, this.paths.rootsDir].map(
          (d) => fsp.mkdir(d, { recursive: true }),
        ),
      ),
      fsp.readFile(layout).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      }),
      exists(this.paths.indexPath),
    ]);
    if (layoutBytes) {
      assertValid(validateOciLayout, parseJson(layoutBytes, 'oci-layout'), 'oci-layout');
    } else {
      await writeFileAtomic(layout, encodeJson({ imageLayoutVersion: '1.0.0' }));
    }
    if (!hasIndex) {
      await withFileLock(this.paths.lockPath, async () => {
        if (!(await exists(this.paths.indexPath)))
          await this.writeIndex({ schemaVersion: 2, manifests: [] });
      });
    }
  }

  async readImage(
    desc: Descriptor,
    what: string,
  ): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    if (
      desc.mediaType !== MediaTypes.imageManifest &&
      desc.mediaType !== MediaTypes.dockerManifest
    ) {
      throw new InvalidDocumentError(`image ${what}`, [`unsupported media type ${desc.mediaType}`]);
    }
    const manifest = await this.readManifest(desc);
    const config = await this.readConfig(manifest.config);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new InvalidDocumentError(`image ${what}`, [
        `${manifest.layers.length} layers but ${diffIds.length} diff_ids`,
      ]);
    }
    return { manifest, config };
  }

  /**
   * The image manifest of one role (`rootfs`, `buildchroot`) in a template index, or the
   * descriptor itself when it already names an image. Undefined when the index has no such role.
   */
  async imageOfRole(desc: Descriptor, role = 'rootfs'): Promise<Descriptor | undefined> {
    if (desc.mediaType !== MediaTypes.imageIndex) return role === 'rootfs' ? desc : undefined;
    const idx = await this.readImageIndex(desc);
    const hit = idx.manifests.find((d) => d.annotations?.[Annotations.role] === role);
    if (hit || role !== 'rootfs') return hit;
    return idx.manifests.find((d) => d.mediaType === MediaTypes.imageManifest);
  }

  /** The store's settings: `.strata/config.json` (InvalidDocumentError when malformed). */
  async config(): Promise<StoreConfig> {
    return readStoreConfig(this.paths.configPath);
  }

  /** Every blob reachable from a descriptor (manifests, indexes, configs, layers). */
  async reachable(
    desc: Descriptor,
    into = new Map<Digest, Descriptor>(),
  ): Promise<Map<Digest, Descriptor>> {
    if (into.has(desc.digest)) return into;
    into.set(desc.digest, desc);
    if (
      desc.mediaType === MediaTypes.imageIndex ||
      desc.mediaType === MediaTypes.dockerManifestList
    ) {
      const idx = await this.readImageIndex(desc);
      for (const m of idx.manifests) await this.reachable(m, into);
    } else if (
      desc.mediaType === MediaTypes.imageManifest ||
      desc.mediaType === MediaTypes.dockerManifest
    ) {
      const m = await this.readManifest(desc);
      into.set(m.config.digest, m.config);
      for (const l of m.layers) into.set(l.digest, l);
    }
    return into;
  }

  /**
   * Drop blobs that no tag or GC root reaches, stale ingest files, and partial downloads that no
   * running pull is using. See collectGarbage.
   */
  async gc(opts: { dryRun?: boolean; dropRoots?: readonly string[] } = {}): Promise<BlobGcResult> {
    return collectGarbage(this, opts);
  }

  /**
   * The diffID (sha256 of the uncompressed tar) that layer blob `digest` is known to have:
   * recorded when strata made the blob, or after an unpack that hashed both. An unpack of a blob
   * whose digest it checks can then skip hashing the uncompressed stream again.
   */
  async knownDiffId(digest: Digest): Promise<Digest | undefined> {
    return knownDiffId(this.paths, digest);
  }

  /** Record that layer blob `digest` decompresses to a tar with `diffId` (see knownDiffId). */
  async recordDiffId(digest: Digest, diffId: Digest): Promise<void> {
    return recordDiffId(this.paths, digest, diffId);
  }

  /** Re-hash every blob and check that every referenced blob exists. */
  async fsck(): Promise<{ blobs: number; problems: string[] }> {
    return fsck(this);
  }
}
