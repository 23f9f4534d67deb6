/**
 * The per-step comparison of a check: each layer step's cache key, recomputed with the build's
 * own StageKeys on the template's own layers, against the key its record holds.
 */

import { Digest, StrataError, TemplateMetadata, chainId, stepLine } from '@strata/oci';
import { AptSources, hostSources, makeSources } from '@strata/debian';
import { LayerInstruction, StageKeys, StepKey } from './stage-keys';
import { publishedAptSources } from './build-state';
import type { CheckReason } from './check-reason';
import type { CopyInstruction } from './stratafile';
import type { ChainStep, PlacedStep } from './check-layers';

/** What a check's StageKeys are made from, besides the default apt sources. */
export interface KeyOptions {
  context: string;
  stratafile?: string;
  aptAuth?: Buffer;
}

/** A layer step placed on the template, with the chain ID of the layers before it. */
interface PlacedChainStep extends ChainStep {
  record: PlacedStep['record'];
  parent: Digest | undefined;
}

/**
 * The keys to compare the steps with. Without an --apt-sources file, the apt sources the template
 * was built with, not the host's: a check on another machine than the build's would otherwise
 * find every apt step stale. `note`: why those may not be the build's.
 */
export async function keysOfBuild(
  given: StageKeys,
  keyOpts: KeyOptions,
  aptSourcesGiven: boolean,
  meta: TemplateMetadata,
  baseSources: readonly string[],
  steps: readonly ChainStep[],
  placed: readonly PlacedStep[],
  diffIds: readonly Digest[],
): Promise<{ keys: StageKeys; note?: string }> {
  if (aptSourcesGiven || meta.aptSources === undefined || meta.aptSources.length === 0)
    return { keys: given };
  const chosen = await recordedSourcesKeys(
    keyOpts,
    meta.aptSources,
    baseSources,
    steps.map((st, i) => ({
      ...st,
      record: placed[i]?.record,
      parent: chainId(diffIds.slice(0, placed[i]?.layers ?? 0)),
    })),
  );
  if (chosen.matched) return { keys: chosen.keys };
  return {
    keys: chosen.keys,
    note: "the apt sources the template records do not give its steps' keys (a build that read SOURCES files or sources with credentials?): give check the build's --apt-sources",
  };
}

/**
 * The keys of a check run without --apt-sources, on the apt sources the template records. The
 * record is every `deb` entry its steps and its bases' used, so the build's own sources file is
 * the entries its base did not have, or all of them (a file that repeated the base's); the one
 * that gives the first step on the default sources its recorded key is taken. `matched` is false
 * when neither does (SOURCES files, or credentials the record leaves out, were in the build).
 */
async function recordedSourcesKeys(
  keyOpts: KeyOptions,
  recorded: readonly string[],
  fromBase: readonly string[],
  steps: readonly PlacedChainStep[],
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
 * Whether the stage a `COPY --from` line copies from still gives the result the template copied
 * (`copiedFrom`); `copyKey`: the key the template records for the copy.
 */
export type CopySourceCheck = (
  ins: CopyInstruction,
  copiedFrom: { stage: string; chain: Digest },
  copyKey: Digest,
) => Promise<CheckReason | undefined>;

/**
 * Recompute each step's key on the template's layers before it (`diffIds`) and compare it with
 * the key its record holds; `recordedSources`: the apt sources the template records, if any.
 * A `COPY --from` is also checked for its stage's result, by `copySource`.
 */
export async function compareSteps(
  keys: StageKeys,
  steps: readonly ChainStep[],
  placed: readonly PlacedStep[],
  diffIds: readonly Digest[],
  recordedSources: readonly string[] | undefined,
  copySource: CopySourceCheck,
): Promise<CheckReason[]> {
  const reasons: CheckReason[] = [];
  for (const [i, { ins, scope }] of steps.entries()) {
    const at = placed[i];
    if (!at || at.layers < 0) continue;
    const li = at.layers;
    const record = at.record;
    if (!record?.cacheKey) {
      reasons.push({
        kind: 'step',
        loc: ins.loc,
        message: `${stepLine(ins.text)}: layer ${li + 1} of the template was not made by a Stratafile step`,
      });
      continue;
    }
    // A COPY --from's stage is not in the template: only the chain ID of its result is, which
    // its key holds. The line itself is compared on that result, the stage by `copySource`.
    if (ins.kind === 'COPY' && ins.from) {
      if (!record.copiedFrom) {
        reasons.push({
          kind: 'step',
          loc: ins.loc,
          message: `${stepLine(ins.text)}: layer ${li + 1} of the template does not record a stage it was copied from`,
        });
        continue;
      }
      const source = await copySource(ins, record.copiedFrom, record.cacheKey);
      if (source) reasons.push(source);
    }
    let keyed: StepKey;
    // The build's own packages the step's apt saw, as recorded: a DEBUILD that changed since is
    // reported as itself, not again as every apt step after it.
    keys.localRepo = record.localRepo;
    try {
      keyed = await keys.keyFor(
        scope,
        ins,
        chainId(diffIds.slice(0, li)),
        record.copiedFrom?.chain,
      );
    } catch (e) {
      if (!(e instanceof StrataError)) throw e;
      reasons.push({ kind: 'step', loc: ins.loc, message: `${stepLine(ins.text)}: ${e.message}` });
      continue;
    }
    if (keyed.key === record.cacheKey) continue;
    reasons.push({
      kind: 'step',
      loc: ins.loc,
      message: `${stepLine(ins.text)}: changed: ${whyChanged(ins, record.createdBy, keyed, recordedSources)}`,
    });
  }
  return reasons;
}

/**
 * Why a step's key is not the one recorded: the template records the key, not what went into
 * it, so the likely causes are named. `createdBy`: the instruction the template records.
 */
function whyChanged(
  ins: LayerInstruction,
  createdBy: string,
  keyed: StepKey,
  recordedSources: readonly string[] | undefined,
): string {
  // Templates from before metadata kept the sources cannot say which the build used.
  const unrecorded =
    keyed.sources && recordedSources
      ? publishedAptSources(keyed.sources).find((e) => !recordedSources.includes(e))
      : undefined;
  if (createdBy !== ins.text) {
    // Of a step with here-documents, the first line alone may be what both have.
    return stepLine(createdBy) === stepLine(ins.text)
      ? 'the lines of its here-documents differ from the ones it was built with'
      : `the template has "${stepLine(createdBy)}" here`;
  }
  // Sources and ARG/ENV values (in its destination, --chown) cannot be told apart.
  if (ins.kind === 'COPY' && ins.from)
    return `an ARG/ENV value changed (stage ${ins.from.ref}'s result is the one the template records)`;
  if (ins.kind === 'COPY') return 'its sources in the build context or an ARG/ENV value changed';
  if (unrecorded !== undefined)
    return `its apt sources are not the build's: ${keyed.sources?.origin} has "${unrecorded}", which the template did not use (give check the build's --apt-sources)`;
  if (keyed.aptIndex) return 'the apt indices changed since the build (or an ARG/ENV value did)';
  return 'an ARG/ENV value or the apt sources changed';
}
