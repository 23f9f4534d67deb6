import { ArtifactTypes } from '@strata/oci';

/** The SBOM formats Strata writes. */
export type SbomFormat = 'spdx' | 'cyclonedx';
export const SBOM_FORMATS: readonly SbomFormat[] = ['spdx', 'cyclonedx'];

/** The artifact type of an SBOM attached to a template: also its blob's media type. */
export function sbomArtifactType(format: SbomFormat): string {
  return format === 'spdx' ? ArtifactTypes.spdx : ArtifactTypes.cyclonedx;
}

/** The file name an attached SBOM's blob is titled with. */
export function sbomFileName(format: SbomFormat): string {
  return format === 'spdx' ? 'sbom.spdx.json' : 'sbom.cdx.json';
}
