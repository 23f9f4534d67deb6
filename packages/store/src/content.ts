import { createReadStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { Compression, ContentSource, Descriptor, Digest, drain } from '@strata/oci';
import type { BlobReader } from './blob-reader';
import type { BlobStore } from './blobs';

/** The store's content source, with the reader a sender that verifies as it sends takes. */
export interface StoreContent extends ContentSource {
  openRange(d: Descriptor, start: number, end?: number): Promise<Readable>;
  /** The blob through reused buffers, digest and size verified before the last chunk goes out. */
  openBlobReader(d: Descriptor): Promise<BlobReader>;
}

/**
 * A store as a backend of the core's Image, Index and Layer: every read is verified. A layer's
 * tar comes from one mechanism: the decompressor reads the blob file itself (see
 * decompressFile), and the blob is hashed alongside; the tar ends only once that hash matched.
 * Each call opens streams of its own, so any number of readers can read one layer at once.
 */
export function storeContent(
  store: BlobStore & {
    knownDiffId?(digest: Digest): Promise<Digest | undefined>;
    recordDiffId?(digest: Digest, diffId: Digest): Promise<void>;
    referrers?(subject: Digest): Promise<Descriptor[]>;
  },
): StoreContent {
  const referrers = store.referrers?.bind(store);
  return {
    ...(referrers ? { referrers: (d: Descriptor) => referrers(d.digest) } : {}),
    readBlob: (d) => store.readBlob(d.digest, d.size),
    openBlob: (d) => store.openBlob(d.digest, d.size),
    openRange: async (d, start, end) => {
      const { path: file } = await store.blobFile(d.digest, d.size);
      return createReadStream(file, { start, ...(end === undefined ? {} : { end }) });
    },
    openBlobReader: (d) => store.openBlobReader(d.digest, d.size),
    openDecompressed: (d, c) => openDecompressed(store, d, c),
    knownDiffId: async (d) => store.knownDiffId?.(d.digest),
    recordDiffId: async (d, diffId) => store.recordDiffId?.(d.digest, diffId),
    blobFile: async (d) => (await store.blobFile(d.digest, d.size)).path,
  };
}

async function openDecompressed(
  store: BlobStore,
  d: Descriptor,
  compression: Compression,
): Promise<Readable> {
  const { path: file } = await store.blobFile(d.digest, d.size);
  const blobOk = store.openBlob(d.digest, d.size).then(drain);
  blobOk.catch(() => undefined);
  // The tools load with the first layer read as a tar: pushes, pulls and tags never need them.
  const { decompressFile } = await import('@strata/tools');
  const tool = decompressFile(file, compression);
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const fail = (e: unknown): void => {
    tool.kill();
    if (!out.destroyed) out.destroy(e as Error);
  };
  tool.stdout.on('error', fail);
  tool.done.catch(fail);
  blobOk.catch(fail);
  // The tar ends only after the decompressor exited cleanly and the blob's digest matched.
  tool.stdout.pipe(out, { end: false });
  tool.stdout.on('end', () => {
    Promise.all([tool.done, blobOk]).then(
      () => out.end(),
      () => undefined,
    );
  });
  out.on('close', () => {
    if (!out.writableFinished) tool.kill();
  });
  return out;
}
