import * as path from 'node:path';
import {
  Annotations,
  Descriptor,
  Exclusion,
  ImageConfig,
  ImageIndex,
  InvalidArgumentError,
  MediaTypes,
  configPlatform,
  isIndexMediaType,
  parseReference,
} from '@strata/oci';
import { ociPlatform } from '@strata/debian';
import { Store, WrittenImage, writeBundle, writeImage as writeStoreImage } from '@strata/store';
import { DEFAULT_EXCLUSIONS, isoDate } from '@strata/template';
import { STEP_EXCLUSIONS } from './upper';
import { BuildContext, StageState, shadowedPackages } from './build-state';

/**
 * What the template leaves out: the FROM template's record (a rule found there again gets the
 * new matches added, so each rule is listed once), then each other rule that kept paths
 * out of this build's layers (counted per layer, so cached and fresh builds agree), and
 * every EXCLUDE glob.
 */
function exclusionsOf(state: StageState): Exclusion[] {
  const counts = new Map<string, number>();
  for (const l of [...state.layers, ...state.emptySteps]) {
    for (const [p, n] of Object.entries(l.excluded ?? {})) counts.set(p, (counts.get(p) ?? 0) + n);
  }
  // One record per rule: a rule the FROM template recorded too adds its matches to that one.
  const out: Exclusion[] = state.baseExclusions.map((e) => ({ ...e }));
  const ruleKey = (r: Pick<Exclusion, 'action' | 'pattern'>): string => `${r.action} ${r.pattern}`;
  const byRule = new Map(out.map((e) => [ruleKey(e), e]));
  const rules = [
    ...DEFAULT_EXCLUSIONS.map((r) => ({
      pattern: r.pattern,
      reason: r.reason,
      action: r.action,
    })),
    ...STEP_EXCLUSIONS.map((r) => ({ pattern: r.pattern, reason: r.reason, action: r.action })),
    ...state.excludes.map((g) => ({
      pattern: g,
      reason: 'EXCLUDE in the Stratafile',
      action: 'drop' as const,
    })),
  ];
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(r.pattern)) continue;
    seen.add(r.pattern);
    const matched = counts.get(r.pattern) ?? 0;
    if (matched === 0 && !state.excludes.includes(r.pattern)) continue;
    const key = ruleKey(r);
    const earlier = byRule.get(key);
    if (earlier !== undefined) {
      earlier.matched += matched;
      continue;
    }
    const e: Exclusion = { pattern: r.pattern, reason: r.reason, action: r.action, matched };
    out.push(e);
    byRule.set(key, e);
  }
  return out;
}

/**
 * When the stage declares (BUILDCHROOT) or inherits a buildchroot, the result is an OCI index
 * holding both images, each annotated with its role. Layers they share are stored once.
 */
export async function withBuildchroot(
  ctx: BuildContext,
  state: StageState,
  rootfs: Descriptor,
): Promise<Descriptor> {
  let bc: Descriptor | undefined = state.inheritedBuildchroot;
  if (state.buildchroot !== undefined) {
    const stage = ctx.stages.get(state.buildchroot) as StageState;
    bc = (await writeImage(ctx, stage, false)).descriptor;
  }
  if (!bc) return rootfs;
  return writeBundle(ctx.store, {
    rootfs: { descriptor: rootfs },
    buildchroot: { descriptor: bc },
  });
}

/** Write a stage's image: its metadata, config and manifest (see the store's image writer). */
export async function writeImage(
  ctx: BuildContext,
  state: StageState,
  final = true,
): Promise<WrittenImage> {
  if (state.layers.length === 0)
    throw new InvalidArgumentError(`stage ${state.name} has no layers`);
  // The date this build used (see epoch): a fully cached rebuild against the same mirror
  // state gives the very same image.
  const created = isoDate(new Date((await ctx.epoch(state)) * 1000));
  const debArch = state.debArch ?? 'amd64';
  // The name goes into the config, so into the digest: the registry the tag names is left
  // out, so that a build tagged for its registry and one tagged locally (a developer's, and a
  // CI job's that pushes it) are the same image.
  const tagName = ctx.opts.tag ? parseReference(ctx.opts.tag).repository : undefined;
  // An unnamed stage's key (`#1`) is the build's own bookkeeping, never a template's name: an
  // untagged build of one is named after its context directory.
  const stageName = state.name.startsWith('#')
    ? path.basename(ctx.context) || 'template'
    : state.name;
  const name =
    (final ? ctx.opts.name : undefined) ??
    state.labels[Annotations.title] ??
    (tagName === undefined ? stageName : final ? tagName : `${tagName}-${stageName}`);
  const env = [...state.env].map(([k, v]) => `${k}=${v}`);
  if (!state.env.has('PATH'))
    env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  const base = state.baseChain[state.baseChain.length - 1];
  const shadowed = shadowedPackages(state);
  const emptySteps = state.emptySteps.flatMap((e) => (e.record ? [e.record] : []));
  const annotations: Record<string, string> = {
    [Annotations.title]: name,
    [Annotations.created]: created,
  };
  if (base) {
    annotations[Annotations.baseName] = base.ref;
    annotations[Annotations.baseDigest] = base.digest;
  }
  return writeStoreImage(ctx.store, {
    metadata: {
      schemaVersion: 1,
      name,
      created,
      features: [...state.features].sort(),
      architecture: debArch,
      distribution: state.distribution,
      packages: state.packages,
      exclusions: exclusionsOf(state),
      layers: state.layers.map((l) => l.record),
      ...(emptySteps.length > 0 ? { emptySteps } : {}),
      baseChain: state.baseChain,
      labels: state.labels,
      ...(state.debuilds.length > 0 ? { debuilds: state.debuilds } : {}),
      ...(state.aptSources.length > 0 ? { aptSources: state.aptSources } : {}),
      ...(shadowed.length > 0 ? { shadowedPackages: shadowed } : {}),
    },
    layers: state.layers.map((l) => ({ descriptor: l.desc, diffId: l.diffId, history: l.history })),
    emptyHistory: state.emptySteps,
    platform: ociPlatform(debArch),
    env,
    labels: { ...state.labels, [Annotations.title]: name },
    annotations,
  });
}

/**
 * Store the OCI index of a multi-platform build: for each platform its image, or the rootfs and
 * buildchroot of its bundle, each entry with its `platform` (from the image's config, as docker
 * and skopeo pick by it) and its role annotation, so that selectManifest finds any one by role
 * and platform. Each platform's rootfs comes before its buildchroot: a tool that picks the first
 * image for a platform (skopeo copy --override-arch) gets the rootfs.
 */
export async function writePlatformIndex(
  store: Store,
  parts: ReadonlyArray<{ descriptor: Descriptor; config: ImageConfig }>,
): Promise<Descriptor> {
  const manifests: Descriptor[] = [];
  for (const part of parts) {
    const d = part.descriptor;
    const entries: Descriptor[] = isIndexMediaType(d.mediaType)
      ? (await store.readImageIndex(d)).manifests
      : [{ ...d, annotations: { [Annotations.role]: 'rootfs' } }];
    for (const e of entries) {
      const config = e.digest === d.digest ? part.config : await imageConfig(store, e);
      manifests.push({
        mediaType: e.mediaType,
        digest: e.digest,
        size: e.size,
        platform: configPlatform(config),
        ...(e.annotations ? { annotations: e.annotations } : {}),
      });
    }
  }
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageIndex,
    manifests,
  };
  return store.putJson(index, MediaTypes.imageIndex);
}

async function imageConfig(store: Store, d: Descriptor): Promise<ImageConfig> {
  return store.readConfig((await store.readManifest(d)).config);
}
