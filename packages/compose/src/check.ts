import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  DebuildRecord,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  EmptyStepRecord,
  LayerRecord,
  InvalidArgumentError,
  NotFoundError,
  PlatformSelector,
  StrataError,
  chainId,
  counted,
  digestHex,
  isIndexMediaType,
  parseReference,
} from '@strata/oci';
import { Store, loadArchive } from '@strata/store';
import {
  AptSources,
  compareDebianVersions,
  debianArchitectureOf,
  hostSources,
  makeSources,
} from '@strata/debian';
import { lockPathFor, readLockFile } from './lockfile';
import { hostDebianArchitecture } from '@strata/tools';
import { basePlatform, platformArgs } from './platform';
import { aptStateDir } from './apt-state';
import { availableVersions } from './apt-versions';
import {
  BuildStepError,
  LayerInstruction,
  StageKeys,
  StepKey,
  StepScope,
  copyScope,
  envOfConfig,
  inheritScope,
  isLayerStep,
  startStage,
} from './stage-keys';
import {
  DebuildInstruction,
  Location,
  Stage,
  StageHead,
  Stratafile,
  parseStageHeads,
  parseStratafile,
} from './stratafile';
import { debuildKey } from './debuild-key';
import { publishedAptSources } from './build-state';

// ---- the check ------------------------------------------------------------------------------

/**
 * The keys of a check run without --apt-sources, on the apt sources the template records. The
 * record is every `deb` entry its steps and its bases' used, so the build's own sources file is
 * the entries its base did not have, or all of them (a file that repeated the base's); the one
 * that gives the first step on the default sources its recorded key is taken. `matched` is false
 * when neither does (SOURCES files, or credentials the record leaves out, were in the build).
 */
async function recordedSourcesKeys(
  keyOpts: { context: string; stratafile?: string; aptAuth?: Buffer },
  recorded: readonly string[],
  fromBase: readonly string[],
  steps: ReadonlyArray<{
    ins: LayerInstruction;
    scope: StepScope;
    record: LayerRecord | EmptyStepRecord | undefined;
    parent: Digest | undefined;
  }>,
): Promise<{ keys: StageKeys; matched: boolean }> {
  const own = recorded.filter((e) => !fromBase.includes(e));
  const sourcesOf = (entries: readonly string[]) =>
    makeSources(entries.join('\n'), "the template's apt sources");
  const keysOf = (sources: AptSources) => new StageKeys({ ...keyOpts, defaultSources: sources });
  const probe = steps.find((st) => st.scope.sources === undefined && st.record?.cacheKey);
  if (!probe) return { keys: keysOf(sourcesOf(recorded)), matched: true };
  // The host's last: a build that read the host's sources (with credentials the record leaves
  // out) was checked on them before, and still is.
  const candidates = [
    ...(own.length > 0 && own.length < recorded.length ? [sourcesOf(own)] : []),
    sourcesOf(recorded),
    await hostSources().catch(() => undefined),
  ];
  for (const c of candidates) {
    if (c === undefined) continue;
    const keys = keysOf(c);
    keys.localRepo = probe.record?.localRepo;
    const keyed = await keys.keyFor(probe.scope, probe.ins, probe.parent).catch(() => undefined);
    if (keyed?.key === probe.record?.cacheKey) return { keys, matched: true };
  }
  return { keys: keysOf(sourcesOf(recorded)), matched: false };
}

/**
 * Where each of `n` layer steps is in the template: its record, and how many layers come before
 * it. A step that changed nothing (the next of `empty`, recorded after that many layers) has no
 * layer; each other step has the next layer after the base's `nBase`.
 */
function placeSteps(
  n: number,
  nBase: number,
  diffIds: readonly Digest[],
  records: readonly LayerRecord[],
  empty: readonly EmptyStepRecord[],
): Array<{ record: LayerRecord | EmptyStepRecord | undefined; layers: number }> {
  const out: Array<{ record: LayerRecord | EmptyStepRecord | undefined; layers: number }> = [];
  let li = nBase;
  let e = 0;
  for (let i = 0; i < n; i++) {
    const next = empty[e];
    if (next !== undefined && next.after === li) {
      out.push({ record: next, layers: li });
      e++;
      continue;
    }
    out.push({
      record: li < 0 ? undefined : (records.find((r) => r.diffId === diffIds[li]) ?? records[li]),
      layers: li,
    });
    li++;
  }
  return out;
}

export interface CheckOptions {
  /** Path of the Stratafile the template was built from. */
  file: string;
  /** Build context (default: the Stratafile's directory). */
  context?: string;
  /** Stage the template was built from (default: the last). */
  target?: string;
  buildArgs?: Record<string, string>;
  /**
   * apt sources file the build used, as for `strata build`; default: the apt sources the
   * template records it was built with (as `strata sources` reads them), else the build host's.
   * Sources already read from the file are taken as they are (see StageKeysOptions).
   */
  aptSources?: string | AptSources;
  /** Of a multi-platform template, the platform to check (as `strata build --platform` built it). */
  platform?: PlatformSelector;
  /** Skip downloading the Packages indices (no newer-version report). */
  noPackages?: boolean;
  /** apt's auth.conf for private repositories, as `strata build` takes it (the `apt-auth` secret). */
  aptAuth?: Buffer;
  /**
   * Resolves a registry reference (a registry FROM, or an ancestor recorded by its registry
   * reference) the way `strata build` resolves its FROM. Needed when there is one.
   */
  resolveRemote?: (ref: string) => Promise<Descriptor>;
}

/**
 * A base or an ancestor whose registry could not tell what it resolves to now (unreachable,
 * refused, or answering nonsense): the check cannot say stale or up to date. Keeps the code and
 * hint of the registry's error, and locates the FROM it was reached by (an ancestor's too), so
 * that `--json` names the file, line and column its message does.
 */
export class BaseUnresolvedError extends BuildStepError {
  constructor(
    readonly ref: string,
    loc: Location,
    what: string,
    cause: StrataError,
  ) {
    super(loc, `${what} could not be checked: ${cause.message}`, {
      cause,
      ...(cause.hint !== undefined ? { hint: cause.hint } : {}),
    });
  }
}

function isRegistryRef(ref: string): boolean {
  try {
    return parseReference(ref).registry !== undefined;
  } catch {
    return false;
  }
}

export type CheckReasonKind = 'base' | 'step' | 'structure' | 'package';

export interface CheckReason {
  kind: CheckReasonKind;
  message: string;
  loc?: Location;
}

export interface NewerPackage {
  name: string;
  architecture: string;
  installed: string;
  available: string;
}

export interface CheckResult {
  ref: string;
  digest: Digest;
  upToDate: boolean;
  /** Why the template is stale, one sentence each. */
  reasons: CheckReason[];
  /** Installed packages that the current apt indices have in a newer version. */
  newer: NewerPackage[];
  /** Things that could not be checked. */
  notes: string[];
}

function where(loc: Location): string {
  return `${loc.file}:${loc.line}:${loc.column}`;
}

/** The rootfs image of a base `desc`, selected as build selects it; `what` names it in errors. */
async function imageOf(
  store: Store,
  desc: Descriptor,
  what: string,
  platform?: PlatformSelector,
): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
  const at = isIndexMediaType(desc.mediaType)
    ? basePlatform(await store.readImageIndex(desc), platform)
    : undefined;
  const image = await store.selectImage(desc, at ? { platform: at } : {}, what);
  const manifest = await store.readManifest(image.descriptor);
  return { manifest, config: await store.readConfig(manifest.config) };
}

/**
 * Is a built template up to date with its Stratafile, its base templates and the current apt
 * indices? Recomputes every step's cache key with the build's own StageKeys, on the template's
 * own layers, and compares it with the key recorded in the template's metadata.
 */
export async function checkTemplate(
  store: Store,
  ref: string,
  opts: CheckOptions,
): Promise<CheckResult> {
  const desc = await store.resolve(ref);
  // The template itself: of a multi-platform one, the platform asked for (none: ambiguous); a
  // single image only when it is of that platform.
  const image = await store.selectImage(
    desc,
    opts.platform ? { platform: opts.platform } : {},
    ref,
  );
  const config = await store.readConfig((await store.readManifest(image.descriptor)).config);
  const meta = config.strata;
  if (!meta) throw new NotFoundError(`${ref} has no strata metadata; it is not a template`);
  const text = await fsp.readFile(opts.file, 'utf8').catch(() => {
    throw new NotFoundError(`no Stratafile at ${opts.file}`);
  });
  const given = opts.buildArgs ?? {};
  const notes: string[] = [];
  // The build's --build-arg values are in its lock: a check without them takes them from
  // there, else every step an ARG reaches would look stale for a reason it does not say.
  const defaults = {
    ...platformArgs(opts.platform),
    ...given,
  };
  const locked = await lockedArgValues(opts.file, opts.platform);
  const declared = argDefaults(text, opts.file, defaults);
  const fromLock: Record<string, string> = {};
  for (const [name, value] of Object.entries(locked.args)) {
    if (Object.hasOwn(given, name) || !declared.has(name) || declared.get(name) === value) continue;
    fromLock[name] = value;
    notes.push(
      `ARG ${name}: ${path.basename(locked.file)} has ${JSON.stringify(value)}, which the check uses (the Stratafile's default is ${declared.get(name) === undefined ? 'unset' : JSON.stringify(declared.get(name))}); --build-arg ${name}=… to check another value`,
    );
  }
  const buildArgs = { ...defaults, ...fromLock, ...given };
  const heads = parseStageHeads(text, opts.file, buildArgs);
  const context = path.resolve(opts.context ?? path.dirname(opts.file));
  const reasons: CheckReason[] = [];
  const resolveRemote = async (ref: string): Promise<Descriptor> => {
    if (!opts.resolveRemote)
      throw new InvalidArgumentError(
        `${ref} is in a registry, and this check cannot reach registries`,
      );
    return opts.resolveRemote(ref);
  };

  // The chain of stages the template's layers come from: target, its FROM stage, … root.
  const byName = new Map(heads.filter((s) => s.name).map((s) => [s.name as string, s]));
  let head: StageHead | undefined = opts.target ? byName.get(opts.target) : heads[heads.length - 1];
  if (!head) throw new NotFoundError(`no stage named ${opts.target} in ${opts.file}`);
  const chainHeads: StageHead[] = [];
  while (head) {
    chainHeads.unshift(head);
    head = head.from.refKind === 'stage' ? byName.get(head.from.ref) : undefined;
  }
  const root = chainHeads[0] as StageHead;

  // Base templates.
  const built = meta.baseChain ?? [];
  const direct = root.from.refKind === 'scratch' ? undefined : built[built.length - 1];
  let baseConfig: ImageConfig | undefined;
  /** The reason a FROM that no longer resolves gave, when it did. */
  let unresolved: CheckReason | undefined;
  if (root.from.refKind !== 'scratch') {
    let now: Descriptor | undefined;
    try {
      if (root.from.refKind === 'file') {
        const loaded = await loadArchive(store, path.resolve(context, root.from.ref));
        now = loaded[0]?.descriptor;
      } else if (root.from.refKind === 'registry') {
        now = await resolveRemote(root.from.ref);
      } else now = await store.resolve(root.from.ref);
    } catch (e) {
      if (!(e instanceof StrataError)) throw e;
      // Only a registry that says "not there" answers the question; any other failure leaves it
      // open, and an open question is never "up to date".
      if (root.from.refKind === 'registry' && e.code !== 'NOT_FOUND')
        throw new BaseUnresolvedError(root.from.ref, root.from.loc, `FROM ${root.from.ref}`, e);
      unresolved = {
        kind: 'base',
        loc: root.from.loc,
        message: `FROM ${root.from.ref} no longer resolves: ${e.message}`,
      };
      reasons.push(unresolved);
    }
    if (now && !direct) {
      reasons.push({
        kind: 'base',
        loc: root.from.loc,
        message: `FROM ${root.from.ref}: the template records no base chain`,
      });
    } else if (now && direct && now.digest !== direct.digest) {
      reasons.push({
        kind: 'base',
        loc: root.from.loc,
        message: `FROM ${root.from.ref} moved: the template was built on ${direct.digest}, it now resolves to ${now.digest}`,
      });
    }
    // The base as it was when built gives the ENV the steps saw; else the current one.
    const baseDesc = direct ? await store.resolve(direct.digest).catch(() => undefined) : undefined;
    const at = baseDesc ?? now;
    if (at) baseConfig = (await imageOf(store, at, root.from.ref, opts.platform)).config;
  }
  // Without the base (gone from its registry and not in the store), the steps' keys cannot be
  // recomputed: its ENV is in every one of them, and comparing without it would call every step
  // changed (apt indices, COPY sources) for what is only the base's absence.
  const stepsUnchecked = unresolved !== undefined && baseConfig === undefined;
  if (unresolved && stepsUnchecked)
    unresolved.message += '; its steps were not compared (their keys hold the base ENV)';
  // Ancestors further down the chain, by the references they were recorded under: a registry
  // reference is resolved there, as a FROM is; a local name only in this store.
  for (const anc of direct ? built.slice(0, -1) : built) {
    let now: Descriptor | undefined;
    const remote = isRegistryRef(anc.ref);
    try {
      now = remote ? await resolveRemote(anc.ref) : await store.resolve(anc.ref);
    } catch (e) {
      if (!remote) {
        notes.push(`ancestor ${anc.ref} (${anc.digest}) is not in the store; not checked`);
        continue;
      }
      if (!(e instanceof StrataError)) throw e;
      if (e.code !== 'NOT_FOUND')
        throw new BaseUnresolvedError(anc.ref, root.from.loc, `ancestor ${anc.ref}`, e);
      reasons.push({
        kind: 'base',
        message: `ancestor ${anc.ref} no longer resolves: ${e.message}`,
      });
      continue;
    }
    if (now.digest !== anc.digest) {
      reasons.push({
        kind: 'base',
        message: `ancestor ${anc.ref} moved: the template was built on ${anc.digest}, it now resolves to ${now.digest}`,
      });
    }
  }

  // The root's instructions substitute its base's ENV, as the build's did.
  const sf: Stratafile = parseStratafile(text, opts.file, buildArgs, {
    baseEnv: (i) => (i === root.index && baseConfig ? envOfConfig(baseConfig) : undefined),
  });
  const chain = chainHeads.map((h) => sf.stages[h.index] as Stage);

  // Steps: walk the chain as the build does, then recompute each key on the template's own layers.
  const diffIds = config.rootfs.diff_ids as Digest[];
  const records: LayerRecord[] = meta.layers;
  const keyOpts = {
    context,
    stratafile: opts.file,
    ...(opts.aptAuth !== undefined ? { aptAuth: opts.aptAuth } : {}),
  };
  let keys = new StageKeys({ ...keyOpts, aptSources: opts.aptSources });
  const steps: Array<{ ins: LayerInstruction; scope: StepScope }> = [];
  const debuilds: Array<{ ins: DebuildInstruction; scope: StepScope }> = [];
  let scope: StepScope = {
    env: envOfConfig(baseConfig),
    args: new Map(),
    excludes: [],
    // The steps ran as the template's architecture (its BOOTSTRAP's or its base's).
    ...(meta.architecture ? { debArch: meta.architecture } : {}),
  };
  for (const st of chain) {
    if (st.index !== root.index) scope = inheritScope(scope);
    startStage(scope, st.steps);
    for (const ins of st.steps) {
      if (await keys.apply(scope, ins)) continue;
      if (ins.kind === 'DEBUILD') debuilds.push({ ins, scope: copyScope(scope) });
      else if (isLayerStep(ins)) steps.push({ ins, scope: copyScope(scope) });
    }
  }
  // Steps that changed nothing made no layer: the metadata lists them, the base's first.
  const ownEmpty = (meta.emptySteps ?? []).slice(baseConfig?.strata?.emptySteps?.length ?? 0);
  const nBase = diffIds.length - (steps.length - ownEmpty.length);
  const placed = placeSteps(steps.length, nBase, diffIds, records, ownEmpty);
  if (nBase < 0 || (root.from.refKind === 'scratch' && nBase !== 0)) {
    reasons.push({
      kind: 'structure',
      message: `the Stratafile has ${counted(steps.length, 'layer step')}, but the template has ${counted(diffIds.length, 'layer')}${nBase > 0 ? ` (${nBase} from scratch?)` : ''}`,
    });
  }
  // Without a file, the apt sources the template was built with, not the host's: a check on
  // another machine than the build's would otherwise find every apt step stale.
  if (
    opts.aptSources === undefined &&
    meta.aptSources !== undefined &&
    meta.aptSources.length > 0
  ) {
    const chosen = await recordedSourcesKeys(
      keyOpts,
      meta.aptSources,
      baseConfig?.strata?.aptSources ?? [],
      stepsUnchecked
        ? []
        : steps.map((st, i) => ({
            ...st,
            record: placed[i]?.record,
            parent: chainId(diffIds.slice(0, placed[i]?.layers ?? 0)),
          })),
    );
    keys = chosen.keys;
    if (!chosen.matched)
      notes.push(
        "the apt sources the template records do not give its steps' keys (a build that read SOURCES files or sources with credentials?): give check the build's --apt-sources",
      );
  }
  reasons.push(...(await checkDebuilds(keys, context, debuilds, meta.debuilds ?? [])));
  for (const [i, { ins, scope: s }] of stepsUnchecked ? [] : steps.entries()) {
    const at = placed[i];
    if (!at || at.layers < 0) continue;
    const li = at.layers;
    const record = at.record;
    if (!record?.cacheKey) {
      reasons.push({
        kind: 'step',
        loc: ins.loc,
        message: `${ins.text}: layer ${li + 1} of the template was not made by a Stratafile step`,
      });
      continue;
    }
    // A COPY --from's stage is not in the template: only the chain ID of its result is, which
    // its key holds. The line itself is compared; the stage's own steps cannot be.
    if (ins.kind === 'COPY' && ins.from) {
      if (!record.copiedFrom) {
        reasons.push({
          kind: 'step',
          loc: ins.loc,
          message: `${ins.text}: layer ${li + 1} of the template does not record a stage it was copied from`,
        });
        continue;
      }
      notes.push(
        `${where(ins.loc)}: ${ins.text}: stage ${record.copiedFrom.stage}'s own steps are not checked (the template holds only its result, ${record.copiedFrom.chain}); rebuild to take changes there`,
      );
    }
    let keyed: StepKey;
    // The build's own packages the step's apt saw, as recorded: a DEBUILD that changed since is
    // reported as itself, not again as every apt step after it.
    keys.localRepo = record.localRepo;
    try {
      keyed = await keys.keyFor(s, ins, chainId(diffIds.slice(0, li)), record.copiedFrom?.chain);
    } catch (e) {
      if (!(e instanceof StrataError)) throw e;
      reasons.push({ kind: 'step', loc: ins.loc, message: `${ins.text}: ${e.message}` });
      continue;
    }
    if (keyed.key === record.cacheKey) continue;
    // Templates from before metadata kept the sources cannot say which the build used.
    const unrecorded =
      keyed.sources && meta.aptSources
        ? publishedAptSources(keyed.sources).find((e) => !meta.aptSources?.includes(e))
        : undefined;
    let why: string;
    if (record.createdBy !== ins.text) why = `the template has "${record.createdBy}" here`;
    // The template records the key, not what went into it: sources and ARG/ENV values (in its
    // destination, --chown) cannot be told apart.
    else if (ins.kind === 'COPY' && ins.from)
      why = `an ARG/ENV value changed (stage ${ins.from.ref}'s result is the one the template records)`;
    else if (ins.kind === 'COPY')
      why = 'its sources in the build context or an ARG/ENV value changed';
    else if (unrecorded !== undefined)
      why = `its apt sources are not the build's: ${keyed.sources?.origin} has "${unrecorded}", which the template did not use (give check the build's --apt-sources)`;
    else if (keyed.aptIndex)
      why = 'the apt indices changed since the build (or an ARG/ENV value did)';
    else why = 'an ARG/ENV value or the apt sources changed';
    reasons.push({ kind: 'step', loc: ins.loc, message: `${ins.text}: changed: ${why}` });
  }

  // Newer package versions in the current indices (what UPGRADE would take).
  const newer: NewerPackage[] = [];
  if (!opts.noPackages) {
    const src = await keys.sourcesFor(scope);
    // One folder per sources and architecture: apt drops the lists of an architecture it is not
    // asked for, so checks of two platforms sharing one would download them again each time.
    const dir = path.join(
      aptStateDir(store.root),
      'check',
      `${digestHex(src.digest).slice(0, 16)}-${meta.architecture}`,
    );
    // The Release files the keys above were computed against: an unchanged mirror is not read again.
    const mirror = await keys.releasesOf(src);
    const versions = await availableVersions(
      src,
      meta.architecture,
      dir,
      opts.aptAuth,
      mirror?.releases,
    );
    for (const p of meta.packages) {
      const avail = versions.get(`${p.name}:${p.architecture}`);
      if (avail !== undefined && compareDebianVersions(avail, p.version) > 0) {
        newer.push({
          name: p.name,
          architecture: p.architecture,
          installed: p.version,
          available: avail,
        });
      }
    }
    for (const n of newer) {
      const step = steps.find(
        (s, i) =>
          nBase + i >= 0 &&
          (records.find((r) => r.diffId === diffIds[nBase + i])?.packagesAdded ?? []).some((a) =>
            a.startsWith(`${n.name}=`),
          ),
      );
      reasons.push({
        kind: 'package',
        loc: step?.ins.loc,
        message: `${n.name} ${n.installed} has a newer version ${n.available}${step ? ` (installed by ${step.ins.text})` : ''}`,
      });
    }
  }
  return {
    ref,
    digest: desc.digest,
    upToDate: reasons.length === 0,
    reasons,
    newer,
    notes,
  };
}

/**
 * Recompute the key of every source the chain's DEBUILD lines build, on the buildchroot and with
 * the build's own packages the template recorded for it: a changed source tree or a moved apt
 * index makes the template stale.
 */
async function checkDebuilds(
  keys: StageKeys,
  context: string,
  debuilds: ReadonlyArray<{ ins: DebuildInstruction; scope: StepScope }>,
  records: readonly DebuildRecord[],
): Promise<CheckReason[]> {
  const reasons: CheckReason[] = [];
  let n = 0;
  for (const { ins, scope } of debuilds) {
    for (const source of ins.sources) {
      const rec = records[n++];
      if (rec?.source !== source) {
        reasons.push({
          kind: 'structure',
          loc: ins.loc,
          message: `${ins.text}: the template records no build of ${source} here`,
        });
        continue;
      }
      let key: Digest;
      try {
        key = await debuildKey(keys, context, {
          scope,
          ins,
          source,
          buildchroot: rec.buildchroot,
          target: ins.arch ?? scope.debArch ?? hostDebianArchitecture(),
          inputs: rec.inputs,
        });
      } catch (e) {
        if (!(e instanceof StrataError)) throw e;
        reasons.push({ kind: 'step', loc: ins.loc, message: `${ins.text}: ${e.message}` });
        continue;
      }
      if (key !== rec.cacheKey)
        reasons.push({
          kind: 'step',
          loc: ins.loc,
          message: `${ins.text}: ${source} changed: its source, an ARG/ENV value, or the apt indices its Build-Depends resolve from changed since the build`,
        });
    }
  }
  if (n < records.length)
    reasons.push({
      kind: 'structure',
      message: `the template was built with ${records.length} DEBUILD sources, the Stratafile has ${n}`,
    });
  return reasons;
}

/** One line per reason, `file:line:col: message` where a Stratafile line is at fault. */
export function formatReason(r: CheckReason): string {
  return r.loc ? `${where(r.loc)}: ${r.message}` : r.message;
}

/**
 * The ARG values the lock next to `file` recorded (of `platform`'s own lock first, as a build
 * for it writes one), where every stage that declares an ARG agrees on one value.
 */
async function lockedArgValues(
  file: string,
  platform: PlatformSelector | undefined,
): Promise<{ file: string; args: Record<string, string> }> {
  const candidates = [
    ...(platform ? [lockPathFor(file, debianArchitectureOf(platform))] : []),
    lockPathFor(file),
  ];
  for (const lockFile of candidates) {
    const lock = await readLockFile(lockFile).catch(() => undefined);
    if (!lock) continue;
    const seen = new Map<string, string | null>();
    const split = new Set<string>();
    for (const stage of lock.stages)
      for (const [k, v] of Object.entries(stage.args ?? {})) {
        if (seen.has(k) && seen.get(k) !== v) split.add(k);
        seen.set(k, v);
      }
    const args: Record<string, string> = {};
    for (const [k, v] of seen) if (v !== null && !split.has(k)) args[k] = v;
    return { file: lockFile, args };
  }
  return { file: lockPathFor(file), args: {} };
}

/** The value each ARG the stages declare has without a --build-arg of its own (undefined: unset). */
function argDefaults(
  text: string,
  file: string,
  args: Record<string, string>,
): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  const sf = parseStratafile(text, file, args, { unresolvedBases: true });
  for (const stage of sf.stages)
    for (const ins of stage.steps) if (ins.kind === 'ARG') out.set(ins.name, ins.value);
  return out;
}
