import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Descriptor, InvalidDocumentError } from '@strata/oci';
import type { Store } from '@strata/store';
import { Snapshots } from './snapshots';

/**
 * Attach the SBOMs of a built image (`subject`: its rootfs manifest, of one platform) to it:
 * one artifact per format (SPDX and CycloneDX), each of one JSON blob, whose `subject` is the
 * image, so that push, pull, save and load carry them as they carry every referrer. The
 * documents depend only on the image, so an image that has them (a build whose every step
 * came from the cache) keeps them, and the layers are not read again. With `validate`, each is
 * checked against its official schema first and an invalid one fails the build; the tests do
 * that, and a build skips it, as the schema validators cost more than the SBOMs.
 */
export async function attachSboms(
  store: Store,
  subject: Descriptor,
  opts: { validate?: boolean } = {},
): Promise<Descriptor[]> {
  // Loaded here, not with the package: only a build that makes SBOMs needs the libraries.
  const { SBOM_FORMATS, readInventory, renderSbom, sbomArtifactType, sbomFileName, validateSbom } =
    await import('@strata/sbom');
  const held = await store.referrers(subject.digest);
  const have = SBOM_FORMATS.map((f) => held.find((d) => d.artifactType === sbomArtifactType(f)));
  if (have.every((d) => d !== undefined)) return have as Descriptor[];
  const image = store.image(subject);
  const name = (await image.config()).strata?.name ?? subject.digest;
  // The base's view is kept in the store: a build on it reads only its own layers.
  const inv = await readInventory(name, image, {
    read: (top, key) => store.readStackView('sbom-rootfs', top, key),
    write: (top, key, data) => store.writeStackView('sbom-rootfs', top, key, data),
  });
  const dir = await new Snapshots(store).scratch('sbom');
  try {
    const out: Descriptor[] = [];
    for (const format of SBOM_FORMATS) {
      const text = renderSbom(inv, format);
      const problems = opts.validate ? await validateSbom(format, text) : [];
      if (problems.length > 0) {
        throw new InvalidDocumentError(`the ${format} SBOM of ${name}`, problems.slice(0, 5));
      }
      const file = path.join(dir, sbomFileName(format));
      await fsp.writeFile(file, text);
      const type = sbomArtifactType(format);
      out.push(
        await store.attach(subject, type, [
          { path: file, mediaType: type, title: sbomFileName(format) },
        ]),
      );
    }
    return out;
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
