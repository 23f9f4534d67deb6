import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Annotations,
  Descriptor,
  InvalidArgumentError,
  LayerRecord,
  NotFoundError,
  ParseError,
  PlatformSelector,
  StrataError,
  configPlatform,
  formatPlatform,
} from '@strata/oci';
import { Store, normalizeTag } from '@strata/store';
import {
  debianArchitecture,
  debianArchitectureOf,
  notInstalled,
  ociPlatform,
} from '@strata/debian';
import { readCache } from './cache';
import { guardRemoteCaches } from './remote-cache';
import {
  Instruction,
  Location,
  Stage,
  Stratafile,
  parseStageHeads,
  parseStratafile,
} from './stratafile';
import {
  LockFile,
  LockedStage,
  readLockFile,
  lockPathFor,
  updatedLock,
  writeLockFile,
} from './lockfile';
import {
  checkFrozenHeads,
  checkFrozenPackages,
  checkFrozenSteps,
  lockedArgs,
  skippedStageLock,
  stagesNeeded,
} from './frozen';
import { BuildStepError, StageKeys, StepKey, envOfConfig, startStage } from './stage-keys';
import {
  BuildContext,
  BuildEvent,
  BuildOptions,
  BuildResult,
  StageState,
  StepReport,
  chainOf,
  packageDelta,
  recordAptSources,
  shadowedBy,
} from './build-state';
import { ResolvedBase, resolveBase, resolveFrom, stageKey } from './resolve-from';
import { APT_AUTH, StepRunner } from './run-step';
import { Debuilder } from './debuild';
import { LocalDebs, attachDebs, inheritedDebs } from './built-debs';
import { attachSboms } from './attach-sboms';
import type { RepoContents } from './local-repo';
import { Snapshots } from './snapshots';
import { checkLocalDebs } from './copy-target';
import { withBuildchroot, writeImage, writePlatformIndex } from './image-writer';
import { platformArgs } from './platform';
import { copyDroppedBy } from './upper';

export type { BuildEvent, BuildOptions, BuildResult, StepReport } from './build-state';
export { packageDelta } from './build-state';
export { failureReason } from './step-output';
export { BuildStepError };

/** Builds a Stratafile: each stage FROM its base, one layer per step, cached. */
export class Builder implements BuildContext {
  readonly context: string;
  readonly stages = new Map<string, StageState>();
  readonly keys: StageKeys;
  private cacheHits = 0;
  private stepsRun = 0;
  private readonly reports: StepReport[] = [];
  /** The stages built so far, by their index in the file (what COPY --from names). */
  private readonly byIndex = new Map<number, StageState>();
  private readonly runner: StepRunner;
  private readonly startedAt: number;
  /** The packages DEBUILD made in this build, and their apt repository. */
  private readonly debs: LocalDebs;
  private readonly debuilder: Debuilder;
  private repoScratch?: Promise<string>;

  /**
   * `platform`: the one this run builds for, when one was asked for; its lock is then
   * `<Stratafile>.<arch>.lock`. `part` marks a run that is one platform of several: it tags nothing.
   * `quietArgs`: a later platform's run, which leaves the unused build args to the first's warning.
   */
  constructor(
    readonly store: Store,
    readonly opts: BuildOptions,
    readonly platform?: PlatformSelector,
    private readonly part = false,
    private readonly quietArgs = false,
  ) {
    this.context = path.resolve(opts.context ?? path.dirname(opts.file));
    this.keys = new StageKeys({
      context: this.context,
      stratafile: opts.file,
      aptSources: opts.aptSources,
      ...(opts.secrets?.[APT_AUTH] !== undefined ? { aptAuth: opts.secrets[APT_AUTH] } : {}),
    });
    this.runner = new StepRunner(this);
    const snapshots = new Snapshots(store);
    this.debs = new LocalDebs(this, () => (this.repoScratch ??= snapshots.scratch('repo')));
    this.debuilder = new Debuilder(this, this.runner, snapshots, this.debs);
    this.startedAt = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  }

  emit(e: BuildEvent): void {
    this.opts.onEvent?.(e);
  }

  localRepo(): Promise<RepoContents | undefined> {
    return this.debs.current();
  }

  async inheritDebs(desc: Descriptor, rootfs: Descriptor): Promise<void> {
    const { debs, sources } = await inheritedDebs(this.store, desc, rootfs);
    if (debs.length === 0) return;
    this.debs.add(debs);
    this.debs.addSources(sources);
    this.keys.localRepo = (await this.debs.current())?.release;
  }

  /**
   * Stratafile.lock, or in a build for a platform asked for (one of several or only that one)
   * the platform's own: a CI job per platform then holds each to the lock its platform wrote.
   */
  get lockFile(): string {
    return lockPathFor(
      this.opts.file,
      this.platform ? debianArchitectureOf(this.platform) : undefined,
    );
  }

  checkAbort(): void {
    if (this.opts.signal?.aborted) throw new StrataError('INTERRUPTED', 'build interrupted');
  }

  async build(): Promise<BuildResult> {
    // A bad tag fails before any step runs, not after the last one.
    for (const t of tagsOf(this.opts)) normalizeTag(t);
    const text = await fsp.readFile(this.opts.file, 'utf8').catch(() => {
      throw new NotFoundError(`no Stratafile at ${this.opts.file}`);
    });
    const buildArgs = {
      ...platformArgs(this.platform),
      ...(this.opts.buildArgs ?? {}),
    };
    const heads = parseStageHeads(text, this.opts.file, buildArgs);
    // A mistake in the file fails before a FROM template is fetched (a pull can take minutes);
    // only the lines that the templates' ENV may complete wait for them.
    const early = parseStratafile(text, this.opts.file, buildArgs, { unresolvedBases: true });
    // So does a mistake in the ignore file, though no step reads the context, as in docker.
    this.keys.contextIgnore();
    const lockFile = this.lockFile;
    // Without --frozen the lock only tells which bases moved since the last build, so a lock
    // that cannot be read is rewritten rather than an error.
    const lock = this.opts.frozen
      ? await readLockFile(lockFile)
      : await readLockFile(lockFile).catch((e: unknown) => {
          // Said, not silent: the lock may hold what a merge or a crash left, which the user
          // would rather mend than lose.
          this.emit({
            type: 'warning',
            message: `${(e as Error).message}; ${this.opts.writeLock !== false ? 'this build rewrites it' : 'it is ignored'}`,
          });
          return undefined;
        });
    if (this.opts.frozen && !lock) {
      throw new StrataError('PARSE_ERROR', `--frozen: ${lockFile} does not exist`, {
        hint: 'build once without --frozen to write it',
      });
    }
    const targetIndex = this.opts.target
      ? heads.findIndex((s) => s.name === this.opts.target)
      : heads.length - 1;
    if (targetIndex < 0) throw new InvalidArgumentError(`no stage named ${this.opts.target}`);
    const needed = stagesNeeded(early.stages, targetIndex);
    const built = heads.filter((h) => needed.has(h.index));
    if (this.opts.frozen && lock)
      checkFrozenHeads(built, lock, lockFile, targetIndex === heads.length - 1);
    // The lease lasts until the result is tagged: until then only build-cache entries hold its
    // layers, and a gc may expire entries that no tag uses.
    const { image, ref, refs } = await this.store.withLease(async () => {
      // A stage's instructions substitute variables of its FROM template's ENV (`ENV
      // PATH=/opt/bin:$PATH`), as docker's do: the templates are resolved before they are read.
      const bases = new Map<number, ResolvedBase>();
      for (const head of built) {
        const kind = head.from.refKind;
        if (kind === 'file' || kind === 'local' || kind === 'registry')
          bases.set(head.index, await resolveBase(this, head.from, lock?.stages[head.index]));
      }
      const parsed = parseStratafile(text, this.opts.file, buildArgs, {
        baseEnv: (i) => {
          const base = bases.get(i);
          return base && envOfConfig(base.config);
        },
      });
      this.warnUnusedArgs(parsed);
      if (this.opts.frozen && lock)
        checkFrozenSteps(
          parsed.stages.filter((st) => needed.has(st.index)),
          lock,
          lockFile,
        );
      // Without SOURCES, every step and the image's date use the default sources' mirror state:
      // the mirror is asked now, while the lock and the snapshots are read.
      const dated = this.opts.sourceDateEpoch === undefined && this.opts.timestamp !== 'now';
      if (dated && parsed.stages.every((s) => s.steps.every((i) => i.kind !== 'SOURCES')))
        this.keys.prefetchDefault();
      let final: StageState | undefined;
      try {
        for (const stage of parsed.stages.filter((st) => needed.has(st.index))) {
          final = await this.runStage(stage, lock, bases.get(stage.index));
        }
      } finally {
        if (this.repoScratch)
          await fsp.rm(await this.repoScratch, { recursive: true, force: true });
      }
      const state = final as StageState;
      this.checkAbort();
      this.emit({ type: 'write' });
      const rootfs = await writeImage(this, state);
      // The packages the build made or inherited travel with it (and through registries).
      await attachDebs(this.store, rootfs.descriptor, this.debs.debs, await this.debs.sources());
      // What is inside, and under which licences, travels with it too: one SBOM per format.
      await attachSboms(this.store, rootfs.descriptor);
      const image = {
        ...rootfs,
        descriptor: await withBuildchroot(this, state, rootfs.descriptor),
      };
      // An interrupted build tags nothing, however far its image got.
      this.checkAbort();
      const refs = this.part ? [] : await tagAll(this.store, tagsOf(this.opts), image.descriptor);
      return { image, ref: refs[0], refs };
    });
    let written: string | undefined;
    if (this.opts.writeLock !== false && !this.opts.frozen) {
      const stages = heads
        .slice(0, targetIndex + 1)
        .map((h) =>
          needed.has(h.index)
            ? (this.stages.get(stageKey(h)) as StageState).lock
            : skippedStageLock(h, lock),
        );
      await writeLockFile(lockFile, updatedLock(lock, stages, heads.length));
      written = lockFile;
    }
    const debs = this.debs.debs.map((d) => ({
      filename: d.filename,
      digest: d.blob.digest,
      size: d.blob.size,
    }));
    return {
      ref,
      ...(refs.length > 0 ? { refs } : {}),
      ...image,
      cacheHits: this.cacheHits,
      stepsRun: this.stepsRun,
      // The lock --frozen held the build to is named as well as one written: a script reads
      // which lock a build answered to from `lockFile`, and whether it changed from `lockWritten`.
      ...(written !== undefined || this.opts.frozen ? { lockFile } : {}),
      lockWritten: written !== undefined,
      ...(debs.length ? { debs } : {}),
      steps: this.reports,
    };
  }

  private warnUnusedArgs(sf: Stratafile): void {
    // Only what the caller passed: the platform's TARGET* args are there for a Stratafile that
    // declares them. One warning per build, not one per platform.
    const unused = sf.unusedBuildArgs.filter((k) => Object.hasOwn(this.opts.buildArgs ?? {}, k));
    if (unused.length > 0 && !this.quietArgs)
      this.emit({
        type: 'warning',
        message: `${unused.length === 1 ? 'build arg' : 'build args'} ${unused.join(', ')} ${unused.length === 1 ? 'is' : 'are'} not used: no ARG in ${path.basename(this.opts.file)} declares ${unused.length === 1 ? 'it' : 'them'}`,
      });
  }

  // ---- FROM --------------------------------------------------------------------

  private async runStage(
    stage: Stage,
    lock: LockFile | undefined,
    base: ResolvedBase | undefined,
  ): Promise<StageState> {
    const name = stageKey(stage);
    this.emit({ type: 'stage', stage: name, index: stage.index });
    const locked = lock?.stages[stage.index];
    const state = await resolveFrom(this, stage, locked, base);
    const args = lockedArgs(stage);
    if (args) {
      const { steps: none, ...head } = state.lock;
      state.lock = { ...head, args, steps: none };
    }
    const steps = stage.steps;
    startStage(state, steps);
    for (const [i, ins] of steps.entries()) {
      this.checkAbort();
      this.emit({
        type: 'step',
        stage: name,
        step: i + 1,
        steps: steps.length,
        text: ins.text,
        loc: ins.loc,
      });
      const t0 = performance.now();
      const outcome = await this.step(state, ins, locked?.steps[state.lock.steps.length]);
      this.reports.push({
        stage: name,
        step: i + 1,
        instruction: ins.text,
        ...ins.loc,
        ...(outcome ?? { status: 'none', packagesAdded: [], packagesRemoved: [] }),
        seconds: (performance.now() - t0) / 1000,
      });
    }
    this.stages.set(name, state);
    this.byIndex.set(stage.index, state);
    return state;
  }

  // ---- steps ------------------------------------------------------------------

  /**
   * The date this build uses for a stage, in seconds: SOURCE_DATE_EPOCH, else the date of the
   * mirror state its apt sources resolve to (two builds against one mirror state agree), else,
   * or with `timestamp: 'now'`, the time the build started.
   */
  async epoch(state: StageState): Promise<number> {
    if (this.opts.sourceDateEpoch !== undefined) return this.opts.sourceDateEpoch;
    if (this.opts.timestamp !== 'now') {
      let why: string;
      try {
        const date = await this.keys.mirrorDate(state);
        if (date !== undefined) return date;
        why = 'their Release files have no Date field';
      } catch (e) {
        if (!(e instanceof StrataError)) throw e;
        why = e.message;
      }
      this.warnClockDate(why);
    }
    return this.startedAt;
  }

  private clockWarned = false;

  private warnClockDate(why: string): void {
    if (this.clockWarned) return;
    this.clockWarned = true;
    this.emit({
      type: 'warning',
      message: `the build is dated by the clock, not by the apt sources' mirror state (${why}); set SOURCE_DATE_EPOCH for a reproducible date`,
    });
  }

  /** Run one step; what became of it, unless it makes no layer and runs nothing. */
  private async step(
    state: StageState,
    ins: Instruction,
    locked: LockedStage['steps'][number] | undefined,
  ): Promise<StepOutcome | undefined> {
    // ENV, ARG and SOURCES: what the next steps' environment and keys see.
    if (await this.keys.apply(state, ins)) return;
    switch (ins.kind) {
      case 'FROM':
        return;
      case 'LABEL':
        for (const [k, v] of ins.labels) state.labels[k] = v;
        return;
      case 'FEATURE':
        for (const f of ins.features) state.features.add(f);
        return;
      case 'DEBUILD': {
        const { built, cached } = await this.debuilder.run(state, ins);
        this.stepsRun += built;
        this.cacheHits += cached;
        this.keys.localRepo = (await this.debs.current())?.release;
        return {
          status: built > 0 ? 'run' : 'cached',
          packagesAdded: [],
          packagesRemoved: [],
        };
      }
      case 'BUILDCHROOT':
        if (!this.stages.has(ins.stage))
          throw new BuildStepError(
            ins.loc,
            `BUILDCHROOT ${ins.stage}: no earlier stage of that name`,
          );
        state.buildchroot = ins.stage;
        return;
      default:
        return this.layerStep(state, ins, locked);
    }
  }

  private async layerStep(
    state: StageState,
    ins: Instruction,
    locked: LockedStage['steps'][number] | undefined,
  ): Promise<StepOutcome> {
    if (ins.kind === 'BOOTSTRAP' && this.platform && ins.architecture !== undefined) {
      const want = debianArchitectureOf(this.platform);
      if (ins.architecture !== want)
        throw new BuildStepError(
          ins.loc,
          `BOOTSTRAP --architecture=${ins.architecture} in a build for ${formatPlatform(this.platform)} (${want})`,
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
    // The stage a COPY --from reads was built before this one (stagesNeeded, in file order).
    const source = ins.kind === 'COPY' && ins.from ? this.byIndex.get(ins.from.index) : undefined;
    if (ins.kind === 'COPY' && ins.from && source === undefined)
      throw new BuildStepError(
        ins.from.loc,
        `COPY --from=${ins.from.ref}: that stage was not built`,
      );
    let keyed: StepKey;
    try {
      keyed = await this.keys.keyFor(
        state,
        ins,
        chainOf(state.layers),
        source && chainOf(source.layers),
      );
    } catch (e) {
      if (e instanceof StrataError && !(e instanceof BuildStepError))
        throw new BuildStepError(ins.loc, e.message, {
          cause: e,
          ...(e.hint !== undefined ? { hint: e.hint } : {}),
        });
      throw e;
    }
    const { key } = keyed;
    // A file that is not a .deb fails at its place on the line, not as apt's first complaint.
    if (ins.kind === 'INSTALL' && keyed.copy) await checkLocalDebs(ins, keyed.copy, this.context);
    // From the key, not the step's run: a cached rebuild records the same sources. Every step
    // whose key holds them (a RUN's too), or check could not recompute that key without them.
    if (keyed.sources) recordAptSources(state, keyed.sources);
    let entry = this.opts.noCache ? undefined : await readCache(this.store, key);
    let from: string | undefined;
    for (const remote of this.opts.noCache ? [] : (this.opts.cacheFrom ?? [])) {
      if (entry) break;
      entry = await remote.get(key);
      if (entry) {
        from = remote.name;
        this.emit({ type: 'remote-cached', layer: entry.layer, from });
      }
    }
    const cached = entry !== undefined;
    if (entry) {
      this.cacheHits++;
      this.emit({ type: 'cached', layer: entry.layer });
      // What a fresh BOOTSTRAP reads from its tree; entries from before they were kept name
      // no distribution, and their architecture is their packages'.
      if (ins.kind === 'BOOTSTRAP') {
        if (entry.distribution) state.distribution = entry.distribution;
        state.debArch = entry.architecture ?? debianArchitecture(entry.packages);
      }
    } else {
      this.stepsRun++;
      entry = await this.runner.execute(state, ins, key, keyed.sources, keyed.copy, source);
    }
    if (this.opts.cacheTo) {
      try {
        await this.opts.cacheTo.put(entry);
      } catch (e) {
        if (e instanceof StrataError) throw new BuildStepError(ins.loc, e.message, { cause: e });
        throw e;
      }
    }
    if (this.opts.frozen && locked && locked.cacheKey !== key)
      checkFrozenPackages(
        ins,
        entry.record.packagesAdded ?? [],
        locked.packages ?? [],
        this.lockFile,
      );
    const status = !cached ? 'run' : from !== undefined ? 'remote-cached' : 'cached';
    const history = { created: entry.created, created_by: ins.text };
    if (!entry.layer || !entry.diffId) {
      // It changed nothing: no layer, and the packages are those before it.
      const after = state.layers.length;
      state.emptySteps.push({
        after,
        history,
        record: {
          after,
          createdBy: ins.text,
          cacheKey: key,
          ...(keyed.localRepo ? { localRepo: keyed.localRepo } : {}),
          ...(source && keyed.fromChain
            ? { copiedFrom: { stage: source.name, chain: keyed.fromChain } }
            : {}),
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
      return {
        status,
        ...(from !== undefined ? { from } : {}),
        cacheKey: key,
        emptyLayer: true,
        packagesAdded: [],
        packagesRemoved: [],
      };
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
        ...(source && keyed.fromChain
          ? { copiedFrom: { stage: source.name, chain: keyed.fromChain } }
          : {}),
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
      status,
      ...(from !== undefined ? { from } : {}),
      ...(source && keyed.fromChain
        ? { copiedFrom: { stage: source.name, chain: keyed.fromChain } }
        : {}),
      cacheKey: key,
      layer: entry.layer,
      packagesAdded,
      packagesRemoved,
    };
  }

  // ---- result -------------------------------------------------------------------
}

/**
 * Build a Stratafile: once, or with several `platforms` once per platform, tagging one OCI index
 * that holds each platform's images (see writePlatformIndex).
 */
export async function build(store: Store, opts: BuildOptions): Promise<BuildResult> {
  opts = await guardRemoteCaches(opts);
  // What an earlier build left when it was killed is swept now, not at the next gc.
  await new Snapshots(store).sweepDead();
  await store.dropDeadLeases();
  const platforms = opts.platforms ?? [];
  if (platforms.length <= 1) return new Builder(store, opts, platforms[0]).build();
  for (const t of tagsOf(opts)) normalizeTag(t);
  // Until the index is tagged, only this lease keeps the platforms' images from a gc.
  return store.withLease(async () => {
    const parts = [];
    let cacheHits = 0;
    let stepsRun = 0;
    const steps: StepReport[] = [];
    for (const [i, asked] of platforms.entries()) {
      // Named as the image it makes will say it, as inspect does (`linux/arm64/v8`).
      const name = formatPlatform({
        os: asked.os,
        ...ociPlatform(debianArchitectureOf(asked)),
      });
      opts.onEvent?.({ type: 'platform', platform: name });
      const r = await new Builder(store, opts, asked, true, i > 0).build();
      cacheHits += r.cacheHits;
      stepsRun += r.stepsRun;
      steps.push(...r.steps.map((s) => ({ platform: name, ...s })));
      parts.push({
        platform: configPlatform(r.config),
        descriptor: r.descriptor,
        manifest: r.manifest,
        config: r.config,
        ...(r.lockFile !== undefined ? { lockFile: r.lockFile } : {}),
        lockWritten: r.lockWritten ?? false,
      });
    }
    const descriptor = await writePlatformIndex(store, parts);
    if (opts.signal?.aborted) throw new StrataError('INTERRUPTED', 'build interrupted');
    const refs = await tagAll(store, tagsOf(opts), descriptor);
    const first = parts[0] as (typeof parts)[number];
    return {
      ref: refs[0],
      ...(refs.length > 0 ? { refs } : {}),
      descriptor,
      manifest: first.manifest,
      config: first.config,
      platforms: parts,
      cacheHits,
      stepsRun,
      lockWritten: parts.some((p) => p.lockWritten),
      steps,
    };
  });
}

/** The tags a build gives its result: `tag`, then `moreTags`, each once. */
function tagsOf(opts: BuildOptions): string[] {
  return [...new Set([...(opts.tag !== undefined ? [opts.tag] : []), ...(opts.moreTags ?? [])])];
}

/** Tag `desc` with each of `tags`; the refs as the store spells them. */
async function tagAll(store: Store, tags: readonly string[], desc: Descriptor): Promise<string[]> {
  const refs: string[] = [];
  for (const t of tags) {
    await store.tag(t, desc);
    const ref = (await store.resolve(t)).annotations?.[Annotations.refName];
    if (ref !== undefined) refs.push(ref);
  }
  return refs;
}

type StepOutcome = Omit<
  StepReport,
  'platform' | 'stage' | 'step' | 'instruction' | 'seconds' | keyof Location
>;

export { ParseError };
