export const MediaTypes = {
  imageIndex: 'application/vnd.oci.image.index.v1+json',
  imageManifest: 'application/vnd.oci.image.manifest.v1+json',
  imageConfig: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  /** The empty descriptor's media type: the config of an artifact that needs none (OCI 1.1). */
  empty: 'application/vnd.oci.empty.v1+json',
  /** A Debian binary package (.deb), as IANA registers it: a layer of a debs artifact. */
  debianPackage: 'application/vnd.debian.binary-package',
  /** A file of a Debian source package (.dsc, tarball, diff): a layer of a sources artifact. */
  debianSourceFile: 'application/vnd.strata.debian-source-file',
  /** The index of a sources artifact (`strata sources`): which binary came from which source. */
  sourcesIndex: 'application/vnd.strata.sources-index.v1+json',
} as const;

/**
 * Strata's OCI 1.1 artifact types. `debs`: the .debs built for a template (DEBUILD), one layer
 * each, titled with the file name, attached to the template's manifest as its `subject`.
 * `spdx` and `cyclonedx`: the template's SBOMs (JSON), one layer each of that media type.
 */
export const ArtifactTypes = {
  debs: 'application/vnd.strata.debian-packages.v1',
  spdx: 'application/spdx+json',
  cyclonedx: 'application/vnd.cyclonedx+json',
  /**
   * The source bundle of a template (`strata sources --attach`): the source packages of its
   * binaries, the layers of its COPY steps and an index, attached to its manifest.
   */
  sources: 'application/vnd.strata.sources.v1',
} as const;

export type MediaType = (typeof MediaTypes)[keyof typeof MediaTypes] | (string & {});

export type Compression = 'zstd' | 'gzip' | 'none';

export function layerMediaType(c: Compression): MediaType {
  switch (c) {
    case 'zstd':
      return MediaTypes.layerZstd;
    case 'gzip':
      return MediaTypes.layerGzip;
    case 'none':
      return MediaTypes.layerTar;
  }
}

export function compressionOf(mediaType: string): Compression | undefined {
  if (mediaType === MediaTypes.layerZstd) return 'zstd';
  if (mediaType === MediaTypes.layerGzip || mediaType === MediaTypes.dockerLayerGzip) return 'gzip';
  if (mediaType === MediaTypes.layerTar) return 'none';
  return undefined;
}

export function isLayerMediaType(mediaType: string): boolean {
  return compressionOf(mediaType) !== undefined;
}

/** Standard annotation keys (OCI image spec, annotations.md). */
export const Annotations = {
  refName: 'org.opencontainers.image.ref.name',
  title: 'org.opencontainers.image.title',
  created: 'org.opencontainers.image.created',
  description: 'org.opencontainers.image.description',
  version: 'org.opencontainers.image.version',
  baseName: 'org.opencontainers.image.base.name',
  baseDigest: 'org.opencontainers.image.base.digest',
  /** Strata: a manifest's role in a template index (`rootfs` or `buildchroot`). */
  role: 'io.strata.role',
  /**
   * Strata, on a store tag made by a pull: the registry reference it was pulled from, so that a
   * template built FROM the local tag records where its base can be found downstream.
   */
  pulledFrom: 'io.strata.pulled-from',
} as const;

/** An image index or a Docker manifest list. */
export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaTypes.imageIndex || mediaType === MediaTypes.dockerManifestList;
}

/** An image manifest (OCI or Docker schema 2), not an index. */
export function isImageMediaType(mediaType: string): boolean {
  return mediaType === MediaTypes.imageManifest || mediaType === MediaTypes.dockerManifest;
}
