import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { Compression, Digest, DigestMismatchError, InvalidArgumentError } from '@strata/oci';
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
}

export interface UnpackStats {
  /** sha256 of the compressed blob, as computed while unpacking. */
  digest: Digest;
  /**
   * sha256 of the uncompressed tar, as computed while unpacking; undefined when unpackLayers()
   * found it in its DiffIdRecords and did not hash the tar again.
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

/** One layer of a stack for unpackLayers(): opened lazily, in order, base first. */
export interface LayerSource {
  /** The compressed blob, as a stream or as the path of a file holding it. */
  open(): Readable | string | Promise<Readable | string>;
  compression: Compression;
  expectedDiffId?: Digest;
  expectedDigest?: Digest;
}

/**
 * Where diffIDs that were verified once are remembered (a Store is one). A blob whose digest is
 * checked while it is unpacked has the diffID recorded for it, so its tar need not be hashed again.
 */
export interface DiffIdRecords {
  knownDiffId(digest: Digest): Promise<Digest | undefined>;
  recordDiffId(digest: Digest, diffId: Digest): Promise<void>;
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
    r = await inflate(source, compression, (chunk) => parser.write(chunk), {
      diffId: opts.hashDiffId || opts.expectedDiffId !== undefined,
    });
    parser.end();
  } catch (e) {
    applier.abort();
    throw e;
  }
  if (opts.expectedDigest !== undefined && opts.expectedDigest !== r.blobDigest) {
    throw new DigestMismatchError(opts.expectedDigest, r.blobDigest, 'layer blob');
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
 * Apply one layer (compressed as `compression`) onto `targetDir`, honouring OCI whiteouts and
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
  return applyLayer(blob, compression, root, new Set(), { ...opts, hashDiffId: true });
}

/**
 * Apply a stack of layers, base first, into `targetDir`. Layers are opened one at a time. With
 * `diffIds`, a layer whose blob digest is checked and whose expected diffID is the one recorded
 * for that blob is not hashed a second time; every diffID computed for a checked blob is recorded.
 */
export async function unpackLayers(
  layers: Iterable<LayerSource>,
  targetDir: string,
  opts: { diffIds?: DiffIdRecords } = {},
): Promise<UnpackStats[]> {
  const root = await openRoot(targetDir);
  const dirOk = new Set<string>();
  const out: UnpackStats[] = [];
  const records = opts.diffIds;
  for (const l of layers) {
    const { expectedDigest, expectedDiffId } = l;
    const known =
      records !== undefined &&
      expectedDigest !== undefined &&
      expectedDiffId !== undefined &&
      (await records.knownDiffId(expectedDigest)) === expectedDiffId;
    const blob = await l.open();
    const stats = await applyLayer(blob, l.compression, root, dirOk, {
      expectedDigest,
      ...(known ? {} : { expectedDiffId }),
      hashDiffId: !known,
    });
    if (records && expectedDigest !== undefined && stats.diffId !== undefined) {
      await records.recordDiffId(expectedDigest, stats.diffId);
    }
    out.push(stats);
  }
  return out;
}
