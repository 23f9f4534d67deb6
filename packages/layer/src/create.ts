import { PassThrough, pipeline, Readable, Transform } from 'node:stream';
import { Compression, Digest, Hasher, layerMediaType, StrataError } from '@strata/oci';
import { compressor } from './codec';

export interface LayerResult {
  /** sha256 of the uncompressed tar. */
  diffId: Digest;
  mediaType: string;
  /** Size of the uncompressed tar in bytes. */
  uncompressedSize: number;
}

export interface CreatedLayer {
  /** The compressed blob. Ends only after the compressor exited cleanly; errors otherwise. */
  blob: Readable;
  /** Settles once `blob` has been fully read (or has failed). */
  result: Promise<LayerResult>;
}

/**
 * Turn a tar stream into a layer blob in one pass: the tar is hashed (diffID) on its way into the
 * compressor. The consumer reads `blob` (and computes the blob digest while storing it); `result`
 * resolves after the last byte. Destroying `blob` aborts everything (and kills zstd).
 */
export function createLayer(tar: Readable, compression: Compression): CreatedLayer {
  const hasher = new Hasher();
  const filter = compressor(compression);
  const blob = new PassThrough({ highWaterMark: 1 << 20 });
  let settled = false;
  let resolve!: (r: LayerResult) => void;
  let reject!: (e: unknown) => void;
  const result = new Promise<LayerResult>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  result.catch(() => undefined);

  const fail = (err: unknown): void => {
    if (settled) return;
    settled = true;
    filter.kill();
    tar.destroy();
    blob.destroy(err as Error);
    reject(err);
  };

  const hashing = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      hasher.update(chunk);
      cb(null, chunk);
    },
  });
  pipeline(tar, hashing, filter.stdin, (err) => {
    if (err) fail(err);
  });
  filter.stdout.pipe(blob, { end: false });
  filter.stdout.on('error', fail);
  filter.stdout.on('end', () => {
    filter.done.then(() => {
      if (settled) return;
      settled = true;
      blob.end();
      resolve({
        diffId: hasher.digest(),
        mediaType: layerMediaType(compression),
        uncompressedSize: hasher.size,
      });
    }, fail);
  });
  filter.done.catch(fail);
  blob.on('close', () => {
    if (!settled)
      fail(new StrataError('INTERRUPTED', 'layer blob stream destroyed before the end'));
  });
  return { blob, result };
}
