import {
  Annotations,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  Image,
  ImageIndex,
  InvalidArgumentError,
  InvalidDocumentError,
  MediaTypes,
  PlatformSelector,
  TemplateMetadata,
  assertValid,
  formatPlatform,
  isImageMediaType,
  platformsOf,
  roleOf,
  Selector,
  selectManifest,
  requireManifest,
  validateTemplateMetadata,
} from '@strata/oci';
import { ArchiveLayout, isReferrerRecord } from '@strata/store';

/**
 * Where `strata inspect` reads a template: the store, or an archive (a `.tmpl.img`) read in
 * place, as diff, sbom and report read one.
 */
export interface TemplateSource {
  resolve(ref: string): Promise<Descriptor>;
  selectImage(desc: Descriptor, sel: Selector, what: string): Promise<Image>;
  readImage(
    desc: Descriptor,
    what: string,
  ): Promise<{ manifest: ImageManifest; config: ImageConfig }>;
  readImageIndex(desc: Descriptor): Promise<ImageIndex>;
  readManifest(desc: Descriptor): Promise<ImageManifest>;
  referrers(subject: Digest): Promise<Descriptor[]>;
}

/** An archive as a TemplateSource: its one image (or index), and the artifacts it carries. */
export function archiveSource(archive: ArchiveLayout): TemplateSource {
  const entries = archive.index.manifests.filter((d) => !isReferrerRecord(d));
  return {
    resolve: async () => {
      const only = entries.length === 1 ? entries[0] : undefined;
      if (!only)
        throw new InvalidArgumentError(
          `${archive.file} holds ${entries.length} images, not one: load it and name one by its tag`,
        );
      return only;
    },
    selectImage: (_desc, sel) => archive.selectImage(sel),
    readImage: async (desc, what) => {
      if (!isImageMediaType(desc.mediaType))
        throw new InvalidDocumentError(`image ${what}`, [
          `unsupported media type ${desc.mediaType}`,
        ]);
      const img = archive.image(desc);
      await img.layers();
      return { manifest: await img.manifest(), config: await img.config() };
    },
    readImageIndex: (desc) => archive.indexOf(desc).indexManifest(),
    readManifest: (desc) => archive.image(desc).manifest(),
    referrers: async (subject) =>
      (await archive.content.referrers?.({ digest: subject } as Descriptor)) ?? [],
  };
}

export interface LoadedTemplate {
  ref: string;
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** Strata metadata; undefined for a plain OCI image that Strata did not make. */
  metadata: TemplateMetadata | undefined;
}

/**
 * Load an image from the store (of a multi-platform template: the one for `platform`), checking
 * its template metadata against the schema.
 */
export async function loadTemplate(
  store: TemplateSource,
  ref: string,
  platform?: PlatformSelector,
): Promise<LoadedTemplate> {
  const top = await store.resolve(ref);
  const image = await store.selectImage(top, platform ? { platform } : {}, ref);
  return loadImage(store, ref, image.descriptor);
}

async function loadImage(
  store: TemplateSource,
  ref: string,
  descriptor: Descriptor,
): Promise<LoadedTemplate> {
  const { manifest, config } = await store.readImage(descriptor, ref);
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
  /** `name=version` of the packages the layer added or changed, as its metadata records them. */
  packagesAdded?: string[];
  /** The packages the layer removed. */
  packagesRemoved?: string[];
  /** Of packagesAdded, those from .deb files of the build context. */
  localDebs?: string[];
  /** Of packagesAdded, those from the build's own packages (DEBUILD's). */
  ownDebs?: string[];
  /** A `COPY --from` layer: the stage it copied from, and the chain ID of that stage's result. */
  copiedFrom?: { stage: string; chain: Digest };
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
  /** Packages a later layer removed or replaced, which lower layers' blobs still hold. */
  shadowedPackages: NonNullable<TemplateMetadata['shadowedPackages']>;
  exclusions: TemplateMetadata['exclusions'];
  layers: LayerSummary[];
  /**
   * The steps that changed nothing and so made no layer, as `docker history` shows them: each
   * with how many of `layers` come before it.
   */
  emptySteps: Array<{ after: number; createdBy: string }>;
  size: number;
  /** The templates this one was built on, the root base first and the direct base last. */
  baseChain: NonNullable<TemplateMetadata['baseChain']>;
  /** The apt sources its packages came from, as its metadata records them. */
  aptSources: string[];
  /** The image config's environment (`ENV`, the base's included), as `NAME=value`. */
  env: string[];
  /** The image config's labels (`LABEL`). */
  labels: Record<string, string>;
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
      ...(record?.packagesAdded?.length ? { packagesAdded: record.packagesAdded } : {}),
      ...(record?.packagesRemoved?.length ? { packagesRemoved: record.packagesRemoved } : {}),
      ...(record?.localDebs?.length ? { localDebs: record.localDebs } : {}),
      ...(record?.ownDebs?.length ? { ownDebs: record.ownDebs } : {}),
      ...(record?.copiedFrom ? { copiedFrom: record.copiedFrom } : {}),
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
    shadowedPackages: m?.shadowedPackages ?? [],
    exclusions: m?.exclusions ?? [],
    layers,
    emptySteps: (m?.emptySteps ?? []).map(({ after, createdBy }) => ({ after, createdBy })),
    size: layers.reduce((n, l) => n + l.size, 0),
    baseChain: m?.baseChain ?? [],
    aptSources: m?.aptSources ?? [],
    env: t.config.config?.Env ?? [],
    labels: t.config.config?.Labels ?? {},
    annotations: t.manifest.annotations ?? {},
  };
}

export interface TemplateSet {
  ref: string;
  descriptor: Descriptor;
  /**
   * The images: one for a plain template; rootfs and buildchroot for a template index; each
   * platform's of a multi-platform one (only those of the platform asked for, when one is).
   */
  images: Array<{ role: string; platform?: string; template: LoadedTemplate }>;
  /** The platforms of a multi-platform template index (`os/arch[/variant]`). */
  platforms?: string[];
  /** The artifacts attached to the index or to one of these images (OCI 1.1 referrers). */
  artifacts: ArtifactSummary[];
}

/** An artifact attached to a template (its .debs, say), as `strata inspect` shows it. */
export interface ArtifactSummary {
  digest: Digest;
  artifactType: string;
  /** The manifest or index it is attached to. */
  subject: Digest;
  /** How many files (layers) it holds, and their titles. */
  files: number;
  titles: string[];
  annotations?: Record<string, string>;
}

/** The artifacts attached to each of `subjects`, in that order. */
async function artifactsOf(
  store: TemplateSource,
  subjects: Descriptor[],
): Promise<ArtifactSummary[]> {
  const out: ArtifactSummary[] = [];
  for (const s of subjects) {
    for (const a of await store.referrers(s.digest)) {
      const m = await store.readManifest(a);
      out.push({
        digest: a.digest,
        artifactType: a.artifactType ?? m.config.mediaType,
        subject: s.digest,
        files: m.layers.length,
        titles: m.layers.map((l) => l.annotations?.[Annotations.title] ?? l.digest),
        ...(a.annotations ? { annotations: a.annotations } : {}),
      });
    }
  }
  return out;
}

/**
 * Load a template, or each image of a template index (rootfs + buildchroot, for each platform).
 * With `platform`, only that platform's images, chosen by selectManifest.
 */
export async function loadTemplateSet(
  store: TemplateSource,
  ref: string,
  platform?: PlatformSelector,
): Promise<TemplateSet> {
  const descriptor = await store.resolve(ref);
  const name = descriptor.annotations?.[Annotations.refName] ?? ref;
  if (descriptor.mediaType !== MediaTypes.imageIndex) {
    const template = await loadTemplate(store, ref, platform);
    return {
      ref: name,
      descriptor,
      images: [{ role: 'rootfs', template }],
      artifacts: await artifactsOf(store, [template.descriptor]),
    };
  }
  const index = await store.readImageIndex(descriptor);
  const platforms = platformsOf(index).map(formatPlatform);
  let manifests = index.manifests;
  if (platform) {
    manifests = [requireManifest(index, { role: 'rootfs', platform }, ref)];
    const bc = selectManifest(index, { role: 'buildchroot', platform });
    if (bc.ok) manifests.push(bc.descriptor);
  }
  const images = [];
  for (const m of manifests) {
    const role = roleOf(m) ?? 'image';
    const p = m.platform ? formatPlatform(m.platform) : undefined;
    const what = `${name} (${role}${p && platforms.length > 1 ? ` ${p}` : ''})`;
    images.push({
      role,
      ...(p ? { platform: p } : {}),
      template: await loadImage(store, what, m),
    });
  }
  return {
    ref: name,
    descriptor,
    images,
    ...(platforms.length > 1 ? { platforms } : {}),
    artifacts: await artifactsOf(store, [descriptor, ...images.map((i) => i.template.descriptor)]),
  };
}

/** What `strata inspect --json` prints: the rootfs summary, plus every image of an index. */
export function summarizeSet(set: TemplateSet): TemplateSummary & {
  images?: Array<{ role: string; platform?: string } & TemplateSummary>;
  sharedLayers?: Array<{ digest: Digest; size: number }>;
  platforms?: string[];
  artifacts: ArtifactSummary[];
} {
  const summaries = set.images.map((i) => ({
    role: i.role,
    ...(i.platform ? { platform: i.platform } : {}),
    ...summarize(i.template),
  }));
  const main = summaries.find((s) => s.role === 'rootfs') ?? summaries[0];
  if (!main) throw new InvalidDocumentError(`index ${set.ref}`, ['holds no image']);
  if (set.images.length === 1) {
    return { ...summarize(set.images[0]!.template), artifacts: set.artifacts };
  }
  const seen = new Map<Digest, number>();
  for (const s of summaries)
    for (const l of new Set(s.layers.map((x) => x.digest))) seen.set(l, (seen.get(l) ?? 0) + 1);
  const sharedLayers = main.layers
    .filter((l) => (seen.get(l.digest) ?? 0) > 1)
    .map((l) => ({ digest: l.digest, size: l.size }));
  const { role: _role, platform: _platform, ...rest } = main;
  return {
    ...rest,
    ref: set.ref,
    digest: set.descriptor.digest,
    mediaType: set.descriptor.mediaType,
    ...(set.platforms ? { platforms: set.platforms } : {}),
    images: summaries,
    sharedLayers,
    artifacts: set.artifacts,
  };
}
