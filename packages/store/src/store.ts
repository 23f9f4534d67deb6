import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Annotations,
  Descriptor,
  Digest,
  ImageIndex,
  InvalidArgumentError,
  MediaTypes,
  NotFoundError,
  ImageConfig,
  ImageManifest,
  InvalidDocumentError,
  ContentSource,
  Graph,
  Image,
  Index,
  PlatformSelector,
  Role,
  Selector,
  assertValid,
  configPlatform,
  graphDigests,
  imageOf,
  indexOf,
  isImageMediaType,
  isIndexMediaType,
  requireManifest,
  selectManifest,
  resolveManifest,
  walkGraph,
  encodeJson,
  parseJson,
  validateOciLayout,
} from '@strata/oci';
import { exists, writeFileAtomic } from './atomic';
import { StoreConfig, readStoreConfig } from './config';
import { knownDiffId, recordDiffId } from './diffids';
import { readStackView, writeStackView } from './stack-views';
import { fsck } from './fsck';
import { BlobGcResult, collectGarbage } from './gc';
import { withFileLock } from './lock';
import { StorePaths } from './paths';
import { storeContent } from './content';
import { EMPTY_CONFIG, referrersIn } from './referrers';
import { RootStore } from './roots';

/**
 * A content store laid out as an OCI image layout: `oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`. Strata's own scratch space lives under `.strata/`. Its parts: blobs
 * (blobs.ts), tags (refs.ts), GC roots and leases (roots.ts), gc (gc.ts), diffID records
 * (diffids.ts) and fsck (fsck.ts).
 */
/** A file of an artifact ({@link Store.attach}): a file to read in, or a blob the store holds. */
export type AttachedFile = { mediaType: string; title: string } & (
  { path: string } | { blob: { digest: Digest; size: number } }
);

export class Store extends RootStore {
  static async open(root: string): Promise<Store> {
    const dir = path.resolve(root);
    // mkdir under a file fails with ENOTDIR, which names neither the store nor the fix.
    const st = await fsp.stat(dir).catch(() => undefined);
    if (st !== undefined && !st.isDirectory())
      throw new InvalidArgumentError(`store ${dir} is a file, not a store directory`);
    const s = new Store(new StorePaths(dir));
    await s.init();
    return s;
  }

  /** GC roots besides tags: one JSON file per root holding `{ descriptors: Descriptor[] }`. */
  get rootsDir(): string {
    return this.paths.rootsDir;
  }
  /** The core's view of this store: Image, Index and Layer read from its blobs, verified. */
  get content(): ContentSource {
    return (this.source ??= storeContent(this));
  }
  private source: ContentSource | undefined;

  /** The image manifest `desc` names, as a lazy Image. */
  image(desc: Descriptor): Image {
    return imageOf(this.content, desc);
  }

  /**
   * The platform the config of the image `desc` names, for its entry in an index; undefined for
   * an index, whose entries carry their own.
   */
  async platformOf(desc: Descriptor): Promise<PlatformSelector | undefined> {
    if (!isImageMediaType(desc.mediaType)) return undefined;
    return configPlatform(await this.image(desc).config());
  }

  /** The image index `desc` names, as a lazy Index. */
  index(desc: Descriptor): Index {
    return indexOf(this.content, desc);
  }

  /**
   * The image `desc` stands for under `sel`: the image itself, or the one manifest of the index
   * it names that {@link selectManifest} picks (NotFoundError, or InvalidArgumentError when
   * two could be meant). `what` names it in messages.
   */
  async selectImage(desc: Descriptor, sel: Selector, what: string): Promise<Image> {
    const m = await resolveManifest(desc, sel, (d) => this.readImageIndex(d), what);
    return this.image(m);
  }

  /**
   * Read an image: its manifest (which must be an image manifest, not an index) and config,
   * checked against each other.
   */
  async readImage(
    desc: Descriptor,
    what: string,
  ): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    if (!isImageMediaType(desc.mediaType)) {
      throw new InvalidDocumentError(`image ${what}`, [`unsupported media type ${desc.mediaType}`]);
    }
    const img = this.image(desc);
    await img.layers(); // checks the layers against the config's diff_ids
    return { manifest: await img.manifest(), config: await img.config() };
  }

  /**
   * The image manifest of one role (`rootfs`, `buildchroot`) in a template index, or the
   * descriptor itself when it names an image and the role is rootfs; undefined when there is
   * no such image. The choice is selectManifest's (InvalidArgumentError when ambiguous), of the
   * images for `platform` when one is given.
   */
  async imageOfRole(
    desc: Descriptor,
    role: Role = 'rootfs',
    platform?: PlatformSelector,
  ): Promise<Descriptor | undefined> {
    if (!isIndexMediaType(desc.mediaType)) return role === 'rootfs' ? desc : undefined;
    const index = await this.readImageIndex(desc);
    const sel = platform ? { role, platform } : { role };
    const s = selectManifest(index, sel);
    if (s.ok) return s.descriptor;
    if (s.reason === 'ambiguous') requireManifest(index, sel, `index ${desc.digest}`);
    return undefined;
  }

  /** The store's settings file (optional). */
  get configPath(): string {
    return this.paths.configPath;
  }

  private async init(): Promise<void> {
    const layout = path.join(this.root, 'oci-layout');
    // A store that exists opens in one round of calls: its directories, its layout, its index.
    const [, layoutBytes, hasIndex] = await Promise.all([
      this.ownDir().then(() =>
        Promise.all(
          [this.paths.blobDir, this.paths.ingestDir, this.paths.leaseDir, this.paths.rootsDir].map(
            (d) => fsp.mkdir(d, { recursive: true }),
          ),
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
    }
    // A new store's two files do not depend on each other: they are written (and synced) at once.
    await Promise.all([
      layoutBytes
        ? undefined
        : writeFileAtomic(layout, encodeJson({ imageLayoutVersion: '1.0.0' })),
      hasIndex
        ? undefined
        : withFileLock(this.paths.lockPath, async () => {
            if (!(await exists(this.paths.indexPath)))
              await this.writeIndex({ schemaVersion: 2, manifests: [] });
          }),
    ]);
  }

  /**
   * `.strata` is the root's alone, as docker's /var/lib/docker: its snapshots are root trees
   * with their setuid programs and world-writable /tmp, which another local user must not reach.
   * A store made before it was so is closed up when opened.
   */
  private async ownDir(): Promise<void> {
    const dir = this.paths.ownDir;
    // Only `.strata` itself: a recursive mkdir would give the store's root that mode as well.
    await fsp.mkdir(this.root, { recursive: true });
    await fsp.mkdir(dir, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    const st = await fsp.stat(dir);
    if ((st.mode & 0o7777) === 0o700) return;
    await fsp.chmod(dir, 0o700).catch((e: NodeJS.ErrnoException) => {
      // Another user's store, opened to read: its owner's next open closes it up.
      if (e.code !== 'EPERM') throw e;
    });
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
    return graphDigests(await this.graph(desc), into);
  }

  /**
   * Run `fn` under a lease that holds image `desc` and everything it reaches: each of its blobs
   * is touched under the lease, so a concurrent gc keeps them although the tag that reached them
   * may go while `fn` reads them (a push or a save). Blobs the store does not hold (foreign
   * layers) are passed over.
   */
  async withImageLease<T>(desc: Descriptor, fn: () => Promise<T>): Promise<T> {
    return this.withLease(async () => {
      for (const d of (await this.reachable(desc)).keys()) await this.holdsBlob(d);
      return fn();
    });
  }

  /**
   * The graph under `desc` (see walkGraph), its manifests read from the store, verified, with
   * the artifacts attached to each (as index.json records them, read once; or as `index` does).
   */
  async graph(desc: Descriptor, index?: ImageIndex): Promise<Graph> {
    const held = index ?? (await this.readIndex());
    return walkGraph(desc, (d) => this.readBlob(d.digest, d.size), {
      referrers: async (d) => referrersIn(held, d.digest),
    });
  }

  /** A stored blob an operation is about to reference: there, of its size, and held. */
  private async heldBlob(b: {
    digest: Digest;
    size: number;
  }): Promise<{ digest: Digest; size: number }> {
    await this.blobFile(b.digest, b.size);
    if (!(await this.holdsBlob(b.digest)))
      throw new NotFoundError(`blob ${b.digest} is not in the store`);
    return { digest: b.digest, size: b.size };
  }

  /**
   * Attach an artifact to `subject` (a manifest or index in the store), OCI 1.1 style: each
   * file streams in as a blob (verified and written atomically, as putBlob does), titled
   * `title`; the config is the empty descriptor; the manifest carries `artifactType` and
   * `subject`. It is recorded in index.json, so gc keeps it while the subject is kept. The same
   * files, type and annotations give the same manifest (layers sorted by title) and one record.
   * A file the store already holds is given as its `blob`: it is checked to be there with its
   * size and held under the lease, not read again. With `replace`, the new artifact is the only
   * one of its type attached to `subject`: the records of the others are dropped (their blobs
   * go with the next gc), for an artifact that a later one supersedes.
   */
  async attach(
    subject: Descriptor,
    artifactType: string,
    files: ReadonlyArray<AttachedFile>,
    annotations?: Record<string, string>,
    opts: { replace?: boolean } = {},
  ): Promise<Descriptor> {
    if (!isImageMediaType(subject.mediaType) && !isIndexMediaType(subject.mediaType)) {
      throw new InvalidArgumentError(
        `cannot attach to ${subject.digest}: ${subject.mediaType} is not a manifest or index`,
      );
    }
    if (!(await this.hasBlob(subject.digest))) {
      throw new NotFoundError(`cannot attach to ${subject.digest}: it is not in the store`);
    }
    const sorted = [...files].sort((a, b) => (a.title < b.title ? -1 : a.title > b.title ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]?.title === sorted[i - 1]?.title) {
        throw new InvalidArgumentError(`two files of one artifact are titled ${sorted[i]?.title}`);
      }
    }
    // A lease keeps a gc from taking the new blobs before the record that keeps them is written.
    return this.withLease(async () => {
      const layers: Descriptor[] = [];
      for (const f of sorted) {
        const blob =
          'blob' in f ? await this.heldBlob(f.blob) : await this.putBlob(createReadStream(f.path));
        layers.push({
          mediaType: f.mediaType,
          digest: blob.digest,
          size: blob.size,
          annotations: { [Annotations.title]: f.title },
        });
      }
      await this.putBytes(Buffer.from('{}'), EMPTY_CONFIG);
      const manifest: ImageManifest = {
        schemaVersion: 2,
        mediaType: MediaTypes.imageManifest,
        artifactType,
        config: EMPTY_CONFIG,
        layers,
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        ...(annotations && Object.keys(annotations).length > 0 ? { annotations } : {}),
      };
      const bytes = encodeJson(manifest);
      const blob = await this.putBytes(bytes);
      const d: Descriptor = { mediaType: MediaTypes.imageManifest, ...blob };
      const record = await this.recordReferrer(d, bytes, opts.replace === true);
      // What referrers() lists for it: the record without the store's own annotation.
      return referrersIn(
        { schemaVersion: 2, manifests: [record] },
        subject.digest,
      )[0] as Descriptor;
    });
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

  /** A view of kind `kind` of the stack whose top layer is blob `top` (see stack-views.ts). */
  async readStackView(kind: string, top: Digest, key: string): Promise<Buffer | undefined> {
    return readStackView(this.paths, kind, top, key);
  }

  /** Keep a view of a stack, written atomically; gc drops it with blob `top`. */
  async writeStackView(kind: string, top: Digest, key: string, data: Buffer): Promise<void> {
    return writeStackView(this.paths, kind, top, key, data);
  }

  /** Re-hash every blob and check that every referenced blob exists. */
  async fsck(): Promise<{ blobs: number; problems: string[] }> {
    return fsck(this);
  }
}
