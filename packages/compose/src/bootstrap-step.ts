import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Distribution, StrataError } from '@strata/oci';
import type { AptSources } from '@strata/debian';
import { DEFAULT_EXCLUSIONS, readRootfsFacts } from '@strata/template';
import { mmdebstrap } from '@strata/tools';
import type { AptState } from './apt-state';
import type { Instruction } from './stratafile';
import { BuildStepError } from './stage-keys';
import type { BuildContext, StageState } from './build-state';

/**
 * Host-provided files that BOOTSTRAP's output must not keep (mmdebstrap writes them), dropped
 * as `template create` drops them: the folders packages own stay (see ExclusionRule.keepDirs).
 */
export const BOOTSTRAP_HOST_FILES = DEFAULT_EXCLUSIONS.filter((r) => r.action === 'drop');

/**
 * BOOTSTRAP: mmdebstrap into `target` (an empty dir, the step's upper), with the store's apt
 * state for this mirror so that its .debs are downloaded once across builds (those that a
 * verified index of the store lists: mmdebstrap's own lists do not outlive it). `authConf` is apt's
 * auth.conf from the build's secrets, if given.
 */
export async function bootstrapStep(
  ctx: BuildContext,
  aptState: AptState,
  state: StageState,
  ins: Extract<Instruction, { kind: 'BOOTSTRAP' }>,
  target: string,
  sources: AptSources,
  authConf: Buffer | undefined,
): Promise<{ distribution: Distribution; debArch?: string }> {
  const work = path.dirname(target);
  const sourcesFile = path.join(work, 'sources.list');
  await fsp.writeFile(sourcesFile, sources.text);
  await fsp.rmdir(target);
  const sourcesKey = sources.digest.slice(7, 23);
  const apt = await aptState.checkout(sourcesKey, path.join(work, 'apt'));
  const authDir = path.join(work, 'apt-auth');
  if (authConf !== undefined) await fsp.mkdir(authDir);
  try {
    await mmdebstrap({
      suite: ins.suite,
      target,
      variant: ins.variant,
      include: ins.include,
      components: ins.components,
      // Without --architecture: the platform being built, if one was asked for.
      architecture: ins.architecture ?? state.debArch,
      sources: ins.mirror ?? sourcesFile,
      debCache: apt.archives,
      sourceDateEpoch: await ctx.epoch(state),
      ...(authConf !== undefined ? { auth: { conf: authConf, dir: authDir } } : {}),
      onOutput: (chunk) => ctx.emit({ type: 'output', chunk }),
      signal: ctx.opts.signal,
    });
  } catch (e) {
    if (e instanceof StrataError)
      throw new BuildStepError(ins.loc, `BOOTSTRAP ${ins.suite}: ${e.message}`, { cause: e });
    throw e;
  } finally {
    // What was downloaded stays for the next build, even when the bootstrap failed later on.
    if (!ctx.opts.signal?.aborted) await aptState.checkin(sourcesKey, apt, undefined);
  }
  const facts = await readRootfsFacts(target);
  return { distribution: facts.distribution, debArch: facts.architecture };
}
