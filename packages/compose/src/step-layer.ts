/**
 * What a step that ran leaves: its upper, cleaned of what no layer keeps, packed into its layer
 * in the store (or no layer, when it changed nothing), its cache entry, and the snapshot of the
 * new chain.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Descriptor, Digest, Distribution, LayerRecord, StrataError, chainId } from '@strata/oci';
import { createLayer, packTree } from '@strata/layer';
import { parseDeb822, parseDpkgStatus } from '@strata/debian';
import { isoDate } from '@strata/template';
import { debControl } from '@strata/tools';
import { BOOTSTRAP_HOST_FILES } from './bootstrap-step';
import { CacheEntry, writeCache } from './cache';
import { cleanUpper } from './upper';
import type { Snapshots } from './snapshots';
import type { Instruction } from './stratafile';
import type { CopySource } from './copy-sources';
import { BuildContext, StageState, chainOf, packageDelta } from './build-state';

/** A step that ran in `upper` over `lower`, started at `t0` (ms). */
export interface RanStep {
  state: StageState;
  ins: Instruction;
  key: Digest;
  upper: string;
  lower: string[];
  t0: number;
  /** What a BOOTSTRAP found its root to be. */
  info: { distribution?: Distribution; debArch?: string };
  /** The step's sources in the build context (an INSTALL's local .debs among them). */
  copy: readonly CopySource[] | undefined;
}

/**
 * The cache entry of a step that ran: its layer packed from its cleaned upper and put into the
 * store, with the packages it added and removed, and its chain's snapshot committed.
 */
export async function commitStep(
  ctx: BuildContext,
  snapshots: Snapshots,
  { state, ins, key, upper, lower, t0, info, copy }: RanStep,
): Promise<CacheEntry> {
  const cleaned = await cleanUpper(
    upper,
    lower,
    state.excludes,
    ins.kind === 'BOOTSTRAP' ? BOOTSTRAP_HOST_FILES : [],
  );
  ctx.checkAbort();
  const compression = ctx.opts.compression ?? 'zstd';
  const epoch = await ctx.epoch(state);
  // A step that changed nothing (no file, no whiteout, no changed metadata, which would each
  // be in the upper) makes no layer, as BuildKit makes none: only its history entry.
  if (ins.kind !== 'BOOTSTRAP' && (await fsp.readdir(upper)).length === 0) {
    const entry: CacheEntry = {
      key,
      emptyLayer: true,
      record: { createdBy: ins.text, cacheKey: key },
      packages: state.packages,
      created: isoDate(new Date(epoch * 1000)),
      excluded: cleaned.byPattern,
    };
    await writeCache(ctx.store, entry);
    ctx.emit({ type: 'layer', seconds: (Date.now() - t0) / 1000, added: [], removed: [] });
    return entry;
  }
  const tar = packTree({
    root: upper,
    overlay: lower.length > 0,
    sourceDateEpoch: epoch,
    xattrs: cleaned.xattrs,
  });
  const layer = createLayer(tar, compression);
  tar.on('error', (e) => layer.blob.destroy(e));
  // Packing a large upper takes seconds: an interrupted build stops it rather than waiting.
  const signal = ctx.opts.signal;
  const stop = () => tar.destroy(new StrataError('INTERRUPTED', 'build interrupted'));
  signal?.addEventListener('abort', stop, { once: true });
  const packed = (async () => {
    const blob = await ctx.store.putBlob(layer.blob);
    return { blob, ...(await layer.result) };
  })();
  const { blob, diffId, mediaType } = await packed.finally(() =>
    signal?.removeEventListener('abort', stop),
  );
  ctx.checkAbort();
  await ctx.store.recordDiffId(blob.digest, diffId);
  const desc: Descriptor = { mediaType, digest: blob.digest, size: blob.size };

  // Packages after the step: the upper's dpkg status if the step touched it.
  let packages = state.packages;
  const status = await fsp
    .readFile(path.join(upper, 'var/lib/dpkg/status'), 'utf8')
    .catch(() => undefined);
  if (status !== undefined) packages = parseDpkgStatus(status);
  const delta = packageDelta(state.packages, packages);
  if (info.distribution) state.distribution = info.distribution;
  if (info.debArch) state.debArch = info.debArch;
  const record: LayerRecord = { diffId, createdBy: ins.text, cacheKey: key };
  if (delta.added.length) record.packagesAdded = delta.added;
  if (delta.removed.length) record.packagesRemoved = delta.removed;
  if (ins.kind === 'INSTALL' && ins.debs.length > 0) {
    const local = await contextDebs(ctx.context, copy ?? ins.debs.map((d) => ({ path: d })));
    const fromContext = delta.added.filter((a) => local.has(a));
    if (fromContext.length > 0) record.localDebs = fromContext;
  }
  const repo = await ctx.localRepo();
  if (repo !== undefined) {
    const own = new Set(repo.packages.map((p) => `${p.name}=${p.version}`));
    const fromRepo = delta.added.filter((a) => own.has(a) && !record.localDebs?.includes(a));
    if (fromRepo.length > 0) record.ownDebs = fromRepo;
  }
  const created = isoDate(new Date(epoch * 1000));
  const entry: CacheEntry = {
    key,
    layer: desc,
    diffId,
    record,
    packages,
    created,
    excluded: cleaned.byPattern,
    ...(info.distribution ? { distribution: info.distribution } : {}),
    ...(info.debArch ? { architecture: info.debArch } : {}),
  };
  await writeCache(ctx.store, entry);
  const newChain = chainId([...state.layers.map((l) => l.diffId), diffId]) as Digest;
  const parent = chainOf(state.layers);
  await snapshots.commit(
    newChain,
    upper,
    parent === undefined ? { kind: 'full' } : { kind: 'diff', parent },
  );
  ctx.emit({
    type: 'layer',
    layer: desc,
    seconds: (Date.now() - t0) / 1000,
    added: delta.added,
    removed: delta.removed,
  });
  return entry;
}

/** The packages (`name=version`) of an INSTALL's .deb files in the build context. */
async function contextDebs(
  context: string,
  debs: ReadonlyArray<{ path: string }>,
): Promise<Set<string>> {
  const out = new Set<string>();
  for (const d of debs) {
    const fields = parseDeb822(await debControl(path.join(context, d.path)))[0];
    const name = fields?.get('package');
    const version = fields?.get('version');
    if (name && version) out.add(`${name}=${version}`);
  }
  return out;
}
