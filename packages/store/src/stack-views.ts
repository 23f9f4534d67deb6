import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Digest, InvalidArgumentError, digestHex } from '@strata/oci';
import { exists, writeFileAtomic } from './atomic';
import { StorePaths } from './paths';

/**
 * Views of a layer stack: small data derived from reading its layers (what an SBOM needs of the
 * flattened rootfs, say), kept so that a later read of a stack that starts with the same layers
 * reads only the layers above them. A view is named by its kind, the blob of the stack's top
 * layer and a key the reader makes over the whole chain; it goes with the top layer's blob.
 * Views are a cache: one that is missing or unreadable is made again by reading the layers.
 */
const NAME = /^([a-f0-9]{64})-([A-Za-z0-9_-]{1,128})$/;
const KIND = /^[a-z0-9-]{1,64}$/;

function viewPath(paths: StorePaths, kind: string, top: Digest, key: string): string {
  const name = `${digestHex(top)}-${key}`;
  if (!KIND.test(kind) || !NAME.test(name))
    throw new InvalidArgumentError(`invalid stack view ${kind}/${name}`);
  return path.join(paths.stackViewDir, kind, name);
}

export async function readStackView(
  paths: StorePaths,
  kind: string,
  top: Digest,
  key: string,
): Promise<Buffer | undefined> {
  return fsp.readFile(viewPath(paths, kind, top, key)).catch(() => undefined);
}

export async function writeStackView(
  paths: StorePaths,
  kind: string,
  top: Digest,
  key: string,
  data: Buffer,
): Promise<void> {
  const file = viewPath(paths, kind, top, key);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, data);
}

/** Drop the views whose top layer's blob is gone, and any file a view cannot be. */
export async function pruneStackViews(paths: StorePaths): Promise<void> {
  for (const kind of await fsp.readdir(paths.stackViewDir).catch(() => [] as string[])) {
    const dir = path.join(paths.stackViewDir, kind);
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      const m = NAME.exec(name);
      // Temp files of a live writer are left to the dead-temp sweep.
      if (m === null) continue;
      if (!(await exists(path.join(paths.blobDir, m[1]!)))) {
        await fsp.rm(path.join(dir, name), { force: true });
      }
    }
  }
}

/** The directory of each kind of view (where a killed writer's temp files may be). */
export async function stackViewDirs(paths: StorePaths): Promise<string[]> {
  const kinds = await fsp.readdir(paths.stackViewDir).catch(() => [] as string[]);
  return kinds.filter((k) => KIND.test(k)).map((k) => path.join(paths.stackViewDir, k));
}
