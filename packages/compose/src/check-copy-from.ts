/**
 * The stages a checked template's `COPY --from` lines read. They are not in the template: only the
 * chain ID of their result is, in the copy's layer record. A check walks each such stage as the
 * build would now (its FROM resolved now, each step's key computed with the build's StageKeys on
 * the layers before it) and looks every key up in the build cache: a step whose key the cache
 * lacks would run again, and a result of another chain ID would be copied.
 */

import { Digest, ImageConfig, StrataError, chainId, stepLine } from '@strata/oci';
import { Store } from '@strata/store';
import { debianArchitecture, debianArchitectureOf } from '@strata/debian';
import { peekCache } from './cache';
import {
  LayerInstruction,
  StageKeys,
  StepScope,
  envOfConfig,
  inheritScope,
  isLayerStep,
  startStage,
} from './stage-keys';
import { CopyInstruction, StageHead, Stratafile, parseStratafile } from './stratafile';
import { stageKey } from './resolve-from';
import { BaseCheckOptions, currentBase, imageOf } from './check-bases';
import { CheckReason, where } from './check-reason';

/** What a stage would give if it were built now, as far as the build cache tells. */
export type StageResult =
  /** Every step is in the build cache: the layers they give, and the scope after them. */
  | { kind: 'result'; layers: Digest[]; scope: StepScope; sf: Stratafile }
  /** The key of `ins`, a step of `stage`, is not in the build cache. */
  | { kind: 'miss'; stage: string; ins: LayerInstruction }
  /** The key of a step could not be computed (a COPY source that is gone): `message` says why. */
  | { kind: 'failed'; message: string }
  /** The check cannot tell what the stage would give: `message` says why. */
  | { kind: 'unknown'; message: string };

export interface StageResultsOptions extends BaseCheckOptions {
  /** The Stratafile's text and path, and the build args it is checked with. */
  text: string;
  file: string;
  buildArgs: Record<string, string>;
  heads: readonly StageHead[];
  /**
   * The build's own packages' Release digests that the template's records hold: a step of a
   * stage FROM a template that carries built packages was keyed with one of them.
   */
  localRepos: readonly string[];
}

/** The results of the stages `COPY --from` lines read, each walked once per check. */
export class StageResults {
  private readonly results = new Map<number, Promise<StageResult>>();

  constructor(
    private readonly store: Store,
    private readonly keys: StageKeys,
    private readonly opts: StageResultsOptions,
  ) {}

  /** What the stage of `index` would give now. */
  result(index: number): Promise<StageResult> {
    let p = this.results.get(index);
    if (!p) {
      p = this.walk(index);
      this.results.set(index, p);
    }
    return p;
  }

  private async walk(index: number): Promise<StageResult> {
    const head = this.opts.heads[index];
    if (!head) return { kind: 'unknown', message: `the Stratafile has no stage ${index}` };
    const start = await this.start(head);
    if (start.kind !== 'result') return start;
    const { layers, scope, sf } = start;
    const stage = sf.stages[index];
    if (!stage) return { kind: 'unknown', message: `the Stratafile has no stage ${index}` };
    const name = stageKey(head);
    startStage(scope, stage.steps);
    for (const ins of stage.steps) {
      if (await this.keys.apply(scope, ins)) continue;
      if (ins.kind === 'DEBUILD')
        return {
          kind: 'unknown',
          message: `stage ${name} builds packages (${where(ins.loc)}: ${stepLine(ins.text)}), which check does not rebuild`,
        };
      if (!isLayerStep(ins)) continue;
      const step = await this.step(name, scope, ins, layers);
      if (step !== undefined) return step;
    }
    return { kind: 'result', layers, scope, sf };
  }

  /**
   * Look up layer step `ins` of stage `name` in the build cache, and on a hit add its layer to
   * `layers`; a result other than a hit says why the stage stops there.
   */
  private async step(
    name: string,
    scope: StepScope,
    ins: LayerInstruction,
    layers: Digest[],
  ): Promise<StageResult | undefined> {
    let fromChain: Digest | undefined;
    if (ins.kind === 'COPY' && ins.from) {
      const source = await this.result(ins.from.index);
      if (source.kind !== 'result') return source;
      fromChain = chainId(source.layers);
    }
    // The build's own packages are in the keys of apt steps and RUN: a stage on a template that
    // carries some was keyed with their Release digest, which the template's records hold.
    const repos =
      ins.kind === 'RUN' || ins.kind === 'INSTALL' || ins.kind === 'UPGRADE'
        ? [undefined, ...this.opts.localRepos]
        : [undefined];
    for (const repo of repos) {
      this.keys.localRepo = repo;
      let key: Digest;
      try {
        key = (await this.keys.keyFor(scope, ins, chainId(layers), fromChain)).key;
      } catch (e) {
        if (!(e instanceof StrataError)) throw e;
        return { kind: 'failed', message: `stage ${name}: ${e.message}` };
      }
      const entry = await peekCache(this.store, key);
      if (!entry) continue;
      if (ins.kind === 'BOOTSTRAP')
        scope.debArch = entry.architecture ?? debianArchitecture(entry.packages);
      if (entry.layer && entry.diffId) layers.push(entry.diffId);
      return undefined;
    }
    return { kind: 'miss', stage: name, ins };
  }

  /** The layers and scope a stage starts with, and the Stratafile parsed with its base's ENV. */
  private async start(head: StageHead): Promise<StageResult> {
    const f = head.from;
    if (f.refKind === 'stage') {
      const earlier = this.opts.heads.find((h) => h.name === f.ref);
      if (!earlier) return { kind: 'unknown', message: `no stage named ${f.ref}` };
      const from = await this.result(earlier.index);
      if (from.kind !== 'result') return from;
      return { ...from, layers: [...from.layers], scope: inheritScope(from.scope) };
    }
    const sf = (env?: ReadonlyMap<string, string>) =>
      parseStratafile(this.opts.text, this.opts.file, this.opts.buildArgs, {
        baseEnv: (i) => (i === head.index ? env : undefined),
      });
    if (f.refKind === 'scratch') {
      const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
      // A BOOTSTRAP without --architecture takes the platform being built.
      if (this.opts.platform) scope.debArch = debianArchitectureOf(this.opts.platform);
      return { kind: 'result', layers: [], scope, sf: sf() };
    }
    let config: ImageConfig;
    try {
      const desc = await currentBase(this.store, f, this.opts);
      if (!desc) return { kind: 'unknown', message: `FROM ${f.ref} holds no image` };
      config = (await imageOf(this.store, desc, f.ref, this.opts.platform)).config;
    } catch (e) {
      if (!(e instanceof StrataError)) throw e;
      return { kind: 'unknown', message: `${where(f.loc)}: FROM ${f.ref}: ${e.message}` };
    }
    const env = envOfConfig(config);
    const scope: StepScope = {
      env: new Map(env),
      args: new Map(),
      excludes: [],
      ...(config.strata?.architecture ? { debArch: config.strata.architecture } : {}),
    };
    return { kind: 'result', layers: [...config.rootfs.diff_ids] as Digest[], scope, sf: sf(env) };
  }
}

/**
 * Does the stage `ins` copies from still give the result the template copied (`copiedFrom`)? A
 * reason at the copy's line when it does not, or when the check cannot tell. `copyKey`: the key
 * the template records for the copy; while the build cache holds its entry, it holds the entries
 * of the stage's steps from the same build too, so a step it lacks is a changed one.
 */
export async function checkCopySource(
  store: Store,
  results: StageResults,
  ins: CopyInstruction,
  copiedFrom: { stage: string; chain: Digest },
  copyKey: Digest,
): Promise<CheckReason | undefined> {
  if (!ins.from) return undefined;
  const stage = copiedFrom.stage;
  const now = await results.result(ins.from.index);
  const reason = (message: string): CheckReason => ({
    kind: 'step',
    loc: ins.loc,
    message: `${stepLine(ins.text)}: ${message}`,
  });
  switch (now.kind) {
    case 'result': {
      const chain = chainId(now.layers);
      if (chain === copiedFrom.chain) return undefined;
      return reason(
        `stage ${stage} changed: it now gives ${chain ?? 'no layers'}, the template copied ${copiedFrom.chain} (one of its steps, or its FROM, changed since the build)`,
      );
    }
    case 'failed':
      return reason(`changed: ${now.message}`);
    case 'unknown':
      return reason(`cannot tell whether stage ${stage} changed: ${now.message}`);
    case 'miss': {
      const at = `${where(now.ins.loc)}: ${stepLine(now.ins.text)}`;
      if (await peekCache(store, copyKey))
        return reason(
          `stage ${now.stage} changed: ${at} is not in the build cache: its input changed since the build (a rebuild runs it again)`,
        );
      return reason(
        `cannot tell whether stage ${now.stage} changed: the build cache no longer holds the build's entries (${at} is not in it); rebuild, or check where the template was built`,
      );
    }
  }
}

/** The build's own packages' Release digests the records of a template hold, each once. */
export function recordedLocalRepos(records: ReadonlyArray<{ localRepo?: string }>): string[] {
  return [...new Set(records.flatMap((r) => (r.localRepo ? [r.localRepo] : [])))];
}
