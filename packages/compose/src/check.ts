/**
 * `strata check`: is a built template up to date with its Stratafile, its base templates and the
 * current apt indices? The parts: the build args (check-args), the bases (check-bases), the
 * steps placed on the template's layers (check-layers), each step's key (check-steps), the
 * stages COPY --from reads (check-copy-from), DEBUILD sources (check-debuild) and newer packages
 * (check-packages).
 */

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Descriptor,
  Digest,
  ImageConfig,
  LayerRecord,
  NotFoundError,
  PlatformSelector,
  TemplateMetadata,
} from '@strata/oci';
import { Store } from '@strata/store';
import { AptSources } from '@strata/debian';
import { StageKeys, envOfConfig } from './stage-keys';
import { Stage, StageHead, parseStageHeads, parseStratafile } from './stratafile';
import { checkArgs } from './check-args';
import { BaseCheckOptions, checkBases } from './check-bases';
import { StageResults, checkCopySource, recordedLocalRepos } from './check-copy-from';
import { alignSteps, walkChain } from './check-layers';
import { KeyOptions, compareSteps, keysOfBuild } from './check-steps';
import { checkDebuilds } from './check-debuild';
import { NewerPackage, newerPackageReasons, newerPackages } from './check-packages';
import type { CheckReason } from './check-reason';

export { BaseUnresolvedError } from './check-bases';
export { formatReason } from './check-reason';
export type { CheckReason, CheckReasonKind } from './check-reason';
export type { NewerPackage } from './check-packages';

export interface CheckOptions {
  /** Path of the Stratafile the template was built from. */
  file: string;
  /** Build context (default: the Stratafile's directory). */
  context?: string;
  /** Stage the template was built from (default: the last). */
  target?: string;
  buildArgs?: Record<string, string>;
  /**
   * apt sources file the build used, as for `strata build`; default: the apt sources the
   * template records it was built with (as `strata sources` reads them), else the build host's.
   * Sources already read from the file are taken as they are (see StageKeysOptions).
   */
  aptSources?: string | AptSources;
  /** Of a multi-platform template, the platform to check (as `strata build --platform` built it). */
  platform?: PlatformSelector;
  /** Skip downloading the Packages indices (no newer-version report). */
  noPackages?: boolean;
  /** apt's auth.conf for private repositories, as `strata build` takes it (the `apt-auth` secret). */
  aptAuth?: Buffer;
  /**
   * Resolves a registry reference (a registry FROM, or an ancestor recorded by its registry
   * reference) the way `strata build` resolves its FROM. Needed when there is one.
   */
  resolveRemote?: (ref: string) => Promise<Descriptor>;
}

export interface CheckResult {
  ref: string;
  digest: Digest;
  upToDate: boolean;
  /** Why the template is stale, one sentence each. */
  reasons: CheckReason[];
  /** Installed packages that the current apt indices have in a newer version. */
  newer: NewerPackage[];
  /** Things that could not be checked. */
  notes: string[];
}

/** The template `ref` checks: its config and its strata metadata. */
async function readTemplate(
  store: Store,
  ref: string,
  platform: PlatformSelector | undefined,
): Promise<{ desc: Descriptor; config: ImageConfig; meta: TemplateMetadata }> {
  const desc = await store.resolve(ref);
  // The template itself: of a multi-platform one, the platform asked for (none: ambiguous); a
  // single image only when it is of that platform.
  const image = await store.selectImage(desc, platform ? { platform } : {}, ref);
  const config = await store.readConfig((await store.readManifest(image.descriptor)).config);
  const meta = config.strata;
  if (!meta) throw new NotFoundError(`${ref} has no strata metadata; it is not a template`);
  return { desc, config, meta };
}

/** The chain of stages the template's layers come from: its root's first, `target`'s last. */
function stageChain(
  heads: readonly StageHead[],
  target: string | undefined,
  file: string,
): StageHead[] {
  const byName = new Map(heads.filter((s) => s.name).map((s) => [s.name as string, s]));
  let head: StageHead | undefined = target ? byName.get(target) : heads[heads.length - 1];
  if (!head) throw new NotFoundError(`no stage named ${target} in ${file}`);
  const chain: StageHead[] = [];
  while (head) {
    chain.unshift(head);
    head = head.from.refKind === 'stage' ? byName.get(head.from.ref) : undefined;
  }
  return chain;
}

/**
 * Is a built template up to date with its Stratafile, its base templates and the current apt
 * indices? Recomputes every step's cache key with the build's own StageKeys, on the template's
 * own layers, and compares it with the key recorded in the template's metadata.
 */
export async function checkTemplate(
  store: Store,
  ref: string,
  opts: CheckOptions,
): Promise<CheckResult> {
  const { desc, config, meta } = await readTemplate(store, ref, opts.platform);
  const text = await fsp.readFile(opts.file, 'utf8').catch(() => {
    throw new NotFoundError(`no Stratafile at ${opts.file}`);
  });
  const notes: string[] = [];
  const args = await checkArgs(text, opts.file, opts.buildArgs ?? {}, opts.platform);
  notes.push(...args.notes);
  const buildArgs = args.buildArgs;
  const heads = parseStageHeads(text, opts.file, buildArgs);
  const context = path.resolve(opts.context ?? path.dirname(opts.file));
  const reasons: CheckReason[] = [];

  const chainHeads = stageChain(heads, opts.target, opts.file);
  const root = chainHeads[0] as StageHead;
  const baseOpts: BaseCheckOptions = {
    context,
    ...(opts.platform ? { platform: opts.platform } : {}),
    ...(opts.resolveRemote ? { resolveRemote: opts.resolveRemote } : {}),
  };
  const bases = await checkBases(store, root, meta.baseChain ?? [], baseOpts);
  reasons.push(...bases.reasons);
  notes.push(...bases.notes);
  const { baseConfig, stepsUnchecked } = bases;

  // The root's instructions substitute its base's ENV, as the build's did.
  const sf = parseStratafile(text, opts.file, buildArgs, {
    baseEnv: (i) => (i === root.index && baseConfig ? envOfConfig(baseConfig) : undefined),
  });
  const chain = chainHeads.map((h) => sf.stages[h.index] as Stage);

  // Steps: walk the chain as the build does, then recompute each key on the template's own layers.
  const diffIds = config.rootfs.diff_ids as Digest[];
  const records: LayerRecord[] = meta.layers;
  const keyOpts: KeyOptions = {
    context,
    stratafile: opts.file,
    ...(opts.aptAuth !== undefined ? { aptAuth: opts.aptAuth } : {}),
  };
  const given = new StageKeys({ ...keyOpts, aptSources: opts.aptSources });
  const walked = await walkChain(given, chain, baseConfig, meta.architecture);
  const { steps, scope } = walked;
  const aligned = alignSteps(
    steps.length,
    diffIds,
    records,
    meta.emptySteps ?? [],
    baseConfig?.strata?.emptySteps?.length ?? 0,
    root.from.refKind === 'scratch',
  );
  if (aligned.mismatch) reasons.push(aligned.mismatch);
  const checked = stepsUnchecked ? [] : steps;
  const { keys, note } = await keysOfBuild(
    given,
    keyOpts,
    opts.aptSources !== undefined,
    meta,
    baseConfig?.strata?.aptSources ?? [],
    checked,
    aligned.placed,
    diffIds,
  );
  if (note !== undefined) notes.push(note);
  reasons.push(...(await checkDebuilds(keys, context, walked.debuilds, meta.debuilds ?? [])));
  const stages = new StageResults(store, keys, {
    ...baseOpts,
    text,
    file: opts.file,
    buildArgs,
    heads,
    localRepos: recordedLocalRepos([...records, ...(meta.emptySteps ?? [])]),
  });
  reasons.push(
    ...(await compareSteps(keys, checked, aligned.placed, diffIds, meta.aptSources, (...a) =>
      checkCopySource(store, stages, ...a),
    )),
  );

  // Newer package versions in the current indices (what UPGRADE would take).
  const newer = opts.noPackages ? [] : await newerPackages(store, keys, scope, meta, opts.aptAuth);
  reasons.push(...newerPackageReasons(newer, steps, aligned.nBase, diffIds, records));
  return {
    ref,
    digest: desc.digest,
    upToDate: reasons.length === 0,
    reasons,
    newer,
    notes,
  };
}
