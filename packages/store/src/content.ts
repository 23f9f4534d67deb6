import { createReadStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import {
  Compression,
  ContentSource,
  CorruptError,
  Descriptor,
  Digest,
  ToolFailedError,
  drain,
} from '@strata/oci';
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
  // A small damaged blob fails at once, maybe before the caller has begun to read (it may still
  // be opening its output): the stream keeps the error for that reader, and an 'error' event
  // nobody listens to yet must not crash the process.
  out.on('error', () => undefined);
  const fail = (e: unknown): void => {
    tool.kill();
    if (!out.destroyed) out.destroy(e as Error);
  };
  // A damaged blob also makes the decompressor fail, often first, with less to say (zstd names
  // the file by its last 20 characters): the blob's own check decides which error it is.
  const toolFailed = (e: unknown): void => {
    tool.kill();
    blobOk.then(() => fail(undecodable(e, d, compression, file)), fail);
  };
  tool.stdout.on('error', toolFailed);
  tool.done.catch(toolFailed);
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

/**
 * A blob whose digest is right but that its decompressor rejects (it was stored that way): a
 * CorruptError naming the whole digest. Other failures (the tool missing, killed) pass unchanged.
 */
function undecodable(e: unknown, d: Descriptor, compression: Compression, file: string): unknown {
  const decodeFailed =
    (e instanceof ToolFailedError && /exited with code/.test(e.message)) ||
    /^Z_/.test(String((e as NodeJS.ErrnoException).code ?? ''));
  if (!decodeFailed) return e;
  const why = (e as Error).message.replace(`${file.slice(-20)} : `, '');
  return new CorruptError(`blob ${d.digest} is not valid ${compression} data: ${why}`, {
    cause: e,
  });
}
