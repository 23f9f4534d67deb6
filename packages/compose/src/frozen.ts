import * as path from 'node:path';
import type { LockFile, LockedStage } from './lockfile';
import { BuildStepError } from './stage-keys';
import { Instruction, LAYER_INSTRUCTIONS, Location, Stage, StageHead } from './stratafile';

/**
 * `--frozen` compares the Stratafile with its lock before anything is resolved or run: a
 * difference the texts show needs no base, mirror or step to find, and a step that ran first
 * would only fail later, on what it installed, for a reason the user did not change.
 */

const HINT = 'rebuild without --frozen to update Stratafile.lock';

/** The instructions that become the steps of a stage's lock entry (see layerStep). */
function lockedKinds(ins: Instruction): boolean {
  return (LAYER_INSTRUCTIONS as readonly string[]).includes(ins.kind);
}

function fail(loc: Location, message: string): never {
  throw new BuildStepError(loc, `--frozen: ${message}`, { hint: HINT });
}

function stageName(s: StageHead): string {
  return s.name ?? `#${s.index}`;
}

function fromRef(s: StageHead): string {
  return s.from.refKind === 'scratch' ? 'scratch' : s.from.ref;
}

/**
 * The lock entry of a stage the build skipped (the target does not need it): the one the lock
 * has for it, else one without steps, which a `--frozen` build that needs the stage refuses.
 */
export function skippedStageLock(head: StageHead, lock: LockFile | undefined): LockedStage {
  const old = lock?.stages[head.index];
  if (old && old.name === stageName(head) && old.from.ref === fromRef(head)) return old;
  return { name: stageName(head), from: { ref: fromRef(head) }, steps: [] };
}

/**
 * The stages that building stage `target` needs, as docker's BuildKit builds them: the target,
 * the stage its FROM names, the stage a BUILDCHROOT names, the stages its COPY --from lines
 * read, and theirs in turn. Others are not built.
 */
export function stagesNeeded(stages: readonly Stage[], target: number): Set<number> {
  const byName = new Map<string, number>();
  for (const s of stages) if (s.name !== undefined) byName.set(s.name, s.index);
  const needed = new Set<number>();
  const todo = [target];
  for (let i = todo.pop(); i !== undefined; i = todo.pop()) {
    const stage = stages[i];
    if (needed.has(i) || stage === undefined) continue;
    needed.add(i);
    const names = stage.steps.flatMap((ins) => (ins.kind === 'BUILDCHROOT' ? [ins.stage] : []));
    if (stage.from.refKind === 'stage') names.push(stage.from.ref);
    for (const n of names) {
      const j = byName.get(n);
      if (j !== undefined) todo.push(j);
    }
    for (const ins of stage.steps) if (ins.kind === 'COPY' && ins.from) todo.push(ins.from.index);
  }
  return needed;
}

/**
 * The stages `built` (those the target needs, in file order, the target last) against the
 * lock's: their names and FROM references, each at its place in the file. `whole` says the
 * build takes the last stage of the file, so that a stage the lock has beyond it is one the
 * Stratafile lost.
 */
export function checkFrozenHeads(
  built: readonly StageHead[],
  lock: LockFile,
  lockFile: string,
  whole: boolean,
): void {
  const name = path.basename(lockFile);
  for (const head of built) {
    const locked: LockedStage | undefined = lock.stages[head.index];
    if (!locked) fail(head.from.loc, `stage ${stageName(head)} is not in ${name}`);
    if (locked.name !== stageName(head))
      fail(
        head.from.loc,
        `stage ${stageName(head)} is not in ${name} (it has stage ${locked.name} here)`,
      );
    if (locked.from.ref !== fromRef(head))
      fail(
        head.from.loc,
        `FROM ${fromRef(head)} is not in ${name} (it has FROM ${locked.from.ref} here)`,
      );
  }
  const last = built[built.length - 1];
  const extra = last && lock.stages[last.index + 1];
  if (whole && last && extra)
    fail(
      last.from.loc,
      `${name} has a stage ${extra.name} after this one, which the Stratafile no longer has`,
    );
}

/** What the lock records of `stage`'s ARGs (see LockedStage.args); undefined when it has none. */
export function lockedArgs(stage: Stage): Record<string, string | null> | undefined {
  const args: Record<string, string | null> = {};
  for (const ins of stage.steps) if (ins.kind === 'ARG') args[ins.name] = ins.value ?? null;
  return Object.keys(args).length > 0 ? args : undefined;
}

function shown(value: string | null | undefined): string {
  return value === null || value === undefined ? 'unset' : JSON.stringify(value);
}

/**
 * The ARG values of `stage` against the lock's: a value given by another `--build-arg`, or a
 * default edited, fails at its ARG line; an ARG the lock has and the stage no longer declares
 * fails at the stage's FROM.
 */
function checkFrozenArgs(stage: Stage, locked: LockedStage | undefined, name: string): void {
  const want = locked?.args ?? {};
  const declared = new Set<string>();
  for (const ins of stage.steps) {
    if (ins.kind !== 'ARG') continue;
    declared.add(ins.name);
    const value = ins.value ?? null;
    if (!Object.prototype.hasOwnProperty.call(want, ins.name))
      fail(ins.loc, `ARG ${ins.name} is not in ${name} (its value there is not recorded)`);
    if (want[ins.name] !== value)
      fail(
        ins.loc,
        `ARG ${ins.name} is ${shown(value)}, but ${name} has ${shown(want[ins.name])} (another --build-arg?)`,
      );
  }
  const gone = Object.keys(want).find((k) => !declared.has(k));
  if (gone !== undefined)
    fail(
      stage.from.loc,
      `${name} has ARG ${gone} in stage ${stageName(stage)}, which the Stratafile no longer declares`,
    );
}

/**
 * The steps of each stage in `built` against the lock's instructions, in order: the first one
 * that differs, that the lock lacks, or that the lock has and the Stratafile no longer does.
 * The texts are the canonical ones after substitution, as the lock records them.
 */
export function checkFrozenSteps(built: readonly Stage[], lock: LockFile, lockFile: string): void {
  const name = path.basename(lockFile);
  for (const stage of built) {
    checkFrozenArgs(stage, lock.stages[stage.index], name);
    const locked = lock.stages[stage.index]?.steps.map((s) => s.instruction) ?? [];
    const steps = stage.steps.filter(lockedKinds);
    for (let i = 0; i < Math.max(steps.length, locked.length); i++) {
      const ins = steps[i];
      const want = locked[i];
      if (ins?.text === want) continue;
      if (!ins) {
        const end = stage.steps[stage.steps.length - 1] ?? stage.from;
        fail(
          end.loc,
          `${name} has ${want} ${i === 0 ? 'in' : 'at the end of'} stage ${stageName(stage)}, which the Stratafile no longer has`,
        );
      }
      if (want === undefined)
        fail(
          ins.loc,
          `${ins.text} is not in ${name} (it has no more steps in stage ${stageName(stage)})`,
        );
      // One step added or dropped reads better as that than as each later step differing.
      if (steps[i + 1]?.text === want)
        fail(
          ins.loc,
          `${ins.text} is not in ${name} (it has ${want} here, the Stratafile's next step)`,
        );
      if (locked[i + 1] === ins.text)
        fail(ins.loc, `${name} has ${want} before ${ins.text}, which the Stratafile no longer has`);
      fail(ins.loc, `${ins.text} is not in ${name} (it has ${want} here)`);
    }
  }
}

/**
 * A step whose key is not the lock's (the mirror moved) passes `--frozen` only if it installed
 * what the lock records; otherwise the error says what differs, in `name=version`s.
 */
export function checkFrozenPackages(
  ins: Instruction,
  now: readonly string[],
  locked: readonly string[],
  lockFile: string,
): void {
  const added = now.filter((p) => !locked.includes(p));
  const dropped = locked.filter((p) => !now.includes(p));
  if (added.length === 0 && dropped.length === 0) return;
  const name = path.basename(lockFile);
  const what =
    added.length === 0
      ? `would no longer install ${dropped.join(', ')}, which ${name} has`
      : dropped.length === 0
        ? `would now also install ${added.join(', ')}, which ${name} does not have`
        : `would now install ${added.join(', ')} where ${name} has ${dropped.join(', ')}`;
  fail(ins.loc, `${ins.text} ${what}`);
}
