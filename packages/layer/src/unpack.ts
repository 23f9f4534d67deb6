import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import {
  Compression,
  DAMAGED_BLOB_HINT,
  Digest,
  DigestMismatchError,
  Hasher,
  InvalidArgumentError,
  InvalidDocumentError,
  Layer,
  StrataError,
  compressionOf,
  isDigest,
  noSpaceAt,
} from '@strata/oci';
import { LayerApplier } from './applier';
import { inflate, InflateResult } from './inflate';
import { TarParser } from './reader';

export interface UnpackOptions {
  /** Fail with DigestMismatchError unless the uncompressed stream hashes to this. */
  expectedDiffId?: Digest;
  /**
   * Fail with DigestMismatchError unless the compressed blob hashes to this. Pass it whenever the
   * source bypasses a verifying store stream (for example a file path).
   */
  expectedDigest?: Digest;
  /** Stops the unpack at the next chunk (an INTERRUPTED StrataError); the target is then partial. */
  signal?: AbortSignal;
}

function interrupted(): StrataError {
  return new StrataError('INTERRUPTED', 'unpack interrupted');
}

export interface UnpackStats {
  /** sha256 of the compressed blob, as computed while unpacking. */
  digest: Digest;
  /**
   * sha256 of the uncompressed tar, as computed while unpacking; undefined when unpackLayers()
   * found it already verified for the blob and did not hash the tar again.
   */
  diffId?: Digest;
  /** Size of the uncompressed tar. */
  tarBytes: number;
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  whiteouts: number;
}

async function openRoot(targetDir: string): Promise<string> {
  let root: string;
  try {
    root = await fs.promises.realpath(targetDir);
  } catch (e) {
    throw new InvalidArgumentError(`unpack target ${JSON.stringify(targetDir)} does not exist`, {
      cause: e,
    });
  }
  const st = await fs.promises.stat(root);
  if (!st.isDirectory())
    throw new InvalidArgumentError(`unpack target ${JSON.stringify(targetDir)} is not a directory`);
  return root;
}

async function applyLayer(
  source: Readable | string,
  compression: Compression,
  root: string,
  dirOk: Set<string>,
  opts: UnpackOptions & { hashDiffId: boolean },
): Promise<UnpackStats> {
  const applier = new LayerApplier(root, dirOk);
  const parser = new TarParser(applier);
  let r: InflateResult;
  try {
    // An expected diffID is always checked.
    r = await inflate(
      source,
      compression,
      (chunk) => {
        if (opts.signal?.aborted) throw interrupted();
        parser.write(chunk);
      },
      {
        diffId: opts.hashDiffId || opts.expectedDiffId !== undefined,
      },
    );
    parser.end();
  } catch (e) {
    applier.abort();
    throw await damagedBlob(e, source, opts.expectedDigest);
  }
  if (opts.expectedDigest !== undefined && opts.expectedDigest !== r.blobDigest) {
    throw new DigestMismatchError(
      opts.expectedDigest,
      r.blobDigest,
      `blob ${opts.expectedDigest}`,
      typeof source === 'string' ? { hint: DAMAGED_BLOB_HINT } : {},
    );
  }
  if (opts.expectedDiffId !== undefined && opts.expectedDiffId !== r.diffId) {
    throw new DigestMismatchError(opts.expectedDiffId, r.diffId ?? 'none', 'layer diffID');
  }
  await applier.finish();
  return {
    digest: r.blobDigest,
    ...(r.diffId ? { diffId: r.diffId } : {}),
    tarBytes: r.size,
    ...applier.stats,
  };
}

/**
 * What to throw for `e`, an unpack's failure. A blob read from a file is decompressed and parsed
 * while it is hashed, so a damaged blob stops the decompressor or the tar parser long before the
 * digest check at its end would have spoken. When the file does not hash to its digest, that is
 * the error: the bytes are not the layer's, whatever the decompressor made of them.
 */
async function damagedBlob(e: unknown, source: Readable | string, expected?: Digest) {
  const bad = e instanceof StrataError && (e.code === 'CORRUPT' || e.code === 'UNSAFE_ENTRY');
  if (!bad || typeof source !== 'string' || expected === undefined) return e;
  let actual: Digest;
  try {
    const hasher = new Hasher();
    for await (const c of fs.createReadStream(source, { highWaterMark: 1 << 20 }))
      hasher.update(c as Buffer);
    actual = hasher.digest();
  } catch {
    return e;
  }
  if (actual === expected) return e;
  return new DigestMismatchError(expected, actual, `blob ${expected}`, {
    hint: DAMAGED_BLOB_HINT,
    cause: e,
  });
}

/**
 * Apply one compressed tar that is not (yet) a layer of an image, such as a rootfs tarball,
 * (compressed as `compression`) onto `targetDir`, honouring OCI whiteouts and
 * refusing unsafe entries. `blob` is a stream of the compressed bytes or the path of a file
 * holding them (faster: read directly by the decompression worker). The blob digest and the
 * diffID are computed while unpacking and checked against `expectedDigest` / `expectedDiffId`; a
 * mismatch throws DigestMismatchError (the target is then partially written: unpack into a
 * scratch directory that you discard on failure).
 */
export async function unpackLayer(
  blob: Readable | string,
  compression: Compression,
  targetDir: string,
  opts: UnpackOptions = {},
): Promise<UnpackStats> {
  const root = await openRoot(targetDir);
  try {
    return await applyLayer(blob, compression, root, new Set(), { ...opts, hashDiffId: true });
  } catch (e) {
    throw noSpaceAt(e, targetDir);
  }
}

/**
 * Apply a stack of the core's layers, base first, into `targetDir`, one at a time. A layer's
 * blob digest and its diffID are verified while it is applied; a mismatch throws
 * DigestMismatchError (unpack into a scratch directory that you discard on failure).
 *
 * A layer whose backend keeps the blob in a file (`Layer.file`, the store) is read by the
 * decompressor worker from that file, which is what keeps unpacking close to GNU tar's speed;
 * its tar is not hashed again when the backend already verified the expected diffID for that
 * blob, and a diffID computed here is recorded for it. Any other layer is read as its verified
 * compressed stream. Either way each unpack opens the layer's content for itself, so layers
 * read by several consumers at once never share a stream. `onLayer` hears the compressed bytes
 * of the layers applied so far, after each one. `signal` stops the unpack at the next chunk.
 */
export async function unpackLayers(
  layers: Iterable<Layer>,
  targetDir: string,
  onLayer?: (compressedBytes: number) => void,
  signal?: AbortSignal,
): Promise<UnpackStats[]> {
  try {
    return await applyLayers(layers, targetDir, onLayer, signal);
  } catch (e) {
    // A full disk names the tree being unpacked, not the entry it happened to stop at.
    throw noSpaceAt(e, targetDir);
  }
}

async function applyLayers(
  layers: Iterable<Layer>,
  targetDir: string,
  onLayer?: (compressedBytes: number) => void,
  signal?: AbortSignal,
): Promise<UnpackStats[]> {
  let done = 0;
  const root = await openRoot(targetDir);
  const dirOk = new Set<string>();
  const out: UnpackStats[] = [];
  for (const l of layers) {
    if (signal?.aborted) throw interrupted();
    const d = l.descriptor;
    const compression = compressionOf(d.mediaType);
    if (compression === undefined) {
      throw new InvalidDocumentError(`layer ${d.digest}`, [
        `unsupported media type ${d.mediaType}`,
      ]);
    }
    const expectedDiffId = await l.diffId();
    const file = await l.file?.();
    const known = file?.knownDiffId === expectedDiffId;
    const stats = await applyLayer(file?.path ?? (await l.open()), compression, root, dirOk, {
      expectedDigest: d.digest,
      ...(known ? {} : { expectedDiffId }),
      hashDiffId: !known,
      signal,
    }).catch(async (e: unknown) => {
      // The blob verified (its digest is checked first) but its tar is not the one the config
      // lists: what it does unpack to is recorded, so that fsck can name the image that lies.
      if (
        file &&
        e instanceof DigestMismatchError &&
        e.expected === expectedDiffId &&
        isDigest(e.actual)
      )
        await file.recordDiffId(e.actual).catch(() => undefined);
      throw e;
    });
    if (file && stats.diffId !== undefined) await file.recordDiffId(stats.diffId);
    out.push(stats);
    done += d.size;
    onLayer?.(done);
  }
  return out;
}
