import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Digest, InvalidDocumentError } from '@strata/oci';
import { writeFileAtomic } from '@strata/store';

/** One step as built: its cache key, layer, and the package versions it installed. */
export interface LockedStep {
  instruction: string;
  cacheKey: Digest;
  /** The layer's digest; absent for a step that changed nothing (`emptyLayer`). */
  layer?: Digest;
  emptyLayer?: true;
  /** `name=version` of every package the step added or changed. */
  packages: string[];
  removed: string[];
}

export interface LockedStage {
  name: string;
  from: { ref: string; digest?: Digest };
  /**
   * The value of each ARG the stage declares (null: unset), in the stage's order. An ARG reaches
   * RUN steps as their environment, so a build with another `--build-arg` is another build. Left
   * out for a stage that declares none.
   */
  args?: Record<string, string | null>;
  steps: LockedStep[];
}

/** Stratafile.lock: what a build resolved, so `--frozen` can insist on it. */
export interface LockFile {
  lockfileVersion: 1;
  stages: LockedStage[];
}

/**
 * `<Stratafile>.lock`; for one platform of a multi-platform build, `<Stratafile>.<arch>.lock`
 * (each platform resolves its own bases and packages).
 */
export function lockPathFor(stratafile: string, arch?: string): string {
  const name =
    arch === undefined ? path.basename(stratafile) : `${path.basename(stratafile)}.${arch}`;
  return path.join(path.dirname(stratafile), `${name}.lock`);
}

export async function readLockFile(file: string): Promise<LockFile | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  // Said as such: JSON.parse would only say "Unexpected token '<'" of a lock a merge left so.
  if (/^(<{7}|>{7}) /m.test(text))
    throw new InvalidDocumentError(file, ['it has git merge-conflict markers (<<<<<<<)']);
  let doc: LockFile;
  try {
    doc = JSON.parse(text) as LockFile;
  } catch (e) {
    throw new InvalidDocumentError(file, [(e as Error).message]);
  }
  if (doc.lockfileVersion !== 1 || !Array.isArray(doc.stages)) {
    throw new InvalidDocumentError(file, ['not a Stratafile.lock (lockfileVersion 1)']);
  }
  return doc;
}

/**
 * The lock after building the first `built.length` of the file's `total` stages: theirs as
 * built, then the entries of the stages this run did not build (a `--target` build), as the old
 * lock had them, so that a later `--frozen` build of the whole file still holds them to what they
 * resolved. Entries beyond `total` are of stages the file no longer has, and go.
 */
export function updatedLock(
  old: LockFile | undefined,
  built: LockedStage[],
  total: number,
): LockFile {
  const kept = old?.stages.slice(built.length, Math.max(total, built.length)) ?? [];
  return { lockfileVersion: 1, stages: [...built, ...kept] };
}

/** Write the lock, unless it says exactly this already: a cached rebuild leaves the file alone. */
export async function writeLockFile(file: string, doc: LockFile): Promise<void> {
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  const current = await fsp.readFile(file, 'utf8').catch(() => undefined);
  if (current !== text) await writeFileAtomic(file, text);
}
