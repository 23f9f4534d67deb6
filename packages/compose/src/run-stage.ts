import type { LockFile, LockedStep } from './lockfile';
import type { Instruction, Stage } from './stratafile';
import { lockedArgs } from './frozen';
import { BuildStepError, startStage } from './stage-keys';
import type { BuildContext, StageState, StepReport } from './build-state';
import { ResolvedBase, resolveFrom, stageKey } from './resolve-from';
import type { StepRunner } from './run-step';
import type { Debuilder } from './debuild';
import { StepOutcome, layerStep } from './layer-step';

/**
 * Runs a build's stages, each FROM its base and then step by step, and keeps what the build
 * reports of its steps: one report each, and how many ran and came from a cache.
 */
export class StageRunner {
  readonly reports: StepReport[] = [];
  private ran = 0;
  private hits = 0;
  /** The stages built so far, by their index in the file (what COPY --from names). */
  private readonly byIndex = new Map<number, StageState>();

  constructor(
    private readonly ctx: BuildContext,
    private readonly runner: Pick<StepRunner, 'execute'>,
    private readonly debuilder: Pick<Debuilder, 'run'>,
  ) {}

  /** Steps run, counting each source a DEBUILD built. */
  get stepsRun(): number {
    return this.ran;
  }

  /** Steps taken from a build cache, counting each source a DEBUILD took from one. */
  get cacheHits(): number {
    return this.hits;
  }

  /**
   * Build `stage` FROM `base` (its FROM template, resolved already) and record it in the build's
   * stages. `lock`: the lock the build read, whose entry for the stage FROM and --frozen compare
   * with.
   */
  async run(
    stage: Stage,
    lock: LockFile | undefined,
    base: ResolvedBase | undefined,
  ): Promise<StageState> {
    const name = stageKey(stage);
    this.ctx.emit({ type: 'stage', stage: name, index: stage.index });
    const locked = lock?.stages[stage.index];
    const state = await resolveFrom(this.ctx, stage, locked, base);
    const args = lockedArgs(stage);
    if (args) {
      const { steps: none, ...head } = state.lock;
      state.lock = { ...head, args, steps: none };
    }
    const steps = stage.steps;
    startStage(state, steps);
    for (const [i, ins] of steps.entries()) {
      this.ctx.checkAbort();
      this.ctx.emit({
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
    this.ctx.stages.set(name, state);
    this.byIndex.set(stage.index, state);
    return state;
  }

  /** Run one step; what became of it, unless it makes no layer and runs nothing. */
  private async step(
    state: StageState,
    ins: Instruction,
    locked: LockedStep | undefined,
  ): Promise<StepOutcome | undefined> {
    // ENV, ARG and SOURCES: what the next steps' environment and keys see.
    if (await this.ctx.keys.apply(state, ins)) return;
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
        this.ran += built;
        this.hits += cached;
        this.ctx.keys.localRepo = (await this.ctx.localRepo())?.release;
        return {
          status: built > 0 ? 'run' : 'cached',
          packagesAdded: [],
          packagesRemoved: [],
        };
      }
      case 'BUILDCHROOT':
        if (!this.ctx.stages.has(ins.stage))
          throw new BuildStepError(
            ins.loc,
            `BUILDCHROOT ${ins.stage}: no earlier stage of that name`,
          );
        state.buildchroot = ins.stage;
        return;
      default: {
        const outcome = await layerStep(this.ctx, this.runner, this.byIndex, state, ins, locked);
        if (outcome.status === 'run') this.ran++;
        else this.hits++;
        return outcome;
      }
    }
  }
}
