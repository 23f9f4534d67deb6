/**
 * The Debian source package a DEBUILD built from, kept in the store beside the .debs it made:
 * the .dsc and every file it lists, each checked against the .dsc's SHA-256 and size while it
 * streams in, so that `strata sources` can bundle what the template's own packages came from.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Annotations,
  Descriptor,
  Digest,
  DigestMismatchError,
  MediaTypes,
  NotFoundError,
  SizeMismatchError,
} from '@strata/oci';
import { parseDsc } from '@strata/debian';
import type { Store } from '@strata/store';

/** A source package in the store: its name, version and files (the .dsc among them). */
export interface StoredSourcePackage {
  name: string;
  version: string;
  /** Each a blob titled with its file name, sorted by it. */
  files: Descriptor[];
}

/** A source file's blob as a debs artifact holds it: its own media type, titled by its name. */
export function sourceFileDescriptor(name: string, digest: Digest, size: number): Descriptor {
  return {
    mediaType: MediaTypes.debianSourceFile,
    digest,
    size,
    annotations: { [Annotations.title]: name },
  };
}

/**
 * Put the source package whose .dsc is `dir/dscName` into the store: the .dsc as it is, then
 * each file it lists (which must lie beside it), verified against the .dsc's SHA-256 and size.
 * A missing file is a NotFoundError, a mismatch a DigestMismatchError or SizeMismatchError
 * naming the file; nothing unverified is kept.
 */
export async function storeSourcePackage(
  store: Store,
  dir: string,
  dscName: string,
): Promise<StoredSourcePackage> {
  const dscPath = path.join(dir, dscName);
  const text = await fsp.readFile(dscPath, 'utf8');
  const dsc = parseDsc(text, dscPath);
  const dscBlob = await store.putBlob(createReadStream(dscPath));
  const files = [sourceFileDescriptor(dscName, dscBlob.digest, dscBlob.size)];
  for (const f of dsc.files) {
    const file = path.join(dir, f.name);
    if (!(await fsp.stat(file).catch(() => undefined))?.isFile()) {
      throw new NotFoundError(`${dscName} lists ${f.name}, which is not beside it`);
    }
    const digest = `sha256:${f.sha256}` as Digest;
    try {
      await store.putBlob(createReadStream(file), { digest, size: f.size });
    } catch (e) {
      // Say which file disagrees with the .dsc that lists it.
      if (e instanceof DigestMismatchError)
        throw new DigestMismatchError(e.expected, e.actual, file);
      if (e instanceof SizeMismatchError) throw new SizeMismatchError(e.expected, e.actual, file);
      throw e;
    }
    files.push(sourceFileDescriptor(f.name, digest, f.size));
  }
  files.sort((a, b) => (titleOf(a) < titleOf(b) ? -1 : 1));
  return { name: dsc.source, version: dsc.version, files };
}

export function titleOf(d: Descriptor): string {
  return d.annotations?.[Annotations.title] ?? '';
}
