import {
  ContentSource,
  Descriptor,
  Image,
  InvalidDocumentError,
  ImageManifest,
  parseJson,
} from '@strata/oci';
import { SbomFormat, sbomArtifactType } from './formats';
import { Inventory, inventory } from './inventory';
import { readRootfsFiles, RootfsViews } from './rootfs';
import { toSpdx } from './spdx';

export { SBOM_FORMATS, sbomArtifactType, sbomFileName } from './formats';
export type { SbomFormat } from './formats';
export { filesChecksum, debPurl, reportLicences, SHADOWED_NOTE } from './inventory';
export type { Inventory, SbomLayer, SbomPackage } from './inventory';
export { packageLicense, spdxIdOf } from './licenses';
export type { PackageLicense, ExtractedLicense } from './licenses';
export { toSpdx } from './spdx';
export type { SpdxDocument } from './spdx';

/**
 * The CycloneDX library (over 200 modules with its validator) loads with the first CycloneDX
 * document: a build whose image has its SBOMs already attached (a no-op rebuild) makes none.
 */
export function toCycloneDx(inv: Inventory): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./cyclonedx') as typeof import('./cyclonedx')).toCycloneDx(inv);
}
export { readRootfsFiles, RootfsFiles } from './rootfs';
export type { RootfsViews } from './rootfs';

/** The schema validators load only when asked for (see validate.ts). */
export async function validateSbom(format: SbomFormat, text: string): Promise<string[]> {
  return (await import('./validate')).validateSbom(format, text);
}

/** Where a template is read from: its image, and the backend that holds what refers to it. */
export interface SbomSource {
  /** What the template was named by. */
  ref: string;
  /** The template's image (of one platform): an SBOM's subject. */
  image: Image;
  content: Pick<ContentSource, 'readBlob' | 'referrers'>;
}

/** An SBOM, as text, and where it came from. */
export interface Sbom {
  format: SbomFormat;
  text: string;
  /** `attached`: an artifact that refers to the template; `computed`: made from its layers. */
  source: 'attached' | 'computed';
  /** The attached artifact's manifest. */
  artifact?: Descriptor;
}

/**
 * The facts of a template for its SBOMs: its config and metadata, and the dpkg status,
 * md5sums, copyright and os-release files of its flattened layers, streamed through the core's
 * layers (verified as they are read) and never unpacked.
 */
export async function readInventory(
  ref: string,
  image: Image,
  views?: RootfsViews,
  opts: { allLayers?: boolean } = {},
): Promise<Inventory> {
  const [config, layers, digest] = await Promise.all([
    image.config(),
    image.layers(),
    image.digest(),
  ]);
  const files = await readRootfsFiles(layers, views);
  return inventory({ ref, digest, config, layers: layers.map((l) => l.descriptor) }, files, opts);
}

/** An inventory as an SBOM document of `format` (JSON text). */
export function renderSbom(inv: Inventory, format: SbomFormat): string {
  return format === 'spdx' ? `${JSON.stringify(toSpdx(inv), null, 2)}\n` : `${toCycloneDx(inv)}\n`;
}

/**
 * The SBOM of `format` attached to the template (an artifact of that type whose subject is its
 * image manifest), read through the backend: the referrers list, the artifact's manifest and
 * its one blob, each verified; no layer of the template is read. Undefined when none is.
 */
export async function attachedSbom(src: SbomSource, format: SbomFormat): Promise<Sbom | undefined> {
  const type = sbomArtifactType(format);
  const refs = (await src.content.referrers?.(src.image.descriptor)) ?? [];
  const artifact = refs
    .filter((d) => d.artifactType === type)
    .sort((a, b) => (a.digest < b.digest ? -1 : 1))[0];
  if (artifact === undefined) return undefined;
  const what = `${format} SBOM ${artifact.digest} of ${src.ref}`;
  const m = parseJson(await src.content.readBlob(artifact), what) as ImageManifest | null;
  const blob = m?.layers?.find((l) => l.mediaType === type);
  if (blob === undefined) throw new InvalidDocumentError(what, [`no layer of type ${type}`]);
  const text = (await src.content.readBlob(blob)).toString('utf8');
  return { format, text, source: 'attached', artifact };
}

/**
 * The SBOM of a template: the attached one when there is one (unless `compute`), else made
 * from its layers.
 */
export async function sbomOf(
  src: SbomSource,
  format: SbomFormat,
  opts: { compute?: boolean; allLayers?: boolean } = {},
): Promise<Sbom> {
  // What is attached describes the flattened rootfs.
  if (!opts.compute && !opts.allLayers) {
    const attached = await attachedSbom(src, format);
    if (attached !== undefined) return attached;
  }
  const inv = await readInventory(src.ref, src.image, undefined, { allLayers: opts.allLayers });
  return { format, text: renderSbom(inv, format), source: 'computed' };
}
