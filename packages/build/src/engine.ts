import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Annotations,
  BaseTemplate,
  Compression,
  DebianPackage,
  Exclusion,
  Descriptor,
  Digest,
  Distribution,
  HistoryEntry,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  InvalidArgumentError,
  LayerRecord,
  MediaTypes,
  NotFoundError,
  ParseError,
  StrataError,
  TemplateMetadata,
  assertValid,
  chainId,
  validateConfig,
  validateManifest,
  validateTemplateMetadata,
} from '@strata/oci';
import { createLayer, packTree } from '@strata/layer';
import { Store, loadArchive, normalizeTag } from '@strata/store';
import {
  DEFAULT_EXCLUSIONS,
  isoDate,
  ociPlatform,
  parseDpkgStatus,
  readRootfsFacts,
} from '@strata/template';
import { mmdebstrap, runInSandbox } from '@strata/tools';
import { AptSources, aptConf, aptStateDir } from './apt';
import { CacheEntry, readCache, writeCache } from './cache';
import { STEP_EXCLUSIONS, cleanUpper } from './upper';
import type { RemoteCache } from './remote-cache';
import { Snapshots, StackLayer } from './snapshots';
import { essentialAmong, notInstalled, statusOfLowers } from './remove';
import { Instruction, Location, Stage, Stratafile, parseStratafile } from './stratafile';
import { LockFile, LockedStage, readLockFile, lockPathFor, writeLockFile } from './lockfile';
import {
  BuildStepError,
  StageKeys,
  StepKey,
  envOfConfig,
  inheritScope,
  stepEnv,
} from './stage-keys';

export { BuildStepError };

/** Host-provided files that BOOTSTRAP's output must not keep (mmdebstrap writes them). */
const HOST_FILES = DEFAULT_EXCLUSIONS.filter((r) => r.action === 'drop').map((r) => r.pattern);

/** Annotation naming a manifest's role in a template index (rootfs or buildchroot). */
const ROLE = Annotations.role;

export type BuildEvent =
  | { type: 'stage'; stage: string; index: number }
  | { type: 'step'; stage: string; step: number; steps: number; text: string; loc: Location }
  | { type: 'cached'; layer: Descriptor }
  | { type: 'remote-cached'; layer: Descriptor; from: string }
  | { type: 'layer'; layer: Descriptor; seconds: number; added: string[]; removed: string[] }
  | { type: 'output'; chunk: Buffer }
  | { type: 'warning'; message: string; loc?: Location }
  /** A FROM resolves to another digest than Stratafile.lock recorded (a build without --frozen). */
  | { type: 'base-moved'; ref: string; from: Digest; to: Digest; loc: Location };

export interface BuildOptions {
  /** Path of the Stratafile. */
  file: string;
  /** Build context directory (COPY sources, local .debs, SOURCES files); default: the Stratafile's dir. */
  context?: string;
  /** Tag for the result. */
  tag?: string;
  /** Stage to build (default: the last one). */
  target?: string;
  buildArgs?: Record<string, string>;
  /** apt sources file for every step; default: the build host's. A SOURCES instruction overrides. */
  aptSources?: string;
  noCache?: boolean;
  /** Fail when Stratafile.lock no longer matches. */
  frozen?: boolean;
  /**
   * Build date and mtime clamp (SOURCE_DATE_EPOCH). Without it, the date of the mirror state the
   * stage's apt sources resolve to (the newest `Date:` of their Release files), unless
   * `timestamp` is 'now'.
   */
  sourceDateEpoch?: number;
  /** 'now' dates the build by the clock instead of the mirror state. Default: 'mirror'. */
  timestamp?: 'mirror' | 'now';
  compression?: Compression;
  /** Host resolv.conf for steps. */
  resolvConf?: string;
  /** Write Stratafile.lock (default true). */
  writeLock?: boolean;
  /** Shared build caches: looked up on a local miss (`--cache-from`), and filled (`--cache-to`). */
  cacheFrom?: RemoteCache[];
  cacheTo?: RemoteCache;
  /** Resolves registry references in FROM (pulling what the store lacks). */
  resolveRemote?: (ref: string) => Promise<Descriptor>;
  signal?: AbortSignal;
  onEvent?: (e: BuildEvent) => void;
  now?: Date;
}

export interface BuildResult {
  ref?: string;
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  cacheHits: number;
  stepsRun: number;
  lockFile?: string;
}

interface BuiltLayer {
  desc: Descriptor;
  diffId: Digest;
  record: LayerRecord;
  history: HistoryEntry;
  /** Paths each exclusion rule kept out of this layer (layers built from a Stratafile). */
  excluded?: Record<string, number>;
}

interface StageState {
  name: string;
  layers: BuiltLayer[];
  env: Map<string, string>;
  args: Map<string, string>;
  labels: Record<string, string>;
  features: Set<string>;
  excludes: string[];
  sources?: AptSources;
  packages: DebianPackage[];
  distribution: Distribution;
  debArch?: string;
  baseChain: BaseTemplate[];
  /** Exclusions recorded by the FROM template. */
  baseExclusions: Exclusion[];
  /** Stage named by BUILDCHROOT. */
  buildchroot?: string;
  /** The buildchroot image inherited from the FROM template (an index with both roles). */
  inheritedBuildchroot?: Descriptor;
  lock: LockedStage;
}

function chainOf(layers: readonly BuiltLayer[]): Digest | undefined {
  return chainId(layers.map((l) => l.diffId));
}

function stackOf(layers: readonly BuiltLayer[]): StackLayer[] {
  return layers.map((l) => ({
    digest: l.desc.digest,
    size: l.desc.size,
    mediaType: l.desc.mediaType,
    diffId: l.diffId,
  }));
}

/** The last few kilobytes a step printed, so that a failure can say why even when quiet. */
class OutputTail {
  private chunks: Buffer[] = [];
  private bytes = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes - (this.chunks[0]?.length ?? 0) >= OutputTail.KEEP) {
      this.bytes -= (this.chunks.shift() as Buffer).length;
    }
  }

  /** The last lines, whole (a line cut at the front is dropped). */
  text(): string {
    const all = Buffer.concat(this.chunks).toString('utf8');
    const lines = all.split('\n');
    if (this.bytes > OutputTail.KEEP) lines.shift();
    return lines.slice(-OutputTail.LINES).join('\n').trimEnd();
  }

  static readonly KEEP = 8192;
  static readonly LINES = 20;
}

/**
 * The line that says why a step failed: apt's first `E:` line (the later ones are consequences,
 * such as "Sub-process /usr/bin/dpkg returned an error code"), else the last line.
 */
export function failureReason(output: string): string | undefined {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /^E: /.test(l)) ?? lines[lines.length - 1];
}

function pkgKey(p: DebianPackage): string {
  return `${p.name}:${p.architecture}`;
}

/** Packages added or changed (`name=version`) and removed (`name`) between two dpkg states. */
export function packageDelta(
  before: DebianPackage[],
  after: DebianPackage[],
): { added: string[]; removed: string[] } {
  const b = new Map(before.map((p) => [pkgKey(p), p]));
  const a = new Map(after.map((p) => [pkgKey(p), p]));
  const added: string[] = [];
  const removed: string[] = [];
  for (const [k, p] of a) if (b.get(k)?.version !== p.version) added.push(`${p.name}=${p.version}`);
  for (const [k, p] of b) if (!a.has(k)) removed.push(p.name);
  return { added: added.sort(), removed: removed.sort() };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export class Builder {
  private readonly snapshots: Snapshots;
  private readonly context: string;
  private readonly stages = new Map<string, StageState>();
  private cacheHits = 0;
  private stepsRun = 0;
  /** Step environments and cache keys, as `strata check` recomputes them. */
  private readonly keys: StageKeys;
  private readonly debCache: string;
  private readonly listsRoot: string;
  private readonly aptCacheRoot: string;
  private readonly startedAt: number;

  constructor(
    private readonly store: Store,
    private readonly opts: BuildOptions,
  ) {
    this.snapshots = new Snapshots(store);
    this.context = path.resolve(opts.context ?? path.dirname(opts.file));
    this.keys = new StageKeys({ context: this.context, aptSources: opts.aptSources });
    this.debCache = path.join(aptStateDir(store.root), 'archives');
    this.listsRoot = path.join(aptStateDir(store.root), 'lists');
    this.aptCacheRoot = path.join(aptStateDir(store.root), 'cache');
    this.startedAt = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  }

  private emit(e: BuildEvent): void {
    this.opts.onEvent?.(e);
  }

  private checkAbort(): void {
    if (this.opts.signal?.aborted) throw new StrataError('INTERRUPTED', 'build interrupted');
  }

  async build(): Promise<BuildResult> {
    // A bad tag fails before any step runs, not after the last one.
    if (this.opts.tag !== undefined) normalizeTag(this.opts.tag);
    const text = await fsp.readFile(this.opts.file, 'utf8').catch(() => {
      throw new NotFoundError(`no Stratafile at ${this.opts.file}`);
    });
    const sf = parseStratafile(text, this.opts.file, this.opts.buildArgs ?? {});
    const lockFile = lockPathFor(this.opts.file);
    // Without --frozen the lock only tells which bases moved since the last build, so a lock
    // that cannot be read is rewritten rather than an error.
    const lock = this.opts.frozen
      ? await readLockFile(lockFile)
      : await readLockFile(lockFile).catch(() => undefined);
    if (this.opts.frozen && !lock) {
      throw new StrataError('PARSE_ERROR', `--frozen: ${lockFile} does not exist`, {
        hint: 'build once without --frozen to write it',
      });
    }
    const targetIndex = this.opts.target
      ? sf.stages.findIndex((s) => s.name === this.opts.target)
      : sf.stages.length - 1;
    if (targetIndex < 0) throw new InvalidArgumentError(`no stage named ${this.opts.target}`);
    // The lease lasts until the result is tagged: until then only build-cache entries hold its
    // layers, and a gc may expire entries that no tag uses.
    const { image, ref } = await this.store.withLease(async () => {
      await fsp.mkdir(this.debCache, { recursive: true });
      let final: StageState | undefined;
      for (const stage of sf.stages.slice(0, targetIndex + 1)) {
        final = await this.runStage(sf, stage, lock);
      }
      const state = final as StageState;
      const rootfs = await this.writeImage(state);
      const image = { ...rootfs, descriptor: await this.withBuildchroot(state, rootfs.descriptor) };
      let ref: string | undefined;
      if (this.opts.tag) {
        await this.store.tag(this.opts.tag, image.descriptor);
        ref = (await this.store.resolve(this.opts.tag)).annotations?.[Annotations.refName];
      }
      return { image, ref };
    });
    let written: string | undefined;
    if (this.opts.writeLock !== false && !this.opts.frozen) {
      const doc: LockFile = {
        lockfileVersion: 1,
        stages: sf.stages
          .slice(0, targetIndex + 1)
          .map((s) => (this.stages.get(this.stageKey(s)) as StageState).lock),
      };
      await writeLockFile(lockFile, doc);
      written = lockFile;
    }
    return { ref, ...image, cacheHits: this.cacheHits, stepsRun: this.stepsRun, lockFile: written };
  }

  private stageKey(s: Stage): string {
    return s.name ?? `#${s.index}`;
  }

  // ---- FROM --------------------------------------------------------------------

  private async runStage(
    sf: Stratafile,
    stage: Stage,
    lock: LockFile | undefined,
  ): Promise<StageState> {
    const name = this.stageKey(stage);
    this.emit({ type: 'stage', stage: name, index: stage.index });
    const locked = lock?.stages[stage.index];
    const state = await this.from(stage, locked);
    const steps = stage.steps;
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
      await this.step(state, ins, locked?.steps[state.lock.steps.length]);
    }
    this.stages.set(name, state);
    return state;
  }

  private emptyState(name: string, ref: string): StageState {
    return {
      name,
      layers: [],
      env: new Map(),
      args: new Map(),
      labels: {},
      features: new Set(),
      excludes: [],
      packages: [],
      distribution: {},
      baseChain: [],
      baseExclusions: [],
      lock: { name, from: { ref }, steps: [] },
    };
  }

  private async from(stage: Stage, locked: LockedStage | undefined): Promise<StageState> {
    const f = stage.from;
    const name = this.stageKey(stage);
    if (f.refKind === 'scratch') return this.emptyState(name, 'scratch');
    const earlier = f.refKind === 'stage' ? this.stages.get(f.ref) : undefined;
    if (earlier) {
      return {
        ...earlier,
        ...inheritScope(earlier),
        name,
        layers: [...earlier.layers],
        labels: { ...earlier.labels },
        features: new Set(earlier.features),
        packages: [...earlier.packages],
        baseChain: [...earlier.baseChain],
        lock: { name, from: { ref: f.ref }, steps: [] },
      };
    }
    let desc: Descriptor;
    try {
      if (f.refKind === 'file') {
        const file = path.resolve(this.context, f.ref);
        const loaded = await loadArchive(this.store, file);
        if (loaded.length !== 1)
          throw new InvalidArgumentError(
            `${f.ref} holds ${loaded.length} images; FROM needs exactly one`,
          );
        desc = (loaded[0] as { descriptor: Descriptor }).descriptor;
      } else if (f.refKind === 'registry') {
        if (!this.opts.resolveRemote)
          throw new InvalidArgumentError(
            `${f.ref} is in a registry, and this build cannot reach registries`,
          );
        desc = await this.opts.resolveRemote(f.ref);
      } else {
        desc = await this.store.resolve(f.ref);
      }
    } catch (e) {
      // The hint (is the registry running? trust its CA?) is what makes the line useful.
      if (e instanceof StrataError)
        throw new BuildStepError(f.loc, `FROM ${f.ref}: ${e.message}`, {
          cause: e,
          ...(e.hint !== undefined ? { hint: e.hint } : {}),
        });
      throw e;
    }
    const lockedDigest = locked?.from.digest;
    if (this.opts.frozen && lockedDigest !== undefined && lockedDigest !== desc.digest) {
      throw new BuildStepError(
        f.loc,
        `--frozen: FROM ${f.ref} now resolves to ${desc.digest}, but Stratafile.lock has ${lockedDigest}`,
        { hint: 'the base template moved; rebuild without --frozen to accept it' },
      );
    }
    // A FROM line that was edited names another base; only the same reference can have moved.
    if (lockedDigest !== undefined && lockedDigest !== desc.digest && locked?.from.ref === f.ref) {
      this.emit({
        type: 'base-moved',
        ref: f.ref,
        from: lockedDigest,
        to: desc.digest,
        loc: f.loc,
      });
    }
    const parts = await this.rootfsManifest(desc);
    const manifestDesc = parts.rootfs;
    const manifest = await this.store.readManifest(manifestDesc);
    const config = await this.store.readConfig(manifest.config);
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
    const state = this.emptyState(name, f.ref);
    state.lock.from.digest = desc.digest;
    if (parts.buildchroot) state.inheritedBuildchroot = parts.buildchroot;
    state.layers = layers;
    state.env = envOfConfig(config);
    state.labels = { ...(meta?.labels ?? {}) };
    state.features = new Set(meta?.features ?? []);
    state.packages = meta?.packages ?? [];
    state.baseExclusions = meta?.exclusions ?? [];
    state.distribution = meta?.distribution ?? {};
    state.debArch = meta?.architecture;
    // The chain names each base by where it can be found downstream: what FROM said, or for a
    // local tag that a pull made, the registry reference it was pulled from (a local name
    // means nothing on another machine).
    const pulledFrom =
      f.refKind === 'local' ? desc.annotations?.[Annotations.pulledFrom] : undefined;
    state.baseChain = [
      ...(meta?.baseChain ?? []),
      { name: meta?.name ?? f.ref, ref: pulledFrom ?? f.ref, digest: desc.digest },
    ];
    return state;
  }

  /**
   * A template reference may name an index holding rootfs + buildchroot: build on the rootfs,
   * and remember the buildchroot so the result inherits it.
   */
  private async rootfsManifest(
    desc: Descriptor,
  ): Promise<{ rootfs: Descriptor; buildchroot?: Descriptor }> {
    const m = await this.store.imageOfRole(desc, 'rootfs');
    if (!m) throw new NotFoundError(`index ${desc.digest} holds no image manifest`);
    const bc = await this.store.imageOfRole(desc, 'buildchroot');
    return bc ? { rootfs: m, buildchroot: bc } : { rootfs: m };
  }

  // ---- steps ------------------------------------------------------------------

  /**
   * The date this build uses for a stage, in seconds: SOURCE_DATE_EPOCH, else the date of the
   * mirror state its apt sources resolve to (two builds against one mirror state agree), else,
   * or with `timestamp: 'now'`, the time the build started.
   */
  private async epoch(state: StageState): Promise<number> {
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

  private async step(
    state: StageState,
    ins: Instruction,
    locked: LockedStage['steps'][number] | undefined,
  ): Promise<void> {
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
  ): Promise<void> {
    if (ins.kind === 'REMOVE' && state.packages.length > 0) {
      const missing = notInstalled(state.packages, ins.packages);
      if (missing.length > 0)
        throw new BuildStepError(
          ins.loc,
          `REMOVE ${missing.join(' ')}: ${missing.length === 1 ? 'it is' : 'they are'} not installed here`,
          { hint: 'drop it from the REMOVE line (removing nothing would add an empty layer)' },
        );
    }
    let keyed: StepKey;
    try {
      keyed = await this.keys.keyFor(state, ins, chainOf(state.layers));
    } catch (e) {
      if (e instanceof StrataError && !(e instanceof BuildStepError))
        throw new BuildStepError(ins.loc, e.message, {
          cause: e,
          ...(e.hint !== undefined ? { hint: e.hint } : {}),
        });
      throw e;
    }
    const { key } = keyed;
    let entry = this.opts.noCache ? undefined : await readCache(this.store, key);
    for (const remote of this.opts.noCache ? [] : (this.opts.cacheFrom ?? [])) {
      if (entry) break;
      entry = await remote.get(key);
      if (entry) this.emit({ type: 'remote-cached', layer: entry.layer, from: remote.name });
    }
    if (entry) {
      this.cacheHits++;
      this.emit({ type: 'cached', layer: entry.layer });
    } else {
      this.stepsRun++;
      entry = await this.execute(state, ins, key, keyed.sources);
    }
    if (this.opts.cacheTo) await this.opts.cacheTo.put(entry);
    if (this.opts.frozen && locked && locked.cacheKey !== key) {
      const now = entry.record.packagesAdded ?? [];
      const want = locked.packages ?? [];
      if (now.join(' ') !== want.join(' ')) {
        const diff = now.filter((p) => !want.includes(p));
        throw new BuildStepError(
          ins.loc,
          `--frozen: ${ins.text} would now install ${diff.join(', ') || 'a different set of packages'} (Stratafile.lock has ${want.filter((p) => !now.includes(p)).join(', ') || 'others'})`,
          { hint: 'rebuild without --frozen to update Stratafile.lock' },
        );
      }
    }
    state.layers.push({
      desc: entry.layer,
      diffId: entry.diffId,
      record: entry.record,
      history: { created: entry.created, created_by: ins.text },
      excluded: entry.excluded ?? {},
    });
    state.packages = entry.packages;
    state.lock.steps.push({
      instruction: ins.text,
      cacheKey: key,
      layer: entry.layer.digest,
      packages: entry.record.packagesAdded ?? [],
      removed: entry.record.packagesRemoved ?? [],
    });
  }

  private async execute(
    state: StageState,
    ins: Instruction,
    key: Digest,
    sources: AptSources | undefined,
  ): Promise<CacheEntry> {
    const t0 = Date.now();
    const work = await this.snapshots.scratch('step');
    try {
      const upper = path.join(work, 'upper');
      await fsp.mkdir(upper);
      let lower: string[] = [];
      let info: { distribution?: Distribution; debArch?: string } = {};
      if (ins.kind === 'BOOTSTRAP') {
        if (state.layers.length > 0)
          throw new BuildStepError(ins.loc, 'BOOTSTRAP needs FROM scratch');
        info = await this.bootstrap(state, ins, upper, sources as AptSources);
      } else {
        const chain = chainOf(state.layers);
        if (chain === undefined)
          throw new BuildStepError(
            ins.loc,
            `${ins.kind} has no root filesystem to run in: FROM scratch needs BOOTSTRAP first`,
          );
        lower = await this.snapshots.ensure(chain, stackOf(state.layers));
        if (ins.kind === 'REMOVE') {
          const essential = essentialAmong((await statusOfLowers(lower)) ?? '', ins.packages);
          if (essential.length > 0)
            throw new BuildStepError(
              ins.loc,
              `REMOVE ${essential.map((e) => `${e.name} (${e.field}: yes)`).join(', ')}: dpkg marks ${essential.length === 1 ? 'it' : 'them'} as needed by every system of this template, and apt refuses to remove such packages`,
              { hint: 'Debian keeps such packages in every system: keep it' },
            );
        }
        await this.runInRoot(state, ins, work, upper, lower, sources);
      }
      const cleaned = await cleanUpper(
        upper,
        lower,
        ins.kind === 'BOOTSTRAP' ? [...HOST_FILES, ...state.excludes] : state.excludes,
      );
      const compression = this.opts.compression ?? 'zstd';
      const epoch = await this.epoch(state);
      const tar = packTree({ root: upper, overlay: lower.length > 0, sourceDateEpoch: epoch });
      const layer = createLayer(tar, compression);
      tar.on('error', (e) => layer.blob.destroy(e));
      const blob = await this.store.putBlob(layer.blob);
      const { diffId, mediaType } = await layer.result;
      await this.store.recordDiffId(blob.digest, diffId);
      const desc: Descriptor = { mediaType, digest: blob.digest, size: blob.size };

      // Packages after the step: the upper's dpkg status if the step touched it.
      let packages = state.packages;
      const status = await fsp
        .readFile(path.join(upper, 'var/lib/dpkg/status'), 'utf8')
        .catch(() => undefined);
      if (status !== undefined) packages = parseDpkgStatus(status);
      const delta = packageDelta(state.packages, packages);
      if (info.distribution) state.distribution = info.distribution;
      if (info.debArch) state.debArch = info.debArch;
      const record: LayerRecord = { diffId, createdBy: ins.text, cacheKey: key };
      if (delta.added.length) record.packagesAdded = delta.added;
      if (delta.removed.length) record.packagesRemoved = delta.removed;
      const created = isoDate(new Date(epoch * 1000));
      const entry: CacheEntry = {
        key,
        layer: desc,
        diffId,
        record,
        packages,
        created,
        excluded: cleaned.byPattern,
      };
      await writeCache(this.store, entry);
      const newChain = chainId([...state.layers.map((l) => l.diffId), diffId]) as Digest;
      const parent = chainOf(state.layers);
      await this.snapshots.commit(
        newChain,
        upper,
        parent === undefined ? { kind: 'full' } : { kind: 'diff', parent },
      );
      this.emit({
        type: 'layer',
        layer: desc,
        seconds: (Date.now() - t0) / 1000,
        added: delta.added,
        removed: delta.removed,
      });
      return entry;
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  }

  private async bootstrap(
    state: StageState,
    ins: Extract<Instruction, { kind: 'BOOTSTRAP' }>,
    target: string,
    sources: AptSources,
  ): Promise<{ distribution: Distribution; debArch?: string }> {
    const work = path.dirname(target);
    const sourcesFile = path.join(work, 'sources.list');
    await fsp.writeFile(sourcesFile, sources.text);
    await fsp.rmdir(target);
    try {
      await mmdebstrap({
        suite: ins.suite,
        target,
        variant: ins.variant,
        include: ins.include,
        components: ins.components,
        architecture: ins.architecture,
        sources: ins.mirror ?? sourcesFile,
        debCache: this.debCache,
        sourceDateEpoch: await this.epoch(state),
        onOutput: (chunk) => this.emit({ type: 'output', chunk }),
        signal: this.opts.signal,
      });
    } catch (e) {
      if (e instanceof StrataError)
        throw new BuildStepError(ins.loc, `BOOTSTRAP ${ins.suite}: ${e.message}`, { cause: e });
      throw e;
    }
    const facts = await readRootfsFacts(target);
    return { distribution: facts.distribution, debArch: facts.architecture };
  }

  private stepCommand(ins: Instruction): string[] {
    const aptPrep = 'mkdir -p /run/strata/lists/partial /run/strata/archives/partial';
    switch (ins.kind) {
      case 'INSTALL': {
        const pkgs = [
          ...ins.packages.map((p) => (p.version ? `${p.name}=${p.version}` : p.name)),
          ...ins.debs.map((d) => `/run/strata/context/${d.replace(/^\.\//, '')}`),
        ];
        const rec = ins.recommends ? '--install-recommends' : '--no-install-recommends';
        return [
          '/bin/sh',
          '-c',
          `${aptPrep} && apt-get update -q && apt-get install -y -q ${rec} ${pkgs.map(shellQuote).join(' ')}`,
        ];
      }
      case 'UPGRADE': {
        const upgrade = ins.packages.length
          ? `apt-get install -y -q --only-upgrade ${ins.packages.map(shellQuote).join(' ')}`
          : 'apt-get upgrade -y -q';
        return ['/bin/sh', '-c', `${aptPrep} && apt-get update -q && ${upgrade}`];
      }
      case 'REMOVE': {
        const pkgs = ins.packages.map(shellQuote).join(' ');
        return [
          '/bin/sh',
          '-c',
          [
            `dpkg-query -L ${pkgs} 2>/dev/null | sort -u > /run/strata/out/owned`,
            `apt-get purge -y -q --autoremove ${pkgs}`,
            'rc=$?',
            'while IFS= read -r f; do if [ -e "$f" ] && [ ! -d "$f" ]; then printf "%s\\n" "$f"; fi; done < /run/strata/out/owned > /run/strata/out/survivors',
            'exit $rc',
          ].join('\n'),
        ];
      }
      case 'RUN':
        return typeof ins.command === 'string' ? ['/bin/sh', '-c', ins.command] : ins.command;
      case 'COPY': {
        const dest = ins.dest.startsWith('/') ? ins.dest : `/${ins.dest}`;
        const lines = ['set -e'];
        const many = ins.sources.length > 1 || dest.endsWith('/');
        if (many) lines.push(`mkdir -p ${shellQuote(dest)}`);
        for (const src of ins.sources) {
          const from = `/run/strata/context/${src.replace(/^\.\//, '')}`;
          const to = many ? `${dest.replace(/\/$/, '')}/${path.posix.basename(src)}` : dest;
          lines.push(
            `if [ -d ${shellQuote(from)} ]; then mkdir -p ${shellQuote(many ? dest : to)}; cp -a ${shellQuote(from)}/. ${shellQuote(many ? dest : to)}/; t=${shellQuote(many ? dest : to)}; else mkdir -p "$(dirname ${shellQuote(to)})"; cp -a ${shellQuote(from)} ${shellQuote(to)}; t=${shellQuote(to)}; fi`,
          );
          if (ins.chown) lines.push(`chown -R ${shellQuote(ins.chown)} "$t"`);
          if (ins.chmod !== undefined) lines.push(`chmod -R ${ins.chmod.toString(8)} "$t"`);
        }
        return ['/bin/sh', '-c', lines.join('\n')];
      }
      default:
        throw new InvalidArgumentError(`${ins.kind} does not run`);
    }
  }

  private async runInRoot(
    state: StageState,
    ins: Instruction,
    work: string,
    upper: string,
    lower: string[],
    sources: AptSources | undefined,
  ): Promise<void> {
    const stage = path.join(work, 'stage');
    const out = path.join(work, 'out');
    const ovlWork = path.join(work, 'ovl');
    const merged = path.join(work, 'merged');
    for (const d of [stage, out, ovlWork, merged, path.join(stage, 'sources.list.d')])
      await fsp.mkdir(d, { recursive: true });
    const src = sources ?? (await this.keys.sourcesFor(state));
    await fsp.writeFile(path.join(stage, 'sources.list'), src.text);
    await fsp.writeFile(path.join(stage, 'apt.conf'), aptConf());
    const sourcesKey = src.digest.slice(7, 23);
    const lists = path.join(this.listsRoot, sourcesKey);
    const aptCache = path.join(this.aptCacheRoot, sourcesKey);
    await fsp.mkdir(lists, { recursive: true });
    await fsp.mkdir(aptCache, { recursive: true });
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/root',
      LC_ALL: 'C.UTF-8',
      DEBIAN_FRONTEND: 'noninteractive',
      APT_CONFIG: '/run/strata/apt.conf',
    };
    env.SOURCE_DATE_EPOCH = String(await this.epoch(state));
    const tail = new OutputTail();
    for (const [k, v] of stepEnv(state)) env[k] = v;
    const mount = await this.snapshots.mountLowers(lower);
    const code = await runInSandbox({
      lower: mount.lower,
      mountCwd: mount.cwd,
      upper,
      work: ovlWork,
      merged,
      stage,
      binds: [
        { source: lists, target: 'lists' },
        { source: aptCache, target: 'cache' },
        { source: this.debCache, target: 'archives' },
        { source: this.context, target: 'context' },
        { source: out, target: 'out' },
      ],
      resolvConf: this.opts.resolvConf ?? '/etc/resolv.conf',
      env,
      command: this.stepCommand(ins),
      onOutput: (chunk) => {
        tail.push(chunk);
        this.emit({ type: 'output', chunk });
      },
      signal: this.opts.signal,
    });
    this.checkAbort();
    if (code !== 0) {
      const output = tail.text();
      const reason = failureReason(output);
      throw new BuildStepError(
        ins.loc,
        `${ins.kind} failed with exit code ${code}${reason ? `: ${reason}` : ''}`,
        { output },
      );
    }
    if (ins.kind === 'REMOVE') {
      const survivors = (await fsp.readFile(path.join(out, 'survivors'), 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean);
      if (survivors.length > 0) {
        const msg = `REMOVE left ${survivors.length} files the removed packages owned: ${survivors.slice(0, 5).join(', ')}${survivors.length > 5 ? ', …' : ''}`;
        if (ins.strict)
          throw new BuildStepError(ins.loc, msg, {
            hint: 'drop --strict-remove to accept, or RUN rm them',
          });
        this.emit({ type: 'warning', message: msg, loc: ins.loc });
      }
    }
  }

  // ---- result -------------------------------------------------------------------

  /**
   * What the template leaves out: the FROM template's record (a rule found there again gets the
   * new matches added, so each rule is listed once), then each other rule that kept paths
   * out of this build's layers (counted per layer, so cached and fresh builds agree), and
   * every EXCLUDE glob.
   */
  private exclusionsOf(state: StageState): Exclusion[] {
    const counts = new Map<string, number>();
    for (const l of state.layers) {
      for (const [p, n] of Object.entries(l.excluded ?? {}))
        counts.set(p, (counts.get(p) ?? 0) + n);
    }
    // One record per rule: a rule the FROM template recorded too adds its matches to that one.
    const out: Exclusion[] = state.baseExclusions.map((e) => ({ ...e }));
    const ruleKey = (r: Pick<Exclusion, 'action' | 'pattern'>): string =>
      `${r.action} ${r.pattern}`;
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
  private async withBuildchroot(state: StageState, rootfs: Descriptor): Promise<Descriptor> {
    let bc: Descriptor | undefined = state.inheritedBuildchroot;
    if (state.buildchroot !== undefined) {
      const stage = this.stages.get(state.buildchroot) as StageState;
      bc = (await this.writeImage(stage, false)).descriptor;
    }
    if (!bc) return rootfs;
    const role = (d: Descriptor, r: string): Descriptor => {
      const out: Descriptor = {
        mediaType: d.mediaType,
        digest: d.digest,
        size: d.size,
        annotations: { [ROLE]: r },
      };
      if (d.platform) out.platform = d.platform;
      return out;
    };
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaTypes.imageIndex,
      manifests: [role(rootfs, 'rootfs'), role(bc, 'buildchroot')],
      annotations: { 'io.strata.bundle': 'rootfs+buildchroot' },
    };
    return this.store.putJson(index, MediaTypes.imageIndex);
  }

  private async writeImage(
    state: StageState,
    final = true,
  ): Promise<{ descriptor: Descriptor; manifest: ImageManifest; config: ImageConfig }> {
    if (state.layers.length === 0)
      throw new InvalidArgumentError(`stage ${state.name} has no layers`);
    // The date this build used (see epoch): a fully cached rebuild against the same mirror
    // state gives the very same image.
    const created = isoDate(new Date((await this.epoch(state)) * 1000));
    const debArch = state.debArch ?? 'amd64';
    const platform = ociPlatform(debArch);
    const tagName = this.opts.tag ? this.opts.tag.replace(/:[^/:]*$/, '') : undefined;
    const name =
      state.labels[Annotations.title] ??
      (tagName === undefined ? state.name : final ? tagName : `${tagName}-${state.name}`);
    const metadata: TemplateMetadata = {
      schemaVersion: 1,
      name,
      created,
      features: [...state.features].sort(),
      architecture: debArch,
      distribution: state.distribution,
      packages: state.packages,
      exclusions: this.exclusionsOf(state),
      layers: state.layers.map((l) => l.record),
      baseChain: state.baseChain,
      labels: state.labels,
    };
    assertValid(validateTemplateMetadata, metadata, 'template metadata');
    const env = [...state.env].map(([k, v]) => `${k}=${v}`);
    if (!state.env.has('PATH'))
      env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    const config: ImageConfig = {
      created,
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      os: 'linux',
      config: { Env: env, Labels: { [Annotations.title]: name, ...state.labels } },
      rootfs: { type: 'layers', diff_ids: state.layers.map((l) => l.diffId) },
      history: state.layers.map((l) => l.history),
      strata: metadata,
    };
    assertValid(validateConfig, config, 'image config');
    const configDesc = await this.store.putJson(config, MediaTypes.imageConfig);
    const base = state.baseChain[state.baseChain.length - 1];
    const annotations: Record<string, string> = {
      [Annotations.title]: name,
      [Annotations.created]: created,
    };
    if (base) {
      annotations[Annotations.baseName] = base.ref;
      annotations[Annotations.baseDigest] = base.digest;
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config: configDesc,
      layers: state.layers.map((l) => l.desc),
      annotations,
    };
    assertValid(validateManifest, manifest, 'image manifest');
    const desc = await this.store.putJson(manifest, MediaTypes.imageManifest);
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
}

export async function build(store: Store, opts: BuildOptions): Promise<BuildResult> {
  return new Builder(store, opts).build();
}

export { ParseError };
