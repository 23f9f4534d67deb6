import {
  Annotations,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  InvalidDocumentError,
  MediaTypes,
  TemplateMetadata,
  assertValid,
  validateTemplateMetadata,
} from '@strata/oci';
import { Store } from '@strata/store';

export interface LoadedTemplate {
  ref: string;
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** Strata metadata; undefined for a plain OCI image that Strata did not make. */
  metadata: TemplateMetadata | undefined;
}

/** Load an image from the store, checking its template metadata against the schema. */
export async function loadTemplate(store: Store, ref: string): Promise<LoadedTemplate> {
  const descriptor = await store.resolve(ref);
  if (
    descriptor.mediaType !== MediaTypes.imageManifest &&
    descriptor.mediaType !== MediaTypes.dockerManifest
  ) {
    throw new InvalidDocumentError(`image ${ref}`, [
      `unsupported media type ${descriptor.mediaType}`,
    ]);
  }
  const manifest = await store.readManifest(descriptor);
  const config = await store.readConfig(manifest.config);
  const metadata =
    config.strata === undefined
      ? undefined
      : assertValid(validateTemplateMetadata, config.strata, `template metadata of ${ref}`);
  return {
    ref: descriptor.annotations?.[Annotations.refName] ?? ref,
    descriptor,
    manifest,
    config,
    metadata,
  };
}

export interface LayerSummary {
  digest: Digest;
  size: number;
  mediaType: string;
  diffId: Digest | undefined;
  createdBy: string | undefined;
}

/** What `strata inspect --json` prints. */
export interface TemplateSummary {
  ref: string;
  digest: Digest;
  mediaType: string;
  name: string | undefined;
  created: string | undefined;
  features: string[];
  architecture: string;
  os: string;
  distribution: TemplateMetadata['distribution'];
  packageCount: number;
  packages: TemplateMetadata['packages'];
  exclusions: TemplateMetadata['exclusions'];
  layers: LayerSummary[];
  size: number;
  annotations: Record<string, string>;
}

export function summarize(t: LoadedTemplate): TemplateSummary {
  const m = t.metadata;
  const history = (t.config.history ?? []).filter((h) => !h.empty_layer);
  const layers = t.manifest.layers.map((l, i): LayerSummary => {
    const diffId = t.config.rootfs.diff_ids[i];
    const record = m?.layers.find((r) => r.diffId === diffId);
    return {
      digest: l.digest,
      size: l.size,
      mediaType: l.mediaType,
      diffId,
      createdBy: record?.createdBy ?? history[i]?.created_by,
    };
  });
  return {
    ref: t.ref,
    digest: t.descriptor.digest,
    mediaType: t.descriptor.mediaType,
    name: m?.name ?? t.manifest.annotations?.[Annotations.title],
    created: m?.created ?? t.config.created,
    features: m?.features ?? [],
    architecture: m?.architecture ?? t.config.architecture,
    os: t.config.os,
    distribution: m?.distribution ?? {},
    packageCount: m?.packages.length ?? 0,
    packages: m?.packages ?? [],
    exclusions: m?.exclusions ?? [],
    layers,
    size: layers.reduce((n, l) => n + l.size, 0),
    annotations: t.manifest.annotations ?? {},
  };
}
