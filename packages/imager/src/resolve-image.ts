import { Readable } from 'node:stream';
import {
  Compression,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  InvalidDocumentError,
  Layer,
  PlatformSelector,
  Role,
  compressionOf,
} from '@strata/oci';
import { Store } from '@strata/store';

/** One layer of a resolved image, with its place in the stack; read through the core's Layer. */
export interface ImageLayer {
  /** Position in the stack, 0 = base. */
  readonly index: number;
  readonly descriptor: Descriptor;
  readonly diffId: Digest;
  readonly compression: Compression;
  /** The core's layer this one reads through. */
  readonly layer: Layer;
  /**
   * The uncompressed tar, a stream of its own on every call. It errors (DigestMismatchError) at
   * EOF unless it hashes to the diffID; the compressed blob's digest and size are checked too,
   * before the stream ends.
   */
  openTar(): Promise<Readable>;
}

export interface ResolvedImage {
  ref: string;
  /** The manifest descriptor (inside the bundle, when `ref` names a bundle). */
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  layers: ImageLayer[];
  role?: Role;
}

/**
 * Resolve `ref` to one image: a plain manifest as the rootfs, or the manifest of a bundle index
 * that the one selection rule (selectManifest in @strata/oci) picks for `role` (and `platform`,
 * of a multi-platform template).
 */
export async function resolveImage(
  store: Store,
  ref: string,
  role: Role = 'rootfs',
  platform?: PlatformSelector,
): Promise<ResolvedImage> {
  const top = await store.resolve(ref);
  const image = await store.selectImage(top, platform ? { role, platform } : { role }, ref);
  const { manifest, config } = await store.readImage(image.descriptor, ref);
  const diffIds = config.rootfs.diff_ids;
  const core = await image.layers();
  const layers = manifest.layers.map((d, i): ImageLayer => {
    const compression = compressionOf(d.mediaType);
    if (compression === undefined) {
      throw new InvalidDocumentError(`image ${ref}`, [
        `layer ${i} has unsupported media type ${d.mediaType}`,
      ]);
    }
    const layer = core[i] as Layer;
    return {
      index: i,
      descriptor: d,
      diffId: diffIds[i] as Digest,
      compression,
      layer,
      openTar: () => layer.openTar(),
    };
  });
  const isBundle = image.descriptor.digest !== top.digest;
  return {
    ref,
    descriptor: image.descriptor,
    manifest,
    config,
    layers,
    ...(isBundle ? { role } : {}),
  };
}
