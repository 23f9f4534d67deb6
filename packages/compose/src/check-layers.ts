/**
 * Which of a checked template's layers each Stratafile step made: the chain's steps, walked as the
 * build walks them, placed on the template's layers after its base's.
 */

import { Digest, EmptyStepRecord, ImageConfig, LayerRecord, counted } from '@strata/oci';
import type { LayerInstruction, StageKeys, StepScope } from './stage-keys';
import { copyScope, envOfConfig, inheritScope, isLayerStep, startStage } from './stage-keys';
import { DebuildInstruction, Stage } from './stratafile';
import type { CheckReason } from './check-reason';

/** A layer step of the chain, with the scope (ENV, ARGs, sources) it ran in. */
export interface ChainStep {
  ins: LayerInstruction;
  scope: StepScope;
}

/** The chain's layer steps and DEBUILDs in build order, and the scope after its last step. */
export interface WalkedChain {
  steps: ChainStep[];
  debuilds: Array<{ ins: DebuildInstruction; scope: StepScope }>;
  scope: StepScope;
}

/**
 * Walk the `chain` of stages (root first) as the build does, from the root's base config
 * (`baseConfig`) and the architecture the template records.
 */
export async function walkChain(
  keys: StageKeys,
  chain: readonly Stage[],
  baseConfig: ImageConfig | undefined,
  architecture: string | undefined,
): Promise<WalkedChain> {
  const steps: ChainStep[] = [];
  const debuilds: WalkedChain['debuilds'] = [];
  let scope: StepScope = {
    env: envOfConfig(baseConfig),
    args: new Map(),
    excludes: [],
    // The steps ran as the template's architecture (its BOOTSTRAP's or its base's).
    ...(architecture ? { debArch: architecture } : {}),
  };
  for (const [n, st] of chain.entries()) {
    if (n > 0) scope = inheritScope(scope);
    startStage(scope, st.steps);
    for (const ins of st.steps) {
      if (await keys.apply(scope, ins)) continue;
      if (ins.kind === 'DEBUILD') debuilds.push({ ins, scope: copyScope(scope) });
      else if (isLayerStep(ins)) steps.push({ ins, scope: copyScope(scope) });
    }
  }
  return { steps, debuilds, scope };
}

/** Where a layer step is in the template. */
export interface PlacedStep {
  /** The record the template has for it (its layer's, or its empty step's). */
  record: LayerRecord | EmptyStepRecord | undefined;
  /** How many of the template's layers come before it. */
  layers: number;
}

/** The steps placed on the template's layers, and how many layers its bases gave. */
export interface Alignment {
  placed: PlacedStep[];
  nBase: number;
  /** The template's layers do not fit the Stratafile's steps. */
  mismatch?: CheckReason;
}

/**
 * Place `nSteps` layer steps on the template's layers (`diffIds`, `records`): steps that changed
 * nothing made no layer, and the metadata lists them (`emptySteps`), the base's
 * (`baseEmptySteps` of them) first.
 */
export function alignSteps(
  nSteps: number,
  diffIds: readonly Digest[],
  records: readonly LayerRecord[],
  emptySteps: readonly EmptyStepRecord[],
  baseEmptySteps: number,
  fromScratch: boolean,
): Alignment {
  const ownEmpty = emptySteps.slice(baseEmptySteps);
  const nBase = diffIds.length - (nSteps - ownEmpty.length);
  const placed = placeSteps(nSteps, nBase, diffIds, records, ownEmpty);
  if (nBase < 0 || (fromScratch && nBase !== 0)) {
    return {
      placed,
      nBase,
      mismatch: {
        kind: 'structure',
        message: `the Stratafile has ${counted(nSteps, 'layer step')}, but the template has ${counted(diffIds.length, 'layer')}${nBase > 0 ? ` (${nBase} from scratch?)` : ''}`,
      },
    };
  }
  return { placed, nBase };
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
): PlacedStep[] {
  const out: PlacedStep[] = [];
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
