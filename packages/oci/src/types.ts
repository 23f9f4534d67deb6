import type { Digest } from './digest';
import type { MediaType } from './media-types';

/** OCI content descriptor (image-spec descriptor.md). */
export interface Descriptor {
  mediaType: MediaType;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  variant?: string;
}

/** OCI image manifest (image-spec manifest.md). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType: MediaType;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
  artifactType?: string;
}

/** OCI image index (image-spec image-index.md). Also the shape of an image layout's index.json. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: MediaType;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** OCI image configuration (image-spec config.md), with Strata's template metadata under `strata`. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: {
    Env?: string[];
    Labels?: Record<string, string>;
    WorkingDir?: string;
    Cmd?: string[];
    Entrypoint?: string[];
  };
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  /** Strata's template metadata. Other tools ignore unknown properties, as the image spec requires. */
  strata?: TemplateMetadata;
}

export interface DebianPackage {
  /** Binary package name. */
  name: string;
  version: string;
  architecture: string;
  /** Source package name (defaults to the binary name when dpkg records none). */
  source: string;
  /** Source version when it differs from the binary version. */
  sourceVersion?: string;
  /**
   * dpkg's state (the status field's third word) when it is not `installed`: `unpacked`,
   * `half-configured`, `triggers-awaited`, `triggers-pending` or `half-installed`. Its files
   * are on disk all the same, so it ships and is listed.
   */
  state?: string;
  /**
   * The source packages (`name=version`) its `Built-Using` field names: sources it embeds
   * (Debian Policy 7.8), which must be shipped with it.
   */
  builtUsing?: string[];
  /** The same for `Static-Built-Using`: sources it was statically linked against. */
  staticBuiltUsing?: string[];
}

export interface Distribution {
  id?: string;
  versionId?: string;
  versionCodename?: string;
  prettyName?: string;
}

/** A glob that was kept out of the template, and why. */
export interface Exclusion {
  pattern: string;
  reason: string;
  /** How the matching paths were handled: dropped, or kept as an empty file. */
  action: 'drop' | 'empty';
  /** Paths this pattern actually matched in the input. */
  matched: number;
}

/** What made one layer. */
export interface LayerRecord {
  diffId: Digest;
  createdBy: string;
  /** Packages this layer added or changed. */
  packagesAdded?: string[];
  /** Packages this layer removed, `name=version` (names alone in templates made before). */
  packagesRemoved?: string[];
  /** The build step's cache key, when a Stratafile step made the layer. */
  cacheKey?: Digest;
  /**
   * The Release digest of the build's own packages (DEBUILD's, or a FROM template's) that the
   * step's apt saw: part of its cache key, so `strata check` can recompute that key.
   */
  localRepo?: string;
  /**
   * The packages (`name=version`) of packagesAdded that this INSTALL took from .deb files of
   * the build context rather than from an apt repository: they are not the distribution's.
   */
  localDebs?: string[];
  /**
   * The packages (`name=version`) of packagesAdded that this step took from the build's own
   * packages (a DEBUILD's, of this build or of a FROM template): they are not the distribution's.
   */
  ownDebs?: string[];
  /**
   * A `COPY --from` layer: the stage it copied from and the chain ID of that stage's layers,
   * which its cache key holds (the stage's layers are not in this image).
   */
  copiedFrom?: { stage: string; chain: Digest };
}

/**
 * A Stratafile step that changed nothing (a RUN that wrote no file): the image has no layer for
 * it, as BuildKit's has none, only its `empty_layer` history entry; this keeps its cache key for
 * `strata check`.
 */
export interface EmptyStepRecord {
  /** How many of the image's layers come before it. */
  after: number;
  createdBy: string;
  cacheKey: Digest;
  /** As LayerRecord's: the build's own packages' Release digest its key holds. */
  localRepo?: string;
  /** As LayerRecord's: the stage a `COPY --from` read. */
  copiedFrom?: { stage: string; chain: Digest };
}

/**
 * A package that a later layer removed or replaced by another version: its files are still in
 * the blob of the layer that installed it, which a push distributes with the image, but not in
 * the flattened rootfs.
 */
export interface ShadowedPackage extends DebianPackage {
  /** DiffID of the layer whose blob holds it. */
  layer: Digest;
}

/** One source a DEBUILD line built: what its cache key was made of, and what it made. */
export interface DebuildRecord {
  /** The source tree or .dsc, as the DEBUILD line names it in the build context. */
  source: string;
  cacheKey: Digest;
  /** Chain ID of the buildchroot it was built in. */
  buildchroot: Digest;
  /** Blob digests of the build's own packages among its Build-Depends. */
  inputs: Digest[];
  /** The packages it made, `name=version`. */
  packages: string[];
}

/** An ancestor template a build started from. */
export interface BaseTemplate {
  /** Template name from its metadata (or the reference when it has none). */
  name: string;
  /** The reference it was named by in the Stratafile. */
  ref: string;
  /** Manifest digest it resolved to. */
  digest: Digest;
}

/** Strata's template metadata, stored in the image config. */
export interface TemplateMetadata {
  schemaVersion: 1;
  /** Human name of the template, e.g. "acme-base". */
  name: string;
  /** RFC 3339 build date (from SOURCE_DATE_EPOCH when set). */
  created: string;
  /** Feature list, sorted and unique. */
  features: string[];
  /** Debian architecture (amd64, arm64, …). */
  architecture: string;
  distribution: Distribution;
  /** Installed Debian packages read from var/lib/dpkg/status, sorted by name. */
  packages: DebianPackage[];
  /** Exclusions applied when the rootfs was captured. */
  exclusions: Exclusion[];
  layers: LayerRecord[];
  /** The steps that made no layer, here and in its base templates, in build order. */
  emptySteps?: EmptyStepRecord[];
  /** Every ancestor template, nearest last: base → middleware → … */
  baseChain?: BaseTemplate[];
  /** OCI labels set by LABEL. */
  labels?: Record<string, string>;
  /** The Debian source packages DEBUILD built for this template's stages, in build order. */
  debuilds?: DebuildRecord[];
  /**
   * The apt sources its packages were installed from (BOOTSTRAP, INSTALL, UPGRADE, and RUN, whose
   * keys hold them, here and in its base templates), as one-line `deb` entries without credentials: where `strata sources`
   * looks for their source packages.
   */
  aptSources?: string[];
  /** The packages that lower layers hold but a later layer removed or replaced, sorted by name. */
  shadowedPackages?: ShadowedPackage[];
}

/** `<store>/.strata/config.json` as written by a user (see storeConfigSchema); all optional. */
export interface StoreConfigFile {
  gc?: {
    /** Bytes of unused build cache and snapshots that gc keeps, newest first. */
    keepUnusedBytes?: number;
    /** Unused entries older than this many days go regardless of size. */
    keepUnusedDays?: number;
  };
}
