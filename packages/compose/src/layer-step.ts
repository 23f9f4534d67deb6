import { Digest, LayerRecord, PlatformSelector, StrataError, formatPlatform } from '@strata/oci';
import { debianArchitecture, debianArchitectureOf, notInstalled } from '@strata/debian';
import { CacheEntry, readCache } from './cache';
import type { Instruction, Location } from './stratafile';
import type { LockedStep } from './lockfile';
import { checkFrozenPackages } from './frozen';
import { BuildStepError, StageKeys, StepKey } from './stage-keys';
import {
  BuildContext,
  StageState,
  StepReport,
  chainOf,
  packageDelta,
  recordAptSources,
  shadowedBy,
} from './build-state';
import type { StepRunner } from './run-step';
import type { RemoteCache } from './remote-cache';
import { checkLocalDebs } from './copy-target';
import { copyDroppedBy } from './upper';

/**
 * A layer step (BOOTSTRAP, INSTALL, REMOVE, UPGRADE, COPY, RUN): checked against its stage,
 * keyed, taken from a build cache or run, and added to its stage and the stage's lock. A step
 * that changed nothing adds no layer, only an `empty_layer` history entry.
 */

/** What became of one step, as the build reports it, without where and when it ran. */
export type StepOutcome = Omit<
  StepReport,
  'platform' | 'stage' | 'step' | 'instruction' | 'seconds' | keyof Location
>;

/**
 * Run (or take from a cache) the layer step `ins` of `state`. `built`: the stages built so far,
 * by their index in the file (what COPY --from names); `locked`: the step the lock has in its
 * place, which --frozen holds the step's packages to.
 */
export async function layerStep(
  ctx: BuildContext,
  runner: Pick<StepRunner, 'execute'>,
  built: ReadonlyMap<number, StageState>,
  state: StageState,
  ins: Instruction,
  locked: LockedStep | undefined,
): Promise<StepOutcome> {
  checkStep(ctx.platform, state, ins);
  const source = copiedStage(ins, built);
  const keyed = await keyOf(ctx.keys, state, ins, source);
  const { key } = keyed;
  // A file that is not a .deb fails at its place on the line, not as apt's first complaint.
  if (ins.kind === 'INSTALL' && keyed.copy) await checkLocalDebs(ins, keyed.copy, ctx.context);
  // From the key, not the step's run: a cached rebuild records the same sources. Every step
  // whose key holds them (a RUN's too), or check could not recompute that key without them.
  if (keyed.sources) recordAptSources(state, keyed.sources);
  const hit = await cachedEntry(ctx, key);
  const { from } = hit;
  let entry = hit.entry;
  const cached = entry !== undefined;
  if (entry) {
    ctx.emit({ type: 'cached', layer: entry.layer });
    // What a fresh BOOTSTRAP reads from its tree; entries from before they were kept name
    // no distribution, and their architecture is their packages'.
    if (ins.kind === 'BOOTSTRAP') {
      if (entry.distribution) state.distribution = entry.distribution;
      state.debArch = entry.architecture ?? debianArchitecture(entry.packages);
    }
  } else {
    entry = await runner.execute(state, ins, key, keyed.sources, keyed.copy, source);
  }
  if (ctx.opts.cacheTo) await shareEntry(ctx.opts.cacheTo, entry, ins);
  if (ctx.opts.frozen && locked && locked.cacheKey !== key)
    checkFrozenPackages(ins, entry.record.packagesAdded ?? [], locked.packages ?? [], ctx.lockFile);
  const status = !cached ? 'run' : from !== undefined ? 'remote-cached' : 'cached';
  return {
    status,
    ...(from !== undefined ? { from } : {}),
    ...addToStage(state, ins, keyed, entry, source),
  };
}

/** Refuse a step that could not do what it says in this stage, before it is keyed or run. */
function checkStep(
  platform: PlatformSelector | undefined,
  state: StageState,
  ins: Instruction,
): void {
  if (ins.kind === 'BOOTSTRAP' && platform && ins.architecture !== undefined) {
    const want = debianArchitectureOf(platform);
    if (ins.architecture !== want)
      throw new BuildStepError(
        ins.loc,
        `BOOTSTRAP --architecture=${ins.architecture} in a build for ${formatPlatform(platform)} (${want})`,
        { hint: 'drop --architecture: a BOOTSTRAP without it takes the platform being built' },
      );
  }
  if (ins.kind === 'COPY') {
    const rule = copyDroppedBy(ins.dest, state.excludes);
    if (rule)
      throw new BuildStepError(
        ins.loc,
        `COPY to ${ins.dest}: no layer keeps ${rule.pattern} (${rule.reason}), so the copy would be lost before the next step`,
        { hint: 'copy it to another path (/opt, /usr/local, /var/lib/…)' },
      );
  }
  if (ins.kind === 'REMOVE' && state.packages.length > 0) {
    const missing = notInstalled(state.packages, ins.packages);
    if (missing.length > 0)
      throw new BuildStepError(
        ins.loc,
        `REMOVE ${missing.join(' ')}: ${missing.length === 1 ? 'it is' : 'they are'} not installed here`,
        { hint: 'drop it from the REMOVE line (removing nothing would add an empty layer)' },
      );
  }
}

/** The stage a `COPY --from` reads; undefined for any other step. */
function copiedStage(
  ins: Instruction,
  built: ReadonlyMap<number, StageState>,
): StageState | undefined {
  if (ins.kind !== 'COPY' || !ins.from) return undefined;
  // It was built before this one (stagesNeeded, in file order).
  const source = built.get(ins.from.index);
  if (source === undefined)
    throw new BuildStepError(ins.from.loc, `COPY --from=${ins.from.ref}: that stage was not built`);
  return source;
}

/** The step's key; an error in making it names the step's line. */
async function keyOf(
  keys: StageKeys,
  state: StageState,
  ins: Instruction,
  source: StageState | undefined,
): Promise<StepKey> {
  try {
    return await keys.keyFor(state, ins, chainOf(state.layers), source && chainOf(source.layers));
  } catch (e) {
    if (e instanceof StrataError && !(e instanceof BuildStepError))
      throw new BuildStepError(ins.loc, e.message, {
        cause: e,
        ...(e.hint !== undefined ? { hint: e.hint } : {}),
      });
    throw e;
  }
}

/**
 * The cache entry of `key`: the local build cache's, else the first `cacheFrom` registry's that
 * has one (`from` names it). None with `noCache`.
 */
async function cachedEntry(
  ctx: Pick<BuildContext, 'store' | 'opts' | 'emit'>,
  key: Digest,
): Promise<{ entry?: CacheEntry; from?: string }> {
  if (ctx.opts.noCache) return {};
  const local = await readCache(ctx.store, key);
  if (local) return { entry: local };
  for (const remote of ctx.opts.cacheFrom ?? []) {
    const entry = await remote.get(key);
    if (entry) {
      ctx.emit({ type: 'remote-cached', layer: entry.layer, from: remote.name });
      return { entry, from: remote.name };
    }
  }
  return {};
}

/** Put `entry` in the `cacheTo` registry; its failure is the step's. */
async function shareEntry(
  cacheTo: RemoteCache,
  entry: CacheEntry,
  ins: Instruction,
): Promise<void> {
  try {
    await cacheTo.put(entry);
  } catch (e) {
    if (e instanceof StrataError) throw new BuildStepError(ins.loc, e.message, { cause: e });
    throw e;
  }
}

/** A `COPY --from`'s record: the stage it copied and the chain ID of that stage's layers. */
function copiedFrom(
  keyed: StepKey,
  source: StageState | undefined,
): { copiedFrom?: { stage: string; chain: Digest } } {
  return source && keyed.fromChain
    ? { copiedFrom: { stage: source.name, chain: keyed.fromChain } }
    : {};
}

/**
 * Add the step that made `entry` to `state`: its layer and the packages after it, or, when it
 * changed nothing, an empty step (the packages are those before it); and its lock entry. What
 * the step's report says of it.
 */
function addToStage(
  state: StageState,
  ins: Instruction,
  keyed: StepKey,
  entry: CacheEntry,
  source: StageState | undefined,
): Omit<StepOutcome, 'status' | 'from'> {
  const { key } = keyed;
  const history = { created: entry.created, created_by: ins.text };
  if (!entry.layer || !entry.diffId) {
    const after = state.layers.length;
    state.emptySteps.push({
      after,
      history,
      record: {
        after,
        createdBy: ins.text,
        cacheKey: key,
        ...(keyed.localRepo ? { localRepo: keyed.localRepo } : {}),
        ...copiedFrom(keyed, source),
      },
      excluded: entry.excluded ?? {},
    });
    state.lock.steps.push({
      instruction: ins.text,
      cacheKey: key,
      emptyLayer: true,
      packages: [],
      removed: [],
    });
    return { cacheKey: key, emptyLayer: true, packagesAdded: [], packagesRemoved: [] };
  }
  const { gone } = packageDelta(state.packages, entry.packages);
  state.shadowed.push(...shadowedBy(gone, state.layers));
  const record: LayerRecord = { ...entry.record, diffId: entry.diffId };
  state.layers.push({
    desc: entry.layer,
    diffId: entry.diffId,
    // An entry from before records kept it does not say what its key held.
    record: {
      ...record,
      ...(keyed.localRepo ? { localRepo: keyed.localRepo } : {}),
      ...copiedFrom(keyed, source),
    },
    history,
    excluded: entry.excluded ?? {},
  });
  state.packages = entry.packages;
  const packagesAdded = entry.record.packagesAdded ?? [];
  const packagesRemoved = entry.record.packagesRemoved ?? [];
  state.lock.steps.push({
    instruction: ins.text,
    cacheKey: key,
    layer: entry.layer.digest,
    packages: packagesAdded,
    removed: packagesRemoved,
  });
  return {
    ...copiedFrom(keyed, source),
    cacheKey: key,
    layer: entry.layer,
    packagesAdded,
    packagesRemoved,
  };
}
