import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Descriptor,
  InvalidArgumentError,
  NotFoundError,
  PlatformSelector,
  StrataError,
} from '@strata/oci';
import { Store, normalizeTag } from '@strata/store';
import { debianArchitectureOf } from '@strata/debian';
import { Stratafile, parseStageHeads, parseStratafile } from './stratafile';
import { lockPathFor } from './lockfile';
import { checkFrozenHeads, checkFrozenSteps, stagesNeeded } from './frozen';
import { StageKeys, envOfConfig } from './stage-keys';
import type {
  BuildContext,
  BuildEvent,
  BuildOptions,
  BuildResult,
  StageState,
} from './build-state';
import { ResolvedBase, resolveBase } from './resolve-from';
import { APT_AUTH, StepRunner } from './run-step';
import { Debuilder } from './debuild';
import { LocalDebs, attachDebs, inheritedDebs } from './built-debs';
import { attachSboms } from './attach-sboms';
import type { RepoContents } from './local-repo';
import { Snapshots } from './snapshots';
import { withBuildchroot, writeImage } from './image-writer';
import { platformArgs } from './platform';
import { BuildDate } from './build-date';
import { readBuildLock, writeBuildLock } from './build-lock';
import { StageRunner } from './run-stage';
import { tagAll, tagsOf } from './tags';

/**
 * Builds a Stratafile for one platform: each stage FROM its base, one layer per step, cached;
 * then the image, its lock, and its tags. What the parts of the build share (BuildContext).
 */
export class Builder implements BuildContext {
  readonly context: string;
  readonly stages = new Map<string, StageState>();
  readonly keys: StageKeys;
  private readonly stageRunner: StageRunner;
  private readonly date: BuildDate;
  /** The packages DEBUILD made in this build, and their apt repository. */
  private readonly debs: LocalDebs;
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
    const runner = new StepRunner(this);
    const snapshots = new Snapshots(store);
    this.debs = new LocalDebs(this, () => (this.repoScratch ??= snapshots.scratch('repo')));
    const debuilder = new Debuilder(this, runner, snapshots, this.debs);
    this.stageRunner = new StageRunner(this, runner, debuilder);
    this.date = new BuildDate(opts, this.keys, (e) => this.emit(e));
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

  epoch(state: StageState): Promise<number> {
    return this.date.of(state);
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
    const lock = await readBuildLock(this);
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
          final = await this.stageRunner.run(stage, lock, bases.get(stage.index));
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
    const written = await writeBuildLock(this, lock, heads, targetIndex, needed);
    const debs = this.debs.debs.map((d) => ({
      filename: d.filename,
      digest: d.blob.digest,
      size: d.blob.size,
    }));
    return {
      ref,
      ...(refs.length > 0 ? { refs } : {}),
      ...image,
      cacheHits: this.stageRunner.cacheHits,
      stepsRun: this.stageRunner.stepsRun,
      // The lock --frozen held the build to is named as well as one written: a script reads
      // which lock a build answered to from `lockFile`, and whether it changed from `lockWritten`.
      ...(written !== undefined || this.opts.frozen ? { lockFile } : {}),
      lockWritten: written !== undefined,
      ...(debs.length ? { debs } : {}),
      steps: this.stageRunner.reports,
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
}
