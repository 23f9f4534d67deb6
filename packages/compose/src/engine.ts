import { ParseError, StrataError, configPlatform, formatPlatform } from '@strata/oci';
import { Store, normalizeTag } from '@strata/store';
import { debianArchitectureOf, ociPlatform } from '@strata/debian';
import { guardRemoteCaches } from './remote-cache';
import type { BuildOptions, BuildResult, StepReport } from './build-state';
import { BuildStepError } from './stage-keys';
import { Builder } from './builder';
import { Snapshots } from './snapshots';
import { writePlatformIndex } from './image-writer';
import { tagAll, tagsOf } from './tags';

export type { BuildEvent, BuildOptions, BuildResult, StepReport } from './build-state';
export { packageDelta } from './build-state';
export { failureReason } from './step-output';
export { BuildStepError, ParseError };

/**
 * Build a Stratafile: once, or with several `platforms` once per platform, tagging one OCI index
 * that holds each platform's images (see writePlatformIndex).
 */
export async function build(store: Store, opts: BuildOptions): Promise<BuildResult> {
  opts = await guardRemoteCaches(opts);
  // What an earlier build left when it was killed is swept now, not at the next gc.
  await new Snapshots(store).sweepDead();
  await store.dropDeadLeases();
  const platforms = opts.platforms ?? [];
  if (platforms.length <= 1) return new Builder(store, opts, platforms[0]).build();
  for (const t of tagsOf(opts)) normalizeTag(t);
  // Until the index is tagged, only this lease keeps the platforms' images from a gc.
  return store.withLease(async () => {
    const parts = [];
    let cacheHits = 0;
    let stepsRun = 0;
    const steps: StepReport[] = [];
    for (const [i, asked] of platforms.entries()) {
      // Named as the image it makes will say it, as inspect does (`linux/arm64/v8`).
      const name = formatPlatform({
        os: asked.os,
        ...ociPlatform(debianArchitectureOf(asked)),
      });
      opts.onEvent?.({ type: 'platform', platform: name });
      const r = await new Builder(store, opts, asked, true, i > 0).build();
      cacheHits += r.cacheHits;
      stepsRun += r.stepsRun;
      steps.push(...r.steps.map((s) => ({ platform: name, ...s })));
      parts.push({
        platform: configPlatform(r.config),
        descriptor: r.descriptor,
        manifest: r.manifest,
        config: r.config,
        ...(r.lockFile !== undefined ? { lockFile: r.lockFile } : {}),
        lockWritten: r.lockWritten ?? false,
      });
    }
    const descriptor = await writePlatformIndex(store, parts);
    if (opts.signal?.aborted) throw new StrataError('INTERRUPTED', 'build interrupted');
    const refs = await tagAll(store, tagsOf(opts), descriptor);
    const first = parts[0] as (typeof parts)[number];
    return {
      ref: refs[0],
      ...(refs.length > 0 ? { refs } : {}),
      descriptor,
      manifest: first.manifest,
      config: first.config,
      platforms: parts,
      cacheHits,
      stepsRun,
      lockWritten: parts.some((p) => p.lockWritten),
      steps,
    };
  });
}
