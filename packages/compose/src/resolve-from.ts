import * as path from 'node:path';
import {
  Annotations,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  InvalidArgumentError,
  StrataError,
  formatPlatform,
  isIndexMediaType,
  configPlatform,
  parseReference,
  platformSatisfies,
  requireManifest,
  selectManifest,
} from '@strata/oci';
import { debianArchitectureOf } from '@strata/debian';
import { basePlatform } from './platform';
import { loadArchive } from '@strata/store';
import type { LockedStage } from './lockfile';
import type { FromInstruction, StageHead } from './stratafile';
import { BuildStepError, envOfConfig, inheritScope } from './stage-keys';
import { BuildContext, BuiltLayer, EmptyStep, StageState } from './build-state';

/** The key a stage is known by: its name, or `#<index>`. */
export function stageKey(s: StageHead): string {
  return s.name ?? `#${s.index}`;
}

export function emptyState(name: string, ref: string): StageState {
  return {
    name,
    layers: [],
    emptySteps: [],
    env: new Map(),
    args: new Map(),
    labels: {},
    features: new Set(),
    excludes: [],
    packages: [],
    distribution: {},
    baseChain: [],
    debuilds: [],
    shadowed: [],
    aptSources: [],
    baseExclusions: [],
    lock: { name, from: { ref }, steps: [] },
  };
}

/** A FROM template, resolved: the image of the platform being built, and its buildchroot. */
export interface ResolvedBase {
  /** What the reference resolved to (an image, or an index). */
  desc: Descriptor;
  parts: { rootfs: Descriptor; buildchroot?: Descriptor };
  manifest: ImageManifest;
  config: ImageConfig;
}

/**
 * Resolve the template a FROM names (a file, a store tag or a registry reference). `locked`: the
 * stage's entry in Stratafile.lock, which --frozen holds the result to.
 */
export async function resolveBase(
  ctx: BuildContext,
  f: FromInstruction,
  locked?: LockedStage,
): Promise<ResolvedBase> {
  // What the lock recorded for this very reference (an edited FROM line names another base).
  const lockedDigest = locked?.from.ref === f.ref ? locked.from.digest : undefined;
  let desc: Descriptor;
  let parts: { rootfs: Descriptor; buildchroot?: Descriptor };
  try {
    if (f.refKind === 'file') {
      const file = path.resolve(ctx.context, f.ref);
      const loaded = await loadArchive(ctx.store, file);
      if (loaded.length !== 1)
        throw new InvalidArgumentError(
          `${f.ref} holds ${loaded.length} images; FROM needs exactly one`,
        );
      desc = (loaded[0] as { descriptor: Descriptor }).descriptor;
    } else if (f.refKind === 'registry') {
      if (!ctx.opts.resolveRemote)
        throw new InvalidArgumentError(
          `${f.ref} is in a registry, and this build cannot reach registries`,
        );
      desc = await ctx.opts.resolveRemote(f.ref).catch(async (e: unknown) => {
        const stored = await storedCopy(ctx, f, e, lockedDigest);
        if (!stored) throw e;
        ctx.emit({
          type: 'warning',
          message: `FROM ${f.ref}: the registry could not be reached (${(e as Error).message}); using the copy the store holds, ${stored.digest}`,
          loc: f.loc,
        });
        return stored;
      });
    } else {
      desc = await ctx.store.resolve(f.ref);
    }
    parts = await rootfsManifest(ctx, desc, 'the template');
  } catch (e) {
    throw onFromLine(f, e);
  }
  if (ctx.opts.frozen && lockedDigest !== undefined && lockedDigest !== desc.digest) {
    throw new BuildStepError(
      f.loc,
      `--frozen: FROM ${f.ref} now resolves to ${desc.digest}, but ${path.basename(ctx.lockFile)} has ${lockedDigest}`,
      { hint: 'the base template moved; rebuild without --frozen to accept it' },
    );
  }
  const manifest = await ctx.store.readManifest(parts.rootfs);
  const config = await ctx.store.readConfig(manifest.config);
  if (ctx.platform && !platformSatisfies(configPlatform(config), ctx.platform)) {
    throw new BuildStepError(
      f.loc,
      `FROM ${f.ref}: an image for ${formatPlatform(configPlatform(config))}, not for ${formatPlatform(ctx.platform)}`,
      { hint: 'FROM a template of that platform, or a multi-platform one that holds it' },
    );
  }
  return { desc, parts, manifest, config };
}

/**
 * The image the store holds for a registry reference the registry could not be asked about, as
 * docker builds on an image it has: the one Stratafile.lock recorded, else (not with --frozen,
 * which takes nothing but what the lock says) the one the last pull of the reference tagged.
 * Nothing when the registry did answer: a refusal or a missing tag is its word, not an outage.
 */
async function storedCopy(
  ctx: BuildContext,
  f: FromInstruction,
  e: unknown,
  lockedDigest: Digest | undefined,
): Promise<Descriptor | undefined> {
  const { isUnreachable, defaultLocalTag } = await import('@strata/registry');
  if (!isUnreachable(e)) return undefined;
  const ref = parseReference(f.ref);
  const tag = defaultLocalTag(ref);
  // A reference by digest names one image whatever the registry says.
  const want = ref.digest ?? lockedDigest;
  if (want !== undefined) {
    // Only a tagged image: an untagged one may have lost blobs to a gc.
    const held = (await ctx.store.list()).filter((x) => x.descriptor.digest === want);
    const hit = held.find((x) => x.ref === tag) ?? held[0];
    if (hit) return hit.descriptor;
  }
  if (ctx.opts.frozen) return undefined;
  return ctx.store.resolve(tag).catch(() => undefined);
}

/**
 * A failure to read the FROM template, as an error of the FROM line; its hint (is the registry
 * running? trust its CA?) is what makes the line useful, so it is kept.
 */
function onFromLine(f: StageHead['from'], e: unknown): unknown {
  if (!(e instanceof StrataError)) return e;
  return new BuildStepError(f.loc, `FROM ${f.ref}: ${e.message}`, {
    cause: e,
    ...(e.hint !== undefined ? { hint: e.hint } : {}),
  });
}

/**
 * The state a stage starts in: its FROM template (`base`, when it was resolved already), an
 * earlier stage's result, or nothing for scratch.
 */
export async function resolveFrom(
  ctx: BuildContext,
  stage: StageHead,
  locked: LockedStage | undefined,
  base?: ResolvedBase,
): Promise<StageState> {
  const f = stage.from;
  const name = stageKey(stage);
  if (f.refKind === 'scratch') {
    const state = emptyState(name, 'scratch');
    // A BOOTSTRAP without --architecture takes the platform being built.
    if (ctx.platform) state.debArch = debianArchitectureOf(ctx.platform);
    return state;
  }
  const earlier = f.refKind === 'stage' ? ctx.stages.get(f.ref) : undefined;
  if (earlier) {
    return {
      ...earlier,
      ...inheritScope(earlier),
      name,
      layers: [...earlier.layers],
      emptySteps: [...earlier.emptySteps],
      labels: { ...earlier.labels },
      features: new Set(earlier.features),
      packages: [...earlier.packages],
      baseChain: [...earlier.baseChain],
      debuilds: [...earlier.debuilds],
      shadowed: [...earlier.shadowed],
      aptSources: [...earlier.aptSources],
      lock: { name, from: { ref: f.ref }, steps: [] },
    };
  }
  const { desc, parts, manifest, config } = base ?? (await resolveBase(ctx, f, locked));
  try {
    await ctx.inheritDebs(desc, parts.rootfs);
  } catch (e) {
    throw onFromLine(f, e);
  }
  const lockedDigest = locked?.from.digest;
  // A FROM line that was edited names another base; only the same reference can have moved.
  if (lockedDigest !== undefined && lockedDigest !== desc.digest && locked?.from.ref === f.ref) {
    ctx.emit({
      type: 'base-moved',
      ref: f.ref,
      from: lockedDigest,
      to: desc.digest,
      loc: f.loc,
    });
  }
  const meta = config.strata;
  const nonEmpty = (config.history ?? []).filter((h) => !h.empty_layer);
  const layers: BuiltLayer[] = manifest.layers.map((l, i) => {
    const diffId = config.rootfs.diff_ids[i] as Digest;
    const record = meta?.layers.find((r) => r.diffId === diffId) ?? {
      diffId,
      createdBy: nonEmpty[i]?.created_by ?? '',
    };
    return { desc: l, diffId, record, history: nonEmpty[i] ?? { created_by: record.createdBy } };
  });
  const state = emptyState(name, f.ref);
  state.lock.from.digest = desc.digest;
  if (parts.buildchroot) state.inheritedBuildchroot = parts.buildchroot;
  state.layers = layers;
  state.emptySteps = emptyStepsOf(config);
  state.from = { ref: f.ref, loc: f.loc, layers: layers.length };
  state.env = envOfConfig(config);
  state.labels = { ...(meta?.labels ?? {}) };
  state.features = new Set(meta?.features ?? []);
  state.packages = meta?.packages ?? [];
  state.shadowed = [...(meta?.shadowedPackages ?? [])];
  state.baseExclusions = meta?.exclusions ?? [];
  state.distribution = meta?.distribution ?? {};
  state.debArch = meta?.architecture;
  state.aptSources = [...(meta?.aptSources ?? [])];
  // The chain names each base by where it can be found downstream: what FROM said, or for a
  // local tag that a pull made, the registry reference it was pulled from (a local name
  // means nothing on another machine).
  const pulledFrom = f.refKind === 'local' ? desc.annotations?.[Annotations.pulledFrom] : undefined;
  state.baseChain = [
    ...(meta?.baseChain ?? []),
    { name: meta?.name ?? f.ref, ref: pulledFrom ?? f.ref, digest: desc.digest },
  ];
  return state;
}

/**
 * A template reference may name an index holding rootfs + buildchroot, for one platform or for
 * several: build on the rootfs of the platform being built, and remember its buildchroot so the
 * result inherits it. Without --platform, a multi-platform template gives the host's platform,
 * as docker does; any other index gives what it holds.
 */
async function rootfsManifest(
  ctx: BuildContext,
  desc: Descriptor,
  ref: string,
): Promise<{ rootfs: Descriptor; buildchroot?: Descriptor }> {
  if (!isIndexMediaType(desc.mediaType)) return { rootfs: desc };
  const index = await ctx.store.readImageIndex(desc);
  const platform = basePlatform(index, ctx.platform);
  const sel = platform ? { platform } : {};
  const rootfs = requireManifest(index, { ...sel, role: 'rootfs' }, ref);
  const bc = selectManifest(index, { ...sel, role: 'buildchroot' });
  if (!bc.ok && bc.reason === 'ambiguous')
    requireManifest(index, { ...sel, role: 'buildchroot' }, ref);
  return bc.ok ? { rootfs, buildchroot: bc.descriptor } : { rootfs };
}

/**
 * The empty history entries of a FROM template, each after the layers whose entries come before
 * it, with the record of the Stratafile step that made it (matched in order).
 */
function emptyStepsOf(config: ImageConfig): EmptyStep[] {
  const records = [...(config.strata?.emptySteps ?? [])];
  const out: EmptyStep[] = [];
  let after = 0;
  for (const h of config.history ?? []) {
    if (!h.empty_layer) {
      after++;
      continue;
    }
    const at = records.findIndex((r) => r.after === after && r.createdBy === h.created_by);
    const record = at >= 0 ? records.splice(at, 1)[0] : undefined;
    out.push({ after, history: h, ...(record ? { record } : {}) });
  }
  return out;
}
