/**
 * `strata gc`: carry out the plan on a store under its gc lock, and report what was freed and
 * what was kept, and why.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LockedError } from '@strata/oci';
import { BlobGcResult, Store } from '@strata/store';
import { aptStateDir } from './apt-state';
import { AptItem, takeInventory } from './inventory';
import { Figure, GcOptions, GcPlan, KeptItem, figure, gcCommand, planGc } from './gc-plan';
import { Snapshots } from './snapshots';

/** `strata gc --json` (schemas/gc-report.schema.json). */
export interface GcReport {
  dryRun: boolean;
  /** Blobs removed, build-cache layers included. */
  removed: number;
  /** The sum of the `freed` figures. */
  bytesFreed: number;
  freed: {
    /** Blobs no tag or build-cache entry reaches. */
    blobs: Figure;
    /**
     * Entries forgotten, and failed DEBUILDs' logs; bytes: their files and the layer blobs that
     * went with them.
     */
    buildCache: Figure;
    /** Snapshots and dead builds' scratch directories. */
    snapshots: Figure;
    aptCache: Figure;
    /** Partial downloads and stale ingest files. */
    partials: Figure;
  };
  kept: KeptItem[];
}

/** Fold the plan and what the blob gc freed into the report. */
export function report(plan: GcPlan, blobs: BlobGcResult, dryRun: boolean): GcReport {
  const cacheLayers = new Set(plan.cacheRoots.flatMap((c) => (c.layer ? [c.layer.digest] : [])));
  const layerBytes = blobs.blobs
    .filter((b) => cacheLayers.has(b.digest))
    .reduce((n, b) => n + b.size, 0);
  const layerCount = blobs.blobs.filter((b) => cacheLayers.has(b.digest)).length;
  // An entry's layer counts only when the blob gc really removed it (another root, a tag added
  // meanwhile or a lease may still hold it).
  const entryFiles = plan.cacheRoots.reduce((n, c) => n + c.fileBytes, 0);
  const logBytes = plan.logs.reduce((n, l) => n + l.bytes, 0);
  const freed = {
    blobs: {
      count: blobs.removed - layerCount,
      bytes: blobs.bytesFreed - blobs.partials.bytes - layerBytes,
    },
    buildCache: {
      count: plan.cacheRoots.length + plan.logs.length,
      bytes: entryFiles + logBytes + layerBytes,
    },
    snapshots: figure([...plan.snapshots, ...plan.scratch]),
    aptCache: figure(plan.apt),
    partials: blobs.partials,
  };
  const bytesFreed = Object.values(freed).reduce((n, f) => n + f.bytes, 0);
  return { dryRun, removed: blobs.removed, bytesFreed, freed, kept: plan.kept };
}

async function removeApt(store: Store, items: readonly AptItem[]): Promise<void> {
  const dir = aptStateDir(store.root);
  for (const item of items) {
    const gone = path.join(dir, `.gc-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await fsp.rename(path.join(dir, item.name), gone);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    await fsp.rm(gone, { recursive: true, force: true });
  }
}

/**
 * Garbage-collect a store: expire build-cache entries and snapshots that no tagged image uses
 * (beyond what the store's config keeps, or all of them with `buildCache`/`snapshots`), then
 * drop the blobs nothing reaches any more. What tagged images use stays unless `all` says
 * otherwise. Runs under the store's gc lock; with a build, pull or import under way the build
 * cache and snapshots are left alone, and asking for them explicitly is a LockedError.
 */
export async function collectGarbage(store: Store, opts: GcOptions = {}): Promise<GcReport> {
  const config = await store.config();
  const explicit = opts.buildCache || opts.snapshots || opts.aptCache || opts.all;
  if (opts.dryRun) {
    const inv = await takeInventory(store);
    const plan = planGc(inv, opts, config, await store.busy(), store.configPath);
    const blobs = await store.gc({ dryRun: true, dropRoots: plan.cacheRoots.map((c) => c.root) });
    return report(plan, blobs, true);
  }
  return store.withGcLock(async (busy) => {
    if (busy && explicit) {
      // A plain gc frees only blobs that no tag reaches and no running command touched (its
      // lease keeps those), and leaves the build cache, snapshots and apt caches alone; these
      // options delete what the running command may be reading.
      throw new LockedError(
        `a build, pull or import is running on this store: \`${gcCommand(opts)}\` would delete build-cache entries, snapshots or apt caches it may be using`,
        {
          hint: 'run it again once that has finished; a plain `strata gc` may run meanwhile (it leaves those alone)',
        },
      );
    }
    const inv = await takeInventory(store);
    const plan = planGc(inv, opts, config, busy, store.configPath);
    const snaps = new Snapshots(store);
    for (const s of plan.snapshots) await snaps.remove(s.chain);
    for (const t of plan.scratch) await snaps.remove(t.name);
    await removeApt(store, plan.apt);
    const blobs = await store.gc({ dropRoots: plan.cacheRoots.map((c) => c.root) });
    for (const c of plan.cacheRoots)
      for (const log of c.logs ?? []) await fsp.rm(log, { force: true });
    for (const log of plan.logs) await fsp.rm(log.path, { force: true });
    return report(plan, blobs, false);
  });
}
