import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import {
  Annotations,
  Compression,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  InvalidDocumentError,
  MediaTypes,
  NotFoundError,
  compressionOf,
} from '@strata/oci';
import { gunzipFile, zstdDecompressFile } from '@strata/tools';
import { Store, VerifyingStream } from '@strata/store';

/** Annotation on a manifest inside a Strata bundle index: which image of the bundle it is. */
export const ROLE_ANNOTATION = Annotations.role;

/** The images a bundle (an OCI index) can hold. */
export type Role = 'rootfs' | 'buildchroot';
export const ROLES: readonly Role[] = ['rootfs', 'buildchroot'];

/** One layer of a resolved image, opened lazily. */
export interface ImageLayer {
  /** Position in the stack, 0 = base. */
  readonly index: number;
  readonly descriptor: Descriptor;
  readonly diffId: Digest;
  readonly compression: Compression;
  /**
   * The uncompressed tar. The stream errors (DigestMismatchError) at EOF unless it hashes to the
   * diffID, so reading to the end verifies the content. The compressed blob's digest and size
   * are checked too, in parallel, before the stream ends.
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

function isIndex(mediaType: string): boolean {
  return mediaType === MediaTypes.imageIndex || mediaType === MediaTypes.dockerManifestList;
}

/**
 * Resolve `ref` to one image. A plain manifest is used as is (the role is ignored when it is
 * 'rootfs'); a bundle index yields the manifest annotated with `io.strata.role: <role>`.
 */
export async function resolveImage(
  store: Store,
  ref: string,
  role: Role = 'rootfs',
): Promise<ResolvedImage> {
  let descriptor = await store.resolve(ref);
  let found: Role | undefined;
  if (isIndex(descriptor.mediaType)) {
    const index = await store.readImageIndex(descriptor);
    const hit =
      index.manifests.find((m) => m.annotations?.[ROLE_ANNOTATION] === role) ??
      (role === 'rootfs' && index.manifests.length === 1 ? index.manifests[0] : undefined);
    if (hit === undefined) {
      const have = index.manifests.map((m) => m.annotations?.[ROLE_ANNOTATION] ?? '(no role)');
      throw new NotFoundError(`${ref} holds no ${role} image (it has: ${have.join(', ')})`, {
        hint:
          role === 'buildchroot'
            ? 'make a bundle with `strata bundle <tag> --rootfs … --buildchroot …`'
            : undefined,
      });
    }
    descriptor = hit;
    found = role;
  } else if (role !== 'rootfs') {
    throw new NotFoundError(`${ref} is a single image, not a bundle with a ${role} image`);
  }
  const { manifest, config } = await store.readImage(descriptor, ref);
  const diffIds = config.rootfs.diff_ids;
  const layers = manifest.layers.map((d, i): ImageLayer => {
    const compression = compressionOf(d.mediaType);
    if (compression === undefined) {
      throw new InvalidDocumentError(`image ${ref}`, [
        `layer ${i} has unsupported media type ${d.mediaType}`,
      ]);
    }
    const diffId = diffIds[i] as Digest;
    return {
      index: i,
      descriptor: d,
      diffId,
      compression,
      openTar: () => openLayerTar(store, d, compression, diffId),
    };
  });
  return { ref, descriptor, manifest, config, layers, role: found };
}

/** Hash a stored blob, checking digest and size. */
async function verifyBlob(store: Store, d: Descriptor): Promise<void> {
  const s = await store.openBlob(d.digest, d.size);
  for await (const _ of s) void _;
}

/**
 * Blob file → decompressor → diffID check. zstd, and igzip when installed, read the blob file
 * themselves (the compressed bytes never pass through Node); otherwise gzip and plain tar are
 * read here. Errors from any stage end up on the returned stream.
 */
async function openLayerTar(
  store: Store,
  d: Descriptor,
  compression: Compression,
  diffId: Digest,
): Promise<Readable> {
  const { path: file } = await store.blobFile(d.digest, d.size);
  const verify = new VerifyingStream({ digest: diffId }, `layer ${d.digest} (diffID)`);
  const blobOk = verifyBlob(store, d);
  blobOk.catch(() => undefined);
  let source: Readable;
  let kill: () => void;
  let done: Promise<void>;
  const tool =
    compression === 'zstd'
      ? zstdDecompressFile(file)
      : compression === 'gzip'
        ? gunzipFile(file)
        : undefined;
  if (tool !== undefined) {
    source = tool.stdout;
    kill = () => tool.kill();
    done = tool.done;
  } else {
    const input = createReadStream(file, { highWaterMark: 1 << 20 });
    if (compression === 'gzip') {
      const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
      input.on('error', (e) => gunzip.destroy(e));
      source = input.pipe(gunzip);
    } else {
      source = input;
    }
    kill = () => {
      input.destroy();
      source.destroy();
    };
    done = finished(source);
  }
  done.catch(() => undefined);
  const fail = (e: unknown): void => {
    kill();
    if (!verify.destroyed) verify.destroy(e as Error);
  };
  source.on('error', fail);
  done.catch(fail);
  blobOk.catch(fail);
  // The diffID is checked in VerifyingStream's flush; hold its end until the blob check is done.
  source.pipe(verify, { end: false });
  source.on('end', () => {
    Promise.all([done, blobOk]).then(
      () => verify.end(),
      () => undefined,
    );
  });
  verify.on('close', () => {
    if (!verify.writableFinished) kill();
  });
  return verify;
}
