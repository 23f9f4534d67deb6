import {
  Annotations,
  Descriptor,
  Digest,
  HistoryEntry,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  MediaTypes,
  Role,
  TemplateMetadata,
  assertValid,
  validateConfig,
  validateManifest,
  validateTemplateMetadata,
} from '@strata/oci';
import type { Store } from './store';

/** A layer of a new image, base first: its blob, its diffID and what made it. */
export interface NewLayer {
  descriptor: Descriptor;
  diffId: Digest;
  history: HistoryEntry;
}

/** Everything an image is made of; `writeImage` turns it into a config and a manifest. */
export interface NewImage {
  /** The template's metadata (the config's `strata` field); its `created` dates the image. */
  metadata: TemplateMetadata;
  layers: readonly NewLayer[];
  /**
   * History entries of steps that made no layer (written with `empty_layer: true`), each after
   * the first `after` layers' entries, in order.
   */
  emptyHistory?: ReadonlyArray<{ after: number; history: HistoryEntry }>;
  platform: { architecture: string; variant?: string };
  env: readonly string[];
  labels: Record<string, string>;
  /** The manifest's annotations. */
  annotations: Record<string, string>;
}

export interface WrittenImage {
  /** The manifest's descriptor, with its platform. */
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
}

/**
 * Write an image's config and manifest, each checked against its schema, and return the
 * manifest's descriptor. The one writer of images: `template create`, `build` and the bundle
 * writer below all come through here, so every image Strata makes has the same shape.
 */
export async function writeImage(store: Store, img: NewImage): Promise<WrittenImage> {
  const { metadata, platform } = img;
  assertValid(validateTemplateMetadata, metadata, 'template metadata');
  const config: ImageConfig = {
    created: metadata.created,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: 'linux',
    config: { Env: [...img.env], Labels: img.labels },
    rootfs: { type: 'layers', diff_ids: img.layers.map((l) => l.diffId) },
    history: historyOf(img),
    strata: metadata,
  };
  assertValid(validateConfig, config, 'image config');
  const configDesc = await store.putJson(config, MediaTypes.imageConfig);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config: configDesc,
    layers: img.layers.map((l) => l.descriptor),
    annotations: img.annotations,
  };
  assertValid(validateManifest, manifest, 'image manifest');
  const desc = await store.putJson(manifest, MediaTypes.imageManifest);
  const descriptor: Descriptor = {
    ...desc,
    platform: {
      architecture: platform.architecture,
      os: 'linux',
      ...(platform.variant ? { variant: platform.variant } : {}),
    },
  };
  return { descriptor, manifest, config };
}

/** One part of a bundle: an image manifest, and annotations for its entry besides its role. */
export interface BundlePart {
  descriptor: Descriptor;
  annotations?: Record<string, string>;
}

/**
 * Write a template bundle: an OCI index holding a rootfs image and its buildchroot, each entry
 * annotated with its role. Blobs are shared, not copied: layers the two images have in common
 * are stored (and pushed) once.
 */
export async function writeBundle(
  store: Store,
  parts: Record<Role, BundlePart>,
): Promise<Descriptor> {
  const entry = (role: Role): Descriptor => {
    const { descriptor: d, annotations } = parts[role];
    const out: Descriptor = {
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      annotations: { [Annotations.role]: role, ...annotations },
    };
    if (d.platform) out.platform = d.platform;
    return out;
  };
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageIndex,
    manifests: [entry('rootfs'), entry('buildchroot')],
    annotations: { 'io.strata.bundle': 'rootfs+buildchroot' },
  };
  return store.putJson(index, MediaTypes.imageIndex);
}

/** The layers' history entries, with the empty ones among them where they came. */
function historyOf(img: NewImage): HistoryEntry[] {
  const empty = img.emptyHistory ?? [];
  const out: HistoryEntry[] = [];
  let e = 0;
  const emptiesUpTo = (n: number) => {
    for (; e < empty.length && (empty[e]?.after ?? Infinity) <= n; e++)
      out.push({ ...(empty[e]?.history ?? {}), empty_layer: true });
  };
  img.layers.forEach((l, i) => {
    emptiesUpTo(i);
    out.push(l.history);
  });
  emptiesUpTo(Infinity);
  return out;
}
