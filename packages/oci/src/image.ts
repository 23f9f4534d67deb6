import type { Readable } from 'node:stream';
import { Digest, Hasher } from './digest';
import { InvalidDocumentError } from './errors';
import type { Compression, MediaType } from './media-types';
import { compressionOf, isImageMediaType, isIndexMediaType } from './media-types';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from './types';
import {
  assertValid,
  parseJson,
  validateConfig,
  validateIndex,
  validateManifest,
} from './validate';
import { VerifyingStream } from './verify';

/**
 * One layer of an image. Nothing is read until asked for. Both streams are verified as they are
 * read: they error at EOF (DigestMismatchError, SizeMismatchError) unless the content is what the
 * manifest and config say. Every call to `open` or `openTar` opens a stream of its own, so two
 * consumers of one layer never share one.
 */
export interface Layer {
  readonly mediaType: MediaType;
  /** The descriptor of the compressed blob, as the manifest lists it. */
  readonly descriptor: Descriptor;
  /** Digest of the compressed blob. */
  digest(): Promise<Digest>;
  /** Digest of the uncompressed tar. */
  diffId(): Promise<Digest>;
  /** Bytes of the compressed blob. */
  size(): Promise<number>;
  /** The compressed blob, digest and size verified at EOF. */
  open(): Promise<Readable>;
  /**
   * The uncompressed tar: the blob digest and size, and the diffID (when the config gives one,
   * or once `diffId()` has computed it), are verified before EOF. The diffID is not hashed again
   * when the backend's `knownDiffId` already vouches for it: the blob's digest, still verified,
   * then pins the tar.
   */
  openTar(): Promise<Readable>;
  /**
   * The blob as a file on this machine, when the backend keeps it in one (the store), so that
   * a reader that verifies the digest itself can read it directly (the unpacker's decompressor
   * worker). Undefined for a backend whose blobs are streams (a registry, an archive).
   */
  file?(): Promise<LayerFile>;
}

/** A layer blob held in a local file (see {@link Layer.file}). */
export interface LayerFile {
  /** The file holding the compressed blob. It is not verified: its reader checks the digest. */
  readonly path: string;
  /**
   * The diffID the backend verified for this blob before, if any. A reader that checks the
   * blob's digest and expects this diffID need not hash the tar again.
   */
  readonly knownDiffId?: Digest;
  /** Remember a diffID the reader verified together with the blob's digest. */
  recordDiffId(diffId: Digest): Promise<void>;
}

/** One image: a manifest, its config, its layers (base first). */
export interface Image {
  readonly descriptor: Descriptor;
  digest(): Promise<Digest>;
  /** The manifest's exact bytes (what its digest covers). */
  rawManifest(): Promise<Buffer>;
  manifest(): Promise<ImageManifest>;
  config(): Promise<ImageConfig>;
  layers(): Promise<Layer[]>;
}

/** An image index: its manifest list, and the images and indexes it names. */
export interface Index {
  readonly descriptor: Descriptor;
  digest(): Promise<Digest>;
  rawManifest(): Promise<Buffer>;
  indexManifest(): Promise<ImageIndex>;
  image(d: Descriptor): Promise<Image>;
  index(d: Descriptor): Promise<Index>;
}

/**
 * What a backend (the store, an archive, a registry) provides; {@link imageOf}, {@link indexOf}
 * and {@link layerOf} build the rest on it.
 */
export interface ContentSource {
  /** A small blob (a manifest, index or config) whole, digest and size verified. */
  readBlob(d: Descriptor): Promise<Buffer>;
  /** A blob as a stream, digest and size verified at EOF. */
  openBlob(d: Descriptor): Promise<Readable>;
  /**
   * Bytes `start`..`end` (inclusive; default to the end) of a blob, not verified: for a writer
   * that resumes or sends in chunks and verifies the whole itself, so that no byte is hashed
   * twice on the way.
   */
  openRange?(d: Descriptor, start: number, end?: number): Promise<Readable>;
  /**
   * The decompressed bytes of a layer blob. The stream must not end before the blob's own
   * digest and size have been verified; the diffID is checked by the caller.
   */
  openDecompressed(d: Descriptor, compression: Compression): Promise<Readable>;
  /** A diffID already verified for this blob, when the backend remembers one. */
  knownDiffId?(d: Descriptor): Promise<Digest | undefined>;
  /** Remember that blob `d` decompresses to a tar with `diffId` (see knownDiffId). */
  recordDiffId?(d: Descriptor, diffId: Digest): Promise<void>;
  /** The local file holding blob `d`, unverified, for a backend that keeps blobs in files. */
  blobFile?(d: Descriptor): Promise<string>;
  /**
   * The referrers of manifest or index `subject` (OCI 1.1): descriptors of the manifests that
   * name it as their `subject`, with their artifactType and annotations, as the distribution
   * spec's referrers index lists them. A backend without this has none.
   */
  referrers?(subject: Descriptor): Promise<Descriptor[]>;
}

/** Drain a stream, so that its verification runs; returns nothing. */
export async function drain(s: Readable): Promise<void> {
  for await (const _ of s) void _;
}

/**
 * A layer of `src`. With `diffId` (from the image config) the tar is verified against it; without,
 * it is computed by hashing the tar once, on first ask, and kept.
 */
export function layerOf(src: ContentSource, d: Descriptor, diffId?: Digest): Layer {
  let computed: Promise<Digest> | undefined;
  const compression = (): Compression => {
    const c = compressionOf(d.mediaType);
    if (c === undefined) {
      throw new InvalidDocumentError(`layer ${d.digest}`, [
        `unsupported media type ${d.mediaType}`,
      ]);
    }
    return c;
  };
  const openTar = async (expected?: Digest): Promise<Readable> => {
    const known = expected === undefined ? undefined : await src.knownDiffId?.(d);
    const tar = await src.openDecompressed(d, compression());
    // The backend verified before that this blob decompresses to the expected tar, and the
    // stream still ends only once the blob's own digest matched: the same bytes, the same tar,
    // so hashing it again would prove nothing new.
    if (known !== undefined && known === expected) return tar;
    const verify = new VerifyingStream(
      expected === undefined ? {} : { digest: expected },
      `layer ${d.digest} (diffID)`,
    );
    tar.on('error', (e) => verify.destroy(e));
    verify.on('close', () => {
      if (!verify.writableFinished) tar.destroy();
    });
    return tar.pipe(verify);
  };
  const hashTar = async (): Promise<Digest> => {
    const known = await src.knownDiffId?.(d);
    if (known !== undefined) return known;
    const h = new Hasher();
    for await (const c of await openTar()) h.update(c as Buffer);
    return h.digest();
  };
  return {
    mediaType: d.mediaType,
    descriptor: d,
    digest: async () => d.digest,
    size: async () => d.size,
    diffId: () => {
      if (diffId !== undefined) return Promise.resolve(diffId);
      computed ??= hashTar();
      return computed;
    },
    open: () => src.openBlob(d),
    openTar: async () => openTar(diffId ?? (await (computed ?? Promise.resolve(undefined)))),
    ...(src.blobFile ? { file: () => fileOf(src, d) } : {}),
  };
}

async function fileOf(src: ContentSource, d: Descriptor): Promise<LayerFile> {
  const [path, knownDiffId] = await Promise.all([
    (src.blobFile as (d: Descriptor) => Promise<string>)(d),
    src.knownDiffId?.(d),
  ]);
  return {
    path,
    ...(knownDiffId === undefined ? {} : { knownDiffId }),
    recordDiffId: async (diffId) => src.recordDiffId?.(d, diffId),
  };
}

/** The image manifest `d` of `src`. Manifest and config are read once, on first ask, and kept. */
export function imageOf(src: ContentSource, d: Descriptor): Image {
  if (!isImageMediaType(d.mediaType)) {
    throw new InvalidDocumentError(`image ${d.digest}`, [`unsupported media type ${d.mediaType}`]);
  }
  let raw: Promise<Buffer> | undefined;
  let manifest: Promise<ImageManifest> | undefined;
  let config: Promise<ImageConfig> | undefined;
  const what = `manifest ${d.digest}`;
  const rawManifest = () => (raw ??= src.readBlob(d));
  const readManifest = () =>
    (manifest ??= rawManifest().then((b) =>
      assertValid(validateManifest, parseJson(b, what), what),
    ));
  const readConfig = () =>
    (config ??= readManifest().then(async (m) => {
      const w = `image config ${m.config.digest}`;
      return assertValid(validateConfig, parseJson(await src.readBlob(m.config), w), w);
    }));
  return {
    descriptor: d,
    digest: async () => d.digest,
    rawManifest,
    manifest: readManifest,
    config: readConfig,
    layers: async () => {
      const [m, c] = await Promise.all([readManifest(), readConfig()]);
      const diffIds = c.rootfs.diff_ids;
      if (diffIds.length !== m.layers.length) {
        throw new InvalidDocumentError(`image ${d.digest}`, [
          `${m.layers.length} layers but ${diffIds.length} diff_ids`,
        ]);
      }
      return m.layers.map((l, i) => layerOf(src, l, diffIds[i]));
    },
  };
}

/** The image index `d` of `src`, read once, on first ask. */
export function indexOf(src: ContentSource, d: Descriptor): Index {
  if (!isIndexMediaType(d.mediaType)) {
    throw new InvalidDocumentError(`index ${d.digest}`, [`unsupported media type ${d.mediaType}`]);
  }
  let raw: Promise<Buffer> | undefined;
  let index: Promise<ImageIndex> | undefined;
  const what = `index ${d.digest}`;
  const rawManifest = () => (raw ??= src.readBlob(d));
  return {
    descriptor: d,
    digest: async () => d.digest,
    rawManifest,
    indexManifest: () =>
      (index ??= rawManifest().then((b) => assertValid(validateIndex, parseJson(b, what), what))),
    image: async (c) => imageOf(src, c),
    index: async (c) => indexOf(src, c),
  };
}
