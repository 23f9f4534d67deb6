import type {
  BaseTemplate,
  DebuildRecord,
  Compression,
  DebianPackage,
  Descriptor,
  Digest,
  Distribution,
  EmptyStepRecord,
  Exclusion,
  HistoryEntry,
  ImageConfig,
  ImageManifest,
  LayerRecord,
  PlatformSelector,
  ShadowedPackage,
} from '@strata/oci';
import { chainId } from '@strata/oci';
import type { AptSources } from '@strata/debian';
import type { Store } from '@strata/store';
import type { RepoContents } from './local-repo';
import type { LockedStage } from './lockfile';
import type { RemoteCache } from './remote-cache';
import type { StackLayer } from './snapshots';
import type { StageKeys } from './stage-keys';
import type { Location } from './stratafile';

export type BuildEvent =
  /** A build of several platforms starts on the next one. */
  | { type: 'platform'; platform: string }
  | { type: 'stage'; stage: string; index: number }
  | { type: 'step'; stage: string; step: number; steps: number; text: string; loc: Location }
  /** The step's base is being unpacked into a snapshot: compressed bytes of its layers so far. */
  | { type: 'unpack'; bytes: number; total: number }
  // No `layer`: the step changed nothing and made none.
  | { type: 'cached'; layer?: Descriptor }
  | { type: 'remote-cached'; layer?: Descriptor; from: string }
  | { type: 'layer'; layer?: Descriptor; seconds: number; added: string[]; removed: string[] }
  | { type: 'output'; chunk: Buffer }
  /**
   * DEBUILD built a source (or took it from the cache, `from` a remote one): the .debs, by file
   * name.
   */
  | {
      type: 'debs';
      source: string;
      cached: boolean;
      from?: string;
      files: string[];
      seconds: number;
    }
  | { type: 'warning'; message: string; loc?: Location }
  /** A FROM resolves to another digest than Stratafile.lock recorded (a build without --frozen). */
  | { type: 'base-moved'; ref: string; from: Digest; to: Digest; loc: Location }
  /**
   * The steps are over: the image, its SBOMs and .debs, and any buildchroot index are written,
   * and the result tagged. Its own phase, so that no step is charged for it.
   */
  | { type: 'write' };

export interface BuildOptions {
  /** Path of the Stratafile. */
  file: string;
  /**
   * The platforms to build for (`--platform`): the Stratafile is built once for each, and with
   * more than one the result is an OCI index with one image (or rootfs and buildchroot) per
   * platform. Unset: what the FROM templates are (a multi-platform one: the host's platform).
   */
  platforms?: PlatformSelector[];
  /** Build context directory (COPY sources, local .debs, SOURCES files); default: the Stratafile's dir. */
  context?: string;
  /** Tag for the result: the primary one, whose repository names the template. */
  tag?: string;
  /** More tags for the same result (`-t a -t b`, as docker build takes them). */
  moreTags?: string[];
  /**
   * The template's name (metadata and image title); default: the title LABEL, else the tag's
   * repository without its registry, else the stage's name.
   */
  name?: string;
  /** Stage to build (default: the last one). */
  target?: string;
  buildArgs?: Record<string, string>;
  /**
   * apt sources for every step: a file, or sources already read from one (see StageKeysOptions);
   * default: the build host's. A SOURCES instruction overrides.
   */
  aptSources?: string | AptSources;
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
  /**
   * In the apt steps of a foreign template, unpack packages with the host's dpkg (the root's
   * dpkg, under emulation, still configures them). Default true; used only where the root's dpkg
   * is of the host's release series.
   */
  nativeDpkg?: boolean;
  /**
   * Build secrets by id (`--secret`): what a `RUN --mount=type=secret,id=…` step sees.
   * `apt-auth` is apt's auth.conf for the apt steps (INSTALL, UPGRADE, DEBUILD's build
   * dependencies). Never stored, keyed, logged or printed: a key holds only the ids a RUN mounts.
   */
  secrets?: Record<string, Buffer>;
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
  /** The primary tag, as the store spells it. */
  ref?: string;
  /** Every tag the result got, the primary first. */
  refs?: string[];
  /** For a build of several platforms: each one's result (`descriptor` is then their index). */
  platforms?: PlatformResult[];
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  cacheHits: number;
  stepsRun: number;
  /** The lock written, or with --frozen the lock checked (unset: the build wrote none). */
  lockFile?: string;
  /** Whether the build wrote `lockFile` (never with --frozen). */
  lockWritten?: boolean;
  /** The .debs DEBUILD made (or took from the cache) in this build, in the order built. */
  debs?: Array<{ filename: string; digest: Digest; size: number }>;
  /** Every step of the stages built, in the order they ran (with several platforms: each's). */
  steps: StepReport[];
}

/**
 * What became of one step. `status`: `run`, `cached` (the local build cache), `remote-cached`
 * (a `cacheFrom` registry, named by `from`), or `none` for a step that makes no layer (ENV, ARG,
 * LABEL, FEATURE, SOURCES, BUILDCHROOT). A DEBUILD makes no layer either: it is `run` when it
 * built a source, else `cached`.
 */
export interface StepReport {
  /** In a build of several platforms, the one the step was built for (os/arch[/variant]). */
  platform?: string;
  /** The stage's name, or `#index` for an unnamed one. */
  stage: string;
  /** 1-based, within its stage. */
  step: number;
  instruction: string;
  file: string;
  line: number;
  column: number;
  status: 'run' | 'cached' | 'remote-cached' | 'none';
  from?: string;
  /** A `COPY --from`: the stage it copied from, and the chain ID of that stage's layers. */
  copiedFrom?: { stage: string; chain: Digest };
  cacheKey?: Digest;
  layer?: Descriptor;
  /** A layer step that changed nothing, so made no layer (it has no `layer`). */
  emptyLayer?: true;
  /** `name=version` of every package the step added or changed. */
  packagesAdded: string[];
  packagesRemoved: string[];
  /** The step's own time: the image's writing after the last step is not part of it. */
  seconds: number;
}

export interface PlatformResult {
  /** The platform as its image's config names it (`linux/arm64/v8`). */
  platform: PlatformSelector;
  /** The platform's image, or its rootfs + buildchroot index. */
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** The platform's lock, `Stratafile.<arch>.lock`, written or (--frozen) checked. */
  lockFile?: string;
  lockWritten?: boolean;
}

export interface BuiltLayer {
  desc: Descriptor;
  diffId: Digest;
  record: LayerRecord;
  history: HistoryEntry;
  /** Paths each exclusion rule kept out of this layer (layers built from a Stratafile). */
  excluded?: Record<string, number>;
}

/** A step that made no layer: its image has only its `empty_layer` history entry. */
export interface EmptyStep {
  /** How many layers come before it. */
  after: number;
  history: HistoryEntry;
  /** A Stratafile step's record (none for an empty history entry of a base made elsewhere). */
  record?: EmptyStepRecord;
  /** Paths each exclusion rule kept out of it, as BuiltLayer's. */
  excluded?: Record<string, number>;
}

export interface StageState {
  name: string;
  layers: BuiltLayer[];
  /** Steps that made no layer, here and in what it comes FROM, in build order. */
  emptySteps: EmptyStep[];
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
  /** What DEBUILD built for this stage and the stages it comes FROM. */
  debuilds: DebuildRecord[];
  /** Packages its layers removed or replaced, still in lower blobs (metadata shadowedPackages). */
  shadowed: ShadowedPackage[];
  /**
   * The apt sources its steps used (apt steps and RUN, whose keys hold them), here and in what it
   * comes FROM (metadata aptSources).
   */
  aptSources: string[];
  /** Exclusions recorded by the FROM template. */
  baseExclusions: Exclusion[];
  /** The FROM line that named the template the first `layers` layers are, for its errors. */
  from?: { ref: string; loc: Location; layers: number };
  /** Stage named by BUILDCHROOT. */
  buildchroot?: string;
  /** The buildchroot image inherited from the FROM template (an index with both roles). */
  inheritedBuildchroot?: Descriptor;
  lock: LockedStage;
}

export function chainOf(layers: readonly BuiltLayer[]): Digest | undefined {
  return chainId(layers.map((l) => l.diffId));
}

export function stackOf(layers: readonly BuiltLayer[]): StackLayer[] {
  return layers.map((l) => ({
    digest: l.desc.digest,
    size: l.desc.size,
    mediaType: l.desc.mediaType,
    diffId: l.diffId,
  }));
}

/**
 * What the parts of a build share: the store and options, the stages built so far, the step
 * keys, and the build's events, abort signal and date.
 */
export interface BuildContext {
  readonly store: Store;
  readonly opts: BuildOptions;
  /** The platform this run builds for, when one was asked for (`--platform`). */
  readonly platform?: PlatformSelector;
  /** The build context directory. */
  readonly context: string;
  /** The lock file this build reads and writes (Stratafile.lock, or a platform's own). */
  readonly lockFile: string;
  readonly stages: Map<string, StageState>;
  /** Step environments and cache keys, as `strata check` recomputes them. */
  readonly keys: StageKeys;
  emit(e: BuildEvent): void;
  /** Throws when the build was interrupted. */
  checkAbort(): void;
  /** The date this build uses for a stage, in seconds. */
  epoch(state: StageState): Promise<number>;
  /** The apt repository of the packages DEBUILD made so far; undefined before there are any. */
  localRepo(): Promise<RepoContents | undefined>;
  /**
   * Make the .debs attached to a FROM template installable by name in this build: those on
   * `desc` (an index) and on `rootfs`, the image FROM chose from it.
   */
  inheritDebs(desc: Descriptor, rootfs: Descriptor): Promise<void>;
}

function pkgKey(p: DebianPackage): string {
  return `${p.name}:${p.architecture}`;
}

/** Packages added or changed (`name=version`) and removed (`name`) between two dpkg states. */
export function packageDelta(
  before: DebianPackage[],
  after: DebianPackage[],
): { added: string[]; removed: string[]; gone: DebianPackage[] } {
  const b = new Map(before.map((p) => [pkgKey(p), p]));
  const a = new Map(after.map((p) => [pkgKey(p), p]));
  const added: string[] = [];
  const removed: string[] = [];
  const gone: DebianPackage[] = [];
  for (const [k, p] of a) if (b.get(k)?.version !== p.version) added.push(`${p.name}=${p.version}`);
  for (const [k, p] of b) {
    const now = a.get(k);
    if (now === undefined) removed.push(`${p.name}=${p.version}`);
    if (now?.version !== p.version) gone.push(p);
  }
  return { added: added.sort(), removed: removed.sort(), gone };
}

/**
 * The packages a step's layer shadows: those of `before` that it removed or replaced by another
 * version, each with the lower layer whose blob still holds it (the topmost that records adding
 * that version, else the base layer, which a template's import or BOOTSTRAP made).
 */
export function shadowedBy(
  gone: readonly DebianPackage[],
  lower: ReadonlyArray<{ diffId: Digest; record: LayerRecord }>,
): ShadowedPackage[] {
  const out: ShadowedPackage[] = [];
  for (const p of gone) {
    const key = `${p.name}=${p.version}`;
    let layer = lower[0]?.diffId;
    for (let i = lower.length - 1; i > 0; i--) {
      if (lower[i]?.record.packagesAdded?.includes(key)) {
        layer = lower[i]?.diffId;
        break;
      }
    }
    if (layer !== undefined) out.push({ ...p, layer });
  }
  return out;
}

/**
 * What a template's metadata says is shadowed: every package a layer removed or replaced, unless
 * the final rootfs has that same version again. Sorted by name, then version.
 */
export function shadowedPackages(state: StageState): ShadowedPackage[] {
  const installed = new Set(state.packages.map((p) => `${pkgKey(p)}=${p.version}`));
  const seen = new Set<string>();
  return state.shadowed
    .filter((p) => {
      const k = `${pkgKey(p)}=${p.version}`;
      if (installed.has(k) || seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : x.version < y.version ? -1 : 1));
}

/**
 * Add the `deb` entries of `sources` that `state` does not record yet, without credentials (a
 * `user:password@` in a URI): the metadata is published with the template.
 */
export function recordAptSources(state: StageState, sources: AptSources): void {
  for (const entry of publishedAptSources(sources))
    if (!state.aptSources.includes(entry)) state.aptSources.push(entry);
}

/** The `deb` entries of `sources` as a template's metadata records them: without credentials. */
export function publishedAptSources(sources: AptSources): string[] {
  return sources.text
    .split('\n')
    .map((line) => line.trim().replace(/(\w+:\/\/)[^/\s@]*@/g, '$1'))
    .filter((entry) => entry.startsWith('deb '));
}
