import { StrataError } from '@strata/oci';
import type { BuildContext, StageState } from './build-state';
import { LockFile, readLockFile, updatedLock, writeLockFile } from './lockfile';
import { skippedStageLock } from './frozen';
import { stageKey } from './resolve-from';
import type { StageHead } from './stratafile';

/**
 * The lock a build starts from. `--frozen` holds the build to it, so it must exist and be read.
 * Without, it only tells which bases moved since the last build, so a lock that cannot be read
 * is rewritten rather than an error.
 */
export async function readBuildLock(
  ctx: Pick<BuildContext, 'opts' | 'lockFile' | 'emit'>,
): Promise<LockFile | undefined> {
  const { opts, lockFile } = ctx;
  const lock = opts.frozen
    ? await readLockFile(lockFile)
    : await readLockFile(lockFile).catch((e: unknown) => {
        // Said, not silent: the lock may hold what a merge or a crash left, which the user
        // would rather mend than lose.
        ctx.emit({
          type: 'warning',
          message: `${(e as Error).message}; ${opts.writeLock !== false ? 'this build rewrites it' : 'it is ignored'}`,
        });
        return undefined;
      });
  if (opts.frozen && !lock) {
    throw new StrataError('PARSE_ERROR', `--frozen: ${lockFile} does not exist`, {
      hint: 'build once without --frozen to write it',
    });
  }
  return lock;
}

/**
 * Write the lock of a build that built the stages `needed` of `heads` up to the target stage:
 * the entry of each stage built, and for one skipped what `lock` had. The file written; none
 * with `writeLock: false` or `--frozen`.
 */
export async function writeBuildLock(
  ctx: Pick<BuildContext, 'opts' | 'lockFile' | 'stages'>,
  lock: LockFile | undefined,
  heads: readonly StageHead[],
  targetIndex: number,
  needed: ReadonlySet<number>,
): Promise<string | undefined> {
  if (ctx.opts.writeLock === false || ctx.opts.frozen) return undefined;
  const stages = heads
    .slice(0, targetIndex + 1)
    .map((h) =>
      needed.has(h.index)
        ? (ctx.stages.get(stageKey(h)) as StageState).lock
        : skippedStageLock(h, lock),
    );
  await writeLockFile(ctx.lockFile, updatedLock(lock, stages, heads.length));
  return ctx.lockFile;
}
