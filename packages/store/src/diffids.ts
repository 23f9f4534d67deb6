import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Digest, digestHex, isDigest, parseDigest } from '@strata/oci';
import { exists, writeFileAtomic } from './atomic';
import { StorePaths } from './paths';

/**
 * The diffID (sha256 of the uncompressed tar) that layer blob `digest` is known to have:
 * recorded when strata made the blob, or after an unpack that hashed both. An unpack of a blob
 * whose digest it checks can then skip hashing the uncompressed stream again.
 */
export async function knownDiffId(paths: StorePaths, digest: Digest): Promise<Digest | undefined> {
  const text = await fsp
    .readFile(path.join(paths.diffIdDir, digestHex(digest)), 'utf8')
    .catch(() => undefined);
  return text !== undefined && isDigest(text) ? text : undefined;
}

/** Record that layer blob `digest` decompresses to a tar with `diffId` (see knownDiffId). */
export async function recordDiffId(
  paths: StorePaths,
  digest: Digest,
  diffId: Digest,
): Promise<void> {
  parseDigest(diffId);
  if ((await knownDiffId(paths, digest)) === diffId) return;
  await fsp.mkdir(paths.diffIdDir, { recursive: true });
  await writeFileAtomic(path.join(paths.diffIdDir, digestHex(digest)), diffId);
}

/** Drop the diffID records of blobs that are gone: a record goes with its blob. */
export async function pruneDiffIds(paths: StorePaths): Promise<void> {
  for (const hex of await fsp.readdir(paths.diffIdDir).catch(() => [])) {
    if (/^[a-f0-9]{64}$/.test(hex) && !(await exists(path.join(paths.blobDir, hex)))) {
      await fsp.rm(path.join(paths.diffIdDir, hex), { force: true });
    }
  }
}
