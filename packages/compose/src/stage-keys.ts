/**
 * How a stage's instructions set the environment and the cache key of each step. `strata build`
 * and `strata check` both go through here, so a check recomputes exactly the keys a build made.
 */

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Digest,
  ErrorCode,
  ImageConfig,
  InvalidArgumentError,
  StrataError,
  sha256,
} from '@strata/oci';
import {
  AptSources,
  Authorizer,
  IndexState,
  authorizationFor,
  hostSources,
  indexState,
  makeSources,
  parseAuthConf,
} from '@strata/debian';
import { hostDebianArchitecture } from '@strata/tools';
import { cacheKey, hashContextPaths } from './cache';
import { CopySource, CopySourceError, copySources, isGlob } from './copy-sources';
import { ContextIgnore, loadContextIgnore } from './ignore';
import { CopyInstruction, Instruction, LAYER_INSTRUCTIONS, Location } from './stratafile';

/** A step or FROM error, located in the Stratafile. */
export class BuildStepError extends StrataError {
  /** The last lines the failing step printed, if it ran: what a quiet build still shows. */
  readonly output?: string;

  constructor(
    readonly loc: Location,
    message: string,
    options?: { hint?: string; cause?: unknown; output?: string },
  ) {
    super(stepCode(options?.cause), `${loc.file}:${loc.line}:${loc.column}: ${message}`, options);
    if (options?.output) this.output = options.output;
  }
}

/**
 * A failed step's code: its cause's, when that says why (a registry that is down, a tag it lacks,
 * a full disk), so that a script can tell retry from fix; TOOL_FAILED otherwise. A cause's
 * INVALID_ARGUMENT stays TOOL_FAILED: that code means a usage error (exit 2), and a value in
 * the Stratafile is not one.
 */
function stepCode(cause: unknown): ErrorCode {
  if (cause instanceof StrataError && cause.code !== 'INVALID_ARGUMENT') return cause.code;
  return 'TOOL_FAILED';
}

/** What a step's environment and cache key depend on, besides its parent layers. */
export interface StepScope {
  /** ENV values: the FROM template's config, then each ENV of the stage (and its FROM stages). */
  env: Map<string, string>;
  /** ARG values declared so far in this stage; a stage does not inherit its FROM stage's. */
  args: Map<string, string>;
  /** The last SOURCES in force (inherited from a FROM stage); unset: the build's default. */
  sources?: AptSources;
  /**
   * EXCLUDE globs in force: those of the stage, wherever in it they stand, and those inherited
   * from a FROM stage. They shape every layer the stage adds.
   */
  excludes: string[];
  /**
   * The Debian architecture the steps run as: the FROM template's, what BOOTSTRAP made, or
   * before a BOOTSTRAP the platform being built. Unset for a template that records none (taken
   * as amd64) and before a BOOTSTRAP with no platform asked for (the host's).
   */
  debArch?: string;
}

/** The ENV of an image config (a FROM template's), as a map. */
export function envOfConfig(config: ImageConfig | undefined): Map<string, string> {
  const env = new Map<string, string>();
  for (const e of config?.config?.Env ?? []) {
    const eq = e.indexOf('=');
    if (eq > 0) env.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return env;
}

/** The scope a stage starts with when it is FROM an earlier stage. */
export function inheritScope(from: StepScope): StepScope {
  return {
    env: new Map(from.env),
    args: new Map(),
    sources: from.sources,
    excludes: [...from.excludes],
    ...(from.debArch !== undefined ? { debArch: from.debArch } : {}),
  };
}

/**
 * Put the EXCLUDE globs of a stage's `steps` in force from its first step: an EXCLUDE keeps its
 * paths out of the whole template, so it also holds for the steps written before it.
 */
export function startStage(
  scope: Pick<StepScope, 'excludes'>,
  steps: readonly Instruction[],
): void {
  for (const ins of steps) {
    if (ins.kind !== 'EXCLUDE') continue;
    for (const g of ins.globs) if (!scope.excludes.includes(g)) scope.excludes.push(g);
  }
}

/** A copy of `scope` that later instructions do not change. */
export function copyScope(scope: StepScope): StepScope {
  return {
    env: new Map(scope.env),
    args: new Map(scope.args),
    sources: scope.sources,
    excludes: [...scope.excludes],
    ...(scope.debArch !== undefined ? { debArch: scope.debArch } : {}),
  };
}

/**
 * The Debian architecture a layer step of `scope` builds for: BOOTSTRAP's `--architecture`, else
 * the stage's (its FROM template's), else, for a BOOTSTRAP, the host's (mmdebstrap's default);
 * a template that records none is amd64, as its image config says.
 */
export function stepArchitecture(scope: StepScope, ins: Instruction): string {
  if (ins.kind === 'BOOTSTRAP')
    return ins.architecture?.split(',')[0] ?? scope.debArch ?? hostDebianArchitecture();
  return scope.debArch ?? 'amd64';
}

/** The variables a step runs with and that its cache key holds: ARGs, then ENV over them, sorted. */
export function stepEnv(scope: StepScope): Array<[string, string]> {
  const env = new Map<string, string>(scope.args);
  for (const [k, v] of scope.env) env.set(k, v);
  return [...env].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export type LayerInstruction = Extract<Instruction, { kind: (typeof LAYER_INSTRUCTIONS)[number] }>;

const LAYER_KINDS: ReadonlySet<Instruction['kind']> = new Set(LAYER_INSTRUCTIONS);

/** Does the instruction make a layer (and so have a cache key)? */
export function isLayerStep(ins: Instruction): ins is LayerInstruction {
  return LAYER_KINDS.has(ins.kind);
}

/** A layer step's cache key and what went into it. */
export interface StepKey {
  key: Digest;
  /** The apt sources the step uses (apt steps and RUN). */
  sources?: AptSources;
  /** The key holds the state of the apt indices: it changes when the mirror does. */
  aptIndex: boolean;
  /** The build's own packages' Release digest, when the key holds it. */
  localRepo?: string;
  /** What a COPY copies, or an INSTALL's local .debs: the context files its key holds. */
  copy?: CopySource[];
  /** A `COPY --from`: the chain ID of the source stage's result, which its key holds. */
  fromChain?: Digest;
}

/**
 * As docker's COPY: a glob that matched several sources needs a directory, ending in `/`, to
 * copy them into. `copy` is what the sources of `ins` resolved to, in the context or (with
 * `--from`) in a stage's tree.
 */
export function checkManySources(ins: CopyInstruction, copy: readonly CopySource[]): void {
  if (copy.length <= 1 || ins.dest.endsWith('/')) return;
  const at = ins.sources.findIndex(isGlob);
  const what = ins.from ? `COPY --from=${ins.from.ref}` : 'COPY';
  throw new BuildStepError(
    ins.sourceLocs[at] ?? ins.loc,
    `${what} ${ins.sources[at] ?? ''} matches ${copy.length} paths (${copy.map((c) => c.written).join(', ')}): with several sources, the destination must be a directory ending in "/"`,
  );
}

export interface StageKeysOptions {
  /** Build context: SOURCES files, COPY sources and local .debs. */
  context: string;
  /**
   * The Stratafile: a `<Stratafile>.strataignore` beside it is the build's ignore file, before
   * the context's `.strataignore`.
   */
  stratafile?: string;
  /**
   * apt sources for steps before any SOURCES: a file, or sources already read from one (the
   * CLI's, read once: a file that changed after it was checked, or a FIFO, would give another
   * text); default: `defaultSources`, else the build host's.
   */
  aptSources?: string | AptSources;
  /**
   * The apt sources for steps before any SOURCES when no `aptSources` file is given (check's:
   * those the template records it was built with).
   */
  defaultSources?: AptSources;
  /**
   * apt's auth.conf (the `apt-auth` build secret): the credentials for reading a private
   * repository's Release files. They are not part of any key: they change who may read the
   * indices, not what the indices hold.
   */
  aptAuth?: Buffer;
}

/**
 * Walks a stage's instructions for their environment and cache keys. It caches the default apt
 * sources and the apt index state of each set of sources for the run (one build or check).
 */
export class StageKeys {
  private readonly context: string;
  private defaultSources?: Promise<AptSources>;
  private readonly indexStates = new Map<Digest, Promise<IndexState>>();
  /**
   * The Release digest of the packages DEBUILD made so far in this build: apt steps after a
   * DEBUILD can install them, so it is part of their keys (absent before, so other keys stay).
   */
  localRepo?: string;

  private readonly auth?: Authorizer;
  private ignoreFile?: { ignore: ContextIgnore | undefined };

  constructor(private readonly opts: StageKeysOptions) {
    this.context = path.resolve(opts.context);
    if (opts.aptAuth !== undefined) {
      const entries = parseAuthConf(opts.aptAuth.toString('utf8'));
      this.auth = (url) => authorizationFor(entries, url);
    }
  }

  /**
   * Apply ENV, ARG, SOURCES or EXCLUDE to `scope` and return true; return false for any other instruction.
   * Throws a BuildStepError for a SOURCES file outside the build context or missing from it.
   */
  async apply(scope: StepScope, ins: Instruction): Promise<boolean> {
    switch (ins.kind) {
      case 'ENV':
        for (const [k, v] of ins.vars) scope.env.set(k, v);
        return true;
      case 'ARG':
        scope.args.set(ins.name, ins.value ?? '');
        return true;
      case 'EXCLUDE':
        // In force already since the stage started (startStage).
        startStage(scope, [ins]);
        return true;
      case 'SOURCES': {
        const file = path.resolve(this.context, ins.file);
        if (!file.startsWith(this.context + path.sep))
          throw new BuildStepError(ins.loc, `SOURCES ${ins.file} is outside the build context`);
        const ignore = this.contextIgnore();
        if (ignore?.ignores(path.relative(this.context, file).split(path.sep).join('/')))
          throw new BuildStepError(
            ins.loc,
            `SOURCES ${ins.file}: not in the build context: ${ignore.file} excludes it`,
          );
        const text = await fsp.readFile(file, 'utf8').catch(() => {
          throw new BuildStepError(
            ins.loc,
            `SOURCES ${ins.file}: no such file in the build context`,
          );
        });
        scope.sources = makeSources(text, ins.file);
        return true;
      }
      default:
        return false;
    }
  }

  /**
   * What the build's ignore file leaves out of the context, read once, when a step first reads
   * the context; undefined when there is no ignore file. A malformed one is a ParseError.
   */
  contextIgnore(): ContextIgnore | undefined {
    this.ignoreFile ??= { ignore: loadContextIgnore(this.context, this.opts.stratafile) };
    return this.ignoreFile.ignore;
  }

  /** The apt sources a step in `scope` uses: the last SOURCES, else the build's default. */
  async sourcesFor(scope: StepScope): Promise<AptSources> {
    return scope.sources ?? this.defaultSourcesOf();
  }

  private defaultSourcesOf(): Promise<AptSources> {
    const file = this.opts.aptSources;
    const given = this.opts.defaultSources;
    this.defaultSources ??=
      typeof file === 'object'
        ? Promise.resolve(file)
        : file
          ? fsp.readFile(file, 'utf8').then((text) => makeSources(text, file))
          : given
            ? Promise.resolve(given)
            : hostSources();
    return this.defaultSources;
  }

  /**
   * Start reading the index state of the default apt sources, for a build that is sure to need
   * it; a failure surfaces where the state is awaited, as it would without this.
   */
  prefetchDefault(): void {
    this.defaultSourcesOf()
      .then((s) => this.indexStateOf(s))
      .catch(() => undefined);
  }

  private indexStateOf(sources: AptSources): Promise<IndexState> {
    let p = this.indexStates.get(sources.digest);
    if (!p) {
      p = indexState(sources, this.auth);
      this.indexStates.set(sources.digest, p);
    }
    return p;
  }

  /**
   * The Release files' sha256s of the mirror state `sources` resolve to in this run, or undefined
   * when a suite has none or the mirror cannot be reached (then a step just updates its lists).
   */
  async releasesOf(
    sources: AptSources,
  ): Promise<{ digest: Digest; releases: string[] } | undefined> {
    try {
      const s = await this.indexStateOf(sources);
      return s.releases ? { digest: s.digest, releases: s.releases } : undefined;
    } catch (e) {
      if (e instanceof StrataError) return undefined;
      throw e;
    }
  }

  /**
   * The date of the mirror state that the apt sources of `scope` resolve to: the newest `Date:`
   * of their Release files (as debuerreotype dates snapshots), or undefined when they have none.
   */
  async mirrorDate(scope: StepScope): Promise<number | undefined> {
    return (await this.indexStateOf(await this.sourcesFor(scope))).date;
  }

  /**
   * What a COPY reads: its globs expanded, its symlinks resolved inside the build context. Errors
   * name the source's place on the line.
   */
  private copySourcesOf(ins: CopyInstruction): CopySource[] {
    const copy = this.contextSourcesOf(ins.sources, ins.sourceLocs, ins.loc);
    checkManySources(ins, copy);
    return copy;
  }

  /** `sources` resolved in the build context (see copySources); errors name the source's place. */
  private contextSourcesOf(
    sources: readonly string[],
    locs: readonly Location[],
    loc: Location,
  ): CopySource[] {
    try {
      const ignore = this.contextIgnore();
      return copySources(this.context, sources, ignore !== undefined ? { ignore } : {});
    } catch (e) {
      if (!(e instanceof CopySourceError)) throw e;
      throw new BuildStepError(locs[e.index] ?? loc, e.message, {
        cause: e,
        ...(e.hint !== undefined ? { hint: e.hint } : {}),
      });
    }
  }

  /**
   * The cache key of layer step `ins` in `scope`, on the layers whose chain ID is `parent`.
   * `fromChain`: for a `COPY --from`, the chain ID of the source stage's result.
   */
  async keyFor(
    scope: StepScope,
    ins: Instruction,
    parent: Digest | undefined,
    fromChain?: Digest,
  ): Promise<StepKey> {
    const arch = stepArchitecture(scope, ins);
    const base = {
      parent: parent ?? null,
      instruction: ins.text,
      env: stepEnv(scope),
      // Only when there are any, so that the keys of Stratafiles without EXCLUDE stay as they were.
      ...(scope.excludes.length > 0 ? { excludes: scope.excludes } : {}),
      // A step built for arm64 is never a hit for amd64, even on the same parent chain (a
      // BOOTSTRAP without --architecture has none) and from another host through a shared
      // cache. amd64 keys leave it out, so that they stay as they were before foreign builds.
      ...(arch !== 'amd64' ? { architecture: arch } : {}),
    };
    switch (ins.kind) {
      case 'BOOTSTRAP':
      case 'INSTALL':
      case 'UPGRADE': {
        const sources = await this.sourcesFor(scope);
        const pinned =
          ins.kind === 'INSTALL' &&
          ins.debs.length === 0 &&
          ins.packages.every((p) => p.version !== undefined);
        // Local .debs are read as COPY reads its sources: globs expanded and symlinks followed
        // inside the context, so the key hashes the files that apt installs.
        const debs =
          ins.kind === 'INSTALL' && ins.debs.length > 0
            ? this.contextSourcesOf(ins.debs, ins.debLocs, ins.loc)
            : undefined;
        const inputs = debs
          ? [hashContextPaths(this.context, debs, this.contextIgnore())]
          : undefined;
        const aptIndex = pinned ? undefined : (await this.indexStateOf(sources)).digest;
        const localRepo = ins.kind === 'BOOTSTRAP' ? undefined : this.localRepo;
        return {
          key: cacheKey({
            ...base,
            aptSources: sources.digest,
            aptIndex,
            inputs,
            ...(localRepo ? { localRepo } : {}),
          }),
          sources,
          aptIndex: !pinned,
          ...(localRepo ? { localRepo } : {}),
          ...(debs ? { copy: debs } : {}),
        };
      }
      case 'REMOVE':
        return { key: cacheKey(base), aptIndex: false };
      case 'RUN': {
        const sources = await this.sourcesFor(scope);
        const localRepo = this.localRepo;
        return {
          key: cacheKey({
            ...base,
            aptSources: sources.digest,
            ...(localRepo ? { localRepo } : {}),
          }),
          sources,
          aptIndex: false,
          ...(localRepo ? { localRepo } : {}),
        };
      }
      case 'COPY': {
        // A --chown without a group once kept the group root's; it is the user's id now, as in
        // Docker, and the key says so, so that no cached layer of the old kind is taken.
        const gid = ins.chown !== undefined && !ins.chown.includes(':') ? { chownGid: 'uid' } : {};
        if (ins.from) {
          // The stage's result is keyed by its layers, not by the files copied: these would
          // have to be unpacked to be hashed, on every build, where a hit needs no tree at all.
          if (fromChain === undefined)
            throw new BuildStepError(
              ins.from.loc,
              `COPY --from=${ins.from.ref}: the stage has no layers to copy from`,
            );
          return { key: cacheKey({ ...base, ...gid, fromChain }), aptIndex: false, fromChain };
        }
        // A COPY of here-documents alone reads nothing of the build context.
        const copy = ins.sources.length > 0 ? this.copySourcesOf(ins) : [];
        // The text holds the here-documents as written; their content, substituted from the
        // ARG and ENV values, is what the files hold. Absent without any, so other keys stay.
        const heredocs = ins.heredocs?.map((d) => [d.name, sha256(d.content)]);
        return {
          key: cacheKey({
            ...base,
            ...gid,
            ...(ins.sources.length > 0
              ? { inputs: [hashContextPaths(this.context, copy, this.contextIgnore())] }
              : {}),
            ...(heredocs ? { heredocs } : {}),
          }),
          aptIndex: false,
          copy,
        };
      }
      default:
        throw new InvalidArgumentError(`${ins.kind} makes no layer`);
    }
  }
}
