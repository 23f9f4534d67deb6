/**
 * The base templates of a checked template: has its FROM (or an ancestor further down its base
 * chain) moved since the build?
 */

import * as path from 'node:path';
import {
  BaseTemplate,
  Descriptor,
  ImageConfig,
  ImageManifest,
  InvalidArgumentError,
  PlatformSelector,
  StrataError,
  isIndexMediaType,
  parseReference,
} from '@strata/oci';
import { Store, loadArchive } from '@strata/store';
import { basePlatform } from './platform';
import { BuildStepError } from './stage-keys';
import type { FromInstruction, Location, StageHead } from './stratafile';
import type { CheckReason } from './check-reason';

/**
 * A base or an ancestor whose registry could not tell what it resolves to now (unreachable,
 * refused, or answering nonsense): the check cannot say stale or up to date. Keeps the code and
 * hint of the registry's error, and locates the FROM it was reached by (an ancestor's too), so
 * that `--json` names the file, line and column its message does.
 */
export class BaseUnresolvedError extends BuildStepError {
  constructor(
    readonly ref: string,
    loc: Location,
    what: string,
    cause: StrataError,
  ) {
    super(loc, `${what} could not be checked: ${cause.message}`, {
      cause,
      ...(cause.hint !== undefined ? { hint: cause.hint } : {}),
    });
  }
}

export interface BaseCheckOptions {
  /** The build context, which a FROM of a file is relative to. */
  context: string;
  /** Of a multi-platform base, the platform to read (as the build selected it). */
  platform?: PlatformSelector;
  /** Resolves a registry reference as the build did (see CheckOptions.resolveRemote). */
  resolveRemote?: (ref: string) => Promise<Descriptor>;
}

export interface BaseCheck {
  /** The config of the base as it was when built, else as it is now: the ENV the steps saw. */
  baseConfig?: ImageConfig;
  /**
   * Without the base (gone from its registry and not in the store), the steps' keys cannot be
   * recomputed: its ENV is in every one of them, and comparing without it would call every step
   * changed (apt indices, COPY sources) for what is only the base's absence.
   */
  stepsUnchecked: boolean;
  reasons: CheckReason[];
  notes: string[];
}

function isRegistryRef(ref: string): boolean {
  try {
    return parseReference(ref).registry !== undefined;
  } catch {
    return false;
  }
}

/** A resolver of registry references that fails, as the build would, when there is none. */
function remoteResolver(opts: BaseCheckOptions): (ref: string) => Promise<Descriptor> {
  return async (ref) => {
    if (!opts.resolveRemote)
      throw new InvalidArgumentError(
        `${ref} is in a registry, and this check cannot reach registries`,
      );
    return opts.resolveRemote(ref);
  };
}

/** What the FROM `from` (not scratch, not a stage) resolves to now: a file, a registry or a tag. */
export async function currentBase(
  store: Store,
  from: FromInstruction,
  opts: BaseCheckOptions,
): Promise<Descriptor | undefined> {
  if (from.refKind === 'file') {
    const loaded = await loadArchive(store, path.resolve(opts.context, from.ref));
    return loaded[0]?.descriptor;
  }
  if (from.refKind === 'registry') return remoteResolver(opts)(from.ref);
  return store.resolve(from.ref);
}

/** The rootfs image of a base `desc`, selected as build selects it; `what` names it in errors. */
export async function imageOf(
  store: Store,
  desc: Descriptor,
  what: string,
  platform?: PlatformSelector,
): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
  const at = isIndexMediaType(desc.mediaType)
    ? basePlatform(await store.readImageIndex(desc), platform)
    : undefined;
  const image = await store.selectImage(desc, at ? { platform: at } : {}, what);
  const manifest = await store.readManifest(image.descriptor);
  return { manifest, config: await store.readConfig(manifest.config) };
}

/**
 * Compare the FROM of the chain's `root` stage, and each ancestor the template's base chain
 * (`built`) records, with what they resolve to now.
 */
export async function checkBases(
  store: Store,
  root: StageHead,
  built: readonly BaseTemplate[],
  opts: BaseCheckOptions,
): Promise<BaseCheck> {
  const direct = root.from.refKind === 'scratch' ? undefined : built[built.length - 1];
  const out: BaseCheck = { stepsUnchecked: false, reasons: [], notes: [] };
  if (root.from.refKind !== 'scratch') {
    const unresolved = await checkDirectBase(store, root.from, direct, opts, out);
    out.stepsUnchecked = unresolved !== undefined && out.baseConfig === undefined;
    if (unresolved && out.stepsUnchecked)
      unresolved.message += '; its steps were not compared (their keys hold the base ENV)';
  }
  await checkAncestors(store, root.from.loc, direct ? built.slice(0, -1) : built, opts, out);
  return out;
}

/**
 * Compare the root's FROM with the base the template records it was built on (`direct`), and set
 * `out.baseConfig`. Returns the reason a FROM that no longer resolves gave, when it did.
 */
async function checkDirectBase(
  store: Store,
  from: FromInstruction,
  direct: BaseTemplate | undefined,
  opts: BaseCheckOptions,
  out: BaseCheck,
): Promise<CheckReason | undefined> {
  let now: Descriptor | undefined;
  let unresolved: CheckReason | undefined;
  try {
    now = await currentBase(store, from, opts);
  } catch (e) {
    if (!(e instanceof StrataError)) throw e;
    // Only a registry that says "not there" answers the question; any other failure leaves it
    // open, and an open question is never "up to date".
    if (from.refKind === 'registry' && e.code !== 'NOT_FOUND')
      throw new BaseUnresolvedError(from.ref, from.loc, `FROM ${from.ref}`, e);
    unresolved = {
      kind: 'base',
      loc: from.loc,
      message: `FROM ${from.ref} no longer resolves: ${e.message}`,
    };
    out.reasons.push(unresolved);
  }
  if (now && !direct) {
    out.reasons.push({
      kind: 'base',
      loc: from.loc,
      message: `FROM ${from.ref}: the template records no base chain`,
    });
  } else if (now && direct && now.digest !== direct.digest) {
    out.reasons.push({
      kind: 'base',
      loc: from.loc,
      message: `FROM ${from.ref} moved: the template was built on ${direct.digest}, it now resolves to ${now.digest}`,
    });
  }
  // The base as it was when built gives the ENV the steps saw; else the current one.
  const baseDesc = direct ? await store.resolve(direct.digest).catch(() => undefined) : undefined;
  const at = baseDesc ?? now;
  if (at) out.baseConfig = (await imageOf(store, at, from.ref, opts.platform)).config;
  return unresolved;
}

/**
 * Ancestors further down the chain, by the references they were recorded under: a registry
 * reference is resolved there, as a FROM is; a local name only in this store. `loc`: the FROM
 * they were reached by.
 */
async function checkAncestors(
  store: Store,
  loc: Location,
  ancestors: readonly BaseTemplate[],
  opts: BaseCheckOptions,
  out: BaseCheck,
): Promise<void> {
  const resolveRemote = remoteResolver(opts);
  for (const anc of ancestors) {
    let now: Descriptor | undefined;
    const remote = isRegistryRef(anc.ref);
    try {
      now = remote ? await resolveRemote(anc.ref) : await store.resolve(anc.ref);
    } catch (e) {
      if (!remote) {
        out.notes.push(`ancestor ${anc.ref} (${anc.digest}) is not in the store; not checked`);
        continue;
      }
      if (!(e instanceof StrataError)) throw e;
      if (e.code !== 'NOT_FOUND')
        throw new BaseUnresolvedError(anc.ref, loc, `ancestor ${anc.ref}`, e);
      out.reasons.push({
        kind: 'base',
        message: `ancestor ${anc.ref} no longer resolves: ${e.message}`,
      });
      continue;
    }
    if (now.digest !== anc.digest) {
      out.reasons.push({
        kind: 'base',
        message: `ancestor ${anc.ref} moved: the template was built on ${anc.digest}, it now resolves to ${now.digest}`,
      });
    }
  }
}
