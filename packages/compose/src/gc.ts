import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Descriptor, Digest, LockedError, MediaTypes, chainId, isDigest } from '@strata/oci';
import { BlobGcResult, Store, StoreConfig, diskUsage, pidAlive } from '@strata/store';
import { aptStateDir } from './apt-state';
import { cacheRootName } from './cache';
import { ScratchInfo, SnapshotInfo, Snapshots } from './snapshots';

/**
 * What a store holds besides its tags, and what tagged images use: the input of `gc` and `df`.
 * "Live" is what some tagged image's layer chain uses: a snapshot whose chain ID is that of a
 * prefix of a tag's layers, a build-cache entry whose key a tag's metadata records.
 */
export interface Inventory {
  tags: number;
  /** Blobs that tags reach, with their sizes. */
  tagBlobs: Map<Digest, number>;
  blobs: Array<{ digest: Digest; size: number }>;
  cache: CacheItem[];
  snapshots: Array<SnapshotInfo & { live: boolean }>;
  scratch: ScratchInfo[];
  apt: AptItem[];
}

export interface CacheItem {
  /** The store GC root that holds it. */
  root: string;
  key?: Digest;
  layer?: Descriptor;
  live: boolean;
  /** The root file, plus its layer blob when no tag reaches that blob. */
  bytes: number;
  /** The root file alone. */
  fileBytes: number;
  /** When the entry was written or last hit. */
  mtimeMs: number;
}

export interface AptItem {
  /** Relative to the apt state directory: `lists/<sources>`, `archives`, … */
  name: string;
  bytes: number;
}

export type UsageKind = 'blobs' | 'build-cache' | 'snapshots' | 'apt-cache';

export interface Figure {
  count: number;
  bytes: number;
}

export interface KeptItem {
  kind: UsageKind;
  /** live: tagged images use it; limit: unused, within the store's config; busy: a build is
   * running; opt-in: only an explicit flag frees it. */
  reason: 'live' | 'limit' | 'busy' | 'opt-in';
  count: number;
  bytes: number;
  /** One line for humans. */
  why: string;
  /** The command that frees it. */
  freedBy: string;
}

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
    /** Entries forgotten; bytes: their files and the layer blobs that went with them. */
    buildCache: Figure;
    /** Snapshots and dead builds' scratch directories. */
    snapshots: Figure;
    aptCache: Figure;
    /** Partial downloads and stale ingest files. */
    partials: Figure;
  };
  kept: KeptItem[];
}

export interface GcOptions {
  /** Forget every build-cache entry that no tag uses, whatever the config keeps. */
  buildCache?: boolean;
  /** Drop every snapshot that no tag uses, whatever the config keeps. */
  snapshots?: boolean;
  /** Drop the apt lists, caches and downloaded .debs. */
  aptCache?: boolean;
  /**
   * Also what tagged images use, in the categories chosen; with no category chosen, everything:
   * the whole build cache, every snapshot, the apt caches.
   */
  all?: boolean;
  /** Report only; delete nothing. */
  dryRun?: boolean;
  /** For tests: the time against which ages are measured. */
  now?: number;
}

/** What to delete, decided from an inventory. */
export interface GcPlan {
  cacheRoots: CacheItem[];
  snapshots: Array<SnapshotInfo & { live: boolean }>;
  scratch: ScratchInfo[];
  apt: AptItem[];
  kept: KeptItem[];
}

const DAY = 24 * 60 * 60 * 1000;

/** The images a tag names: itself, or the members of its index. */
async function imagesOf(store: Store, d: Descriptor, out: Descriptor[]): Promise<void> {
  if (d.mediaType === MediaTypes.imageIndex || d.mediaType === MediaTypes.dockerManifestList) {
    for (const m of (await store.readImageIndex(d)).manifests) await imagesOf(store, m, out);
  } else if (
    d.mediaType === MediaTypes.imageManifest ||
    d.mediaType === MediaTypes.dockerManifest
  ) {
    out.push(d);
  }
}

/** Read everything gc and df decide on. Reads only. */
export async function takeInventory(store: Store): Promise<Inventory> {
  const tags = await store.list();
  const liveChains = new Set<Digest>();
  const liveKeys = new Set<Digest>();
  const tagBlobs = new Map<Digest, number>();
  for (const { descriptor } of tags) {
    for (const [digest, d] of await store.reachable(descriptor)) tagBlobs.set(digest, d.size);
    const images: Descriptor[] = [];
    await imagesOf(store, descriptor, images);
    for (const img of images) {
      const { config } = await store.readImage(img, img.digest);
      const diffIds = config.rootfs.diff_ids;
      for (let i = 1; i <= diffIds.length; i++) {
        liveChains.add(chainId(diffIds.slice(0, i)) as Digest);
      }
      for (const l of config.strata?.layers ?? []) if (l.cacheKey) liveKeys.add(l.cacheKey);
    }
  }

  const cache: CacheItem[] = [];
  for (const r of await store.listRoots()) {
    if (!r.name.startsWith('cache-')) continue;
    const doc = (await store.getRoot(r.name).catch(() => undefined)) as
      { entry?: { key?: unknown; layer?: Descriptor } } | undefined;
    const key = isDigest(String(doc?.entry?.key)) ? (doc?.entry?.key as Digest) : undefined;
    const layer = doc?.entry?.layer;
    // A root whose name and key disagree is never read by a build: it is garbage.
    const valid = key !== undefined && cacheRootName(key) === r.name;
    const layerBytes = layer && !tagBlobs.has(layer.digest) ? layer.size : 0;
    cache.push({
      root: r.name,
      key: valid ? key : undefined,
      layer,
      live: valid && liveKeys.has(key),
      bytes: r.bytes + layerBytes,
      fileBytes: r.bytes,
      mtimeMs: r.mtimeMs,
    });
  }

  const listed = await new Snapshots(store).list();
  const snapshots = listed.snapshots.map((s) => ({ ...s, live: liveChains.has(s.chain) }));

  const apt: AptItem[] = [];
  const aptDir = aptStateDir(store.root);
  for (const top of await fsp.readdir(aptDir).catch(() => [] as string[])) {
    const p = path.join(aptDir, top);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) continue;
    // Per-sources directories are listed one by one: each is what one set of sources keeps.
    const perSources = top === 'lists' || top === 'cache' || top === 'check';
    const subs = st.isDirectory() && perSources ? await fsp.readdir(p) : [undefined];
    for (const sub of subs) {
      const name = sub === undefined ? top : `${top}/${sub}`;
      apt.push({ name, bytes: await diskUsage(path.join(aptDir, name)) });
    }
  }

  return {
    tags: tags.length,
    tagBlobs,
    blobs: await store.listBlobs(),
    cache,
    snapshots,
    scratch: listed.scratch,
    apt,
  };
}

function figure(items: ReadonlyArray<{ bytes: number }>): Figure {
  return { count: items.length, bytes: items.reduce((n, i) => n + i.bytes, 0) };
}

/**
 * Decide what gc deletes. Pure: everything it needs is in the inventory. `busy` says a build,
 * pull or import holds a lease: then nothing but dead builds' scratch directories is chosen.
 */
export function planGc(
  inv: Inventory,
  opts: GcOptions,
  config: StoreConfig,
  busy: boolean,
  configPath = '.strata/config.json',
): GcPlan {
  const now = opts.now ?? Date.now();
  const none = !opts.buildCache && !opts.snapshots && !opts.aptCache;
  const everything = opts.all === true && none;
  const cacheScope = opts.buildCache || everything ? (opts.all ? 'all' : 'unused') : 'limit';
  const snapScope = opts.snapshots || everything ? (opts.all ? 'all' : 'unused') : 'limit';
  const dropApt = opts.aptCache === true || everything;
  const kept: KeptItem[] = [];
  const keep = (k: KeptItem) => {
    if (k.count > 0) kept.push(k);
  };

  // Unused cache entries and snapshots share one budget, most recently used first.
  const { keepUnusedBytes, keepUnusedDays } = config.gc;
  type Unused = { kind: 'cache'; item: CacheItem } | { kind: 'snap'; item: SnapshotInfo };
  const unused: Unused[] = [
    ...inv.cache.filter((c) => !c.live).map((item) => ({ kind: 'cache' as const, item })),
    ...inv.snapshots.filter((s) => !s.live).map((item) => ({ kind: 'snap' as const, item })),
  ].sort((a, b) => b.item.mtimeMs - a.item.mtimeMs);
  const withinLimit = new Set<CacheItem | SnapshotInfo>();
  let budget = keepUnusedBytes;
  for (const u of unused) {
    if (
      (u.kind === 'cache' && cacheScope !== 'limit') ||
      (u.kind === 'snap' && snapScope !== 'limit')
    )
      continue;
    if (now - u.item.mtimeMs > keepUnusedDays * DAY || u.item.bytes > budget) continue;
    budget -= u.item.bytes;
    withinLimit.add(u.item);
  }

  const dropCache = busy
    ? []
    : inv.cache.filter((c) =>
        cacheScope === 'all' ? true : !c.live && (cacheScope === 'unused' || !withinLimit.has(c)),
      );
  let dropSnaps = busy
    ? []
    : inv.snapshots.filter((s) =>
        snapScope === 'all' ? true : !s.live && (snapScope === 'unused' || !withinLimit.has(s)),
      );
  // A diff snapshot is mounted on its parent's: one whose parent goes, goes with it.
  const gone = new Set(dropSnaps.map((s) => s.chain));
  const present = new Set(inv.snapshots.map((s) => s.chain));
  for (let changed = !busy; changed;) {
    changed = false;
    for (const s of inv.snapshots) {
      if (gone.has(s.chain) || s.kind !== 'diff') continue;
      if (s.parent === undefined || gone.has(s.parent) || !present.has(s.parent)) {
        gone.add(s.chain);
        changed = true;
      }
    }
  }
  dropSnaps = inv.snapshots.filter((s) => gone.has(s.chain));
  const scratch = inv.scratch.filter(
    (t) => t.pid !== process.pid && (t.pid === 0 ? !busy : !pidAlive(t.pid)),
  );
  const apt = dropApt && !busy ? inv.apt : [];

  const keptCache = inv.cache.filter((c) => !dropCache.includes(c));
  const keptSnaps = inv.snapshots.filter((s) => !gone.has(s.chain));
  const limitWhy = `unused, but within the keepUnusedBytes (${keepUnusedBytes}) and keepUnusedDays (${keepUnusedDays}) of ${configPath}`;
  const busyWhy = 'a build, pull or import is running on this store';
  const busyBy = 'strata gc, once it has finished';
  if (busy) {
    keep({
      kind: 'build-cache',
      reason: 'busy',
      ...figure(keptCache.filter((c) => !c.live)),
      why: busyWhy,
      freedBy: busyBy,
    });
    keep({
      kind: 'snapshots',
      reason: 'busy',
      ...figure(keptSnaps.filter((s) => !s.live)),
      why: busyWhy,
      freedBy: busyBy,
    });
  } else {
    keep({
      kind: 'build-cache',
      reason: 'limit',
      ...figure(keptCache.filter((c) => !c.live)),
      why: limitWhy,
      freedBy: 'strata gc --build-cache',
    });
    keep({
      kind: 'snapshots',
      reason: 'limit',
      ...figure(keptSnaps.filter((s) => !s.live)),
      why: limitWhy,
      freedBy: 'strata gc --snapshots',
    });
  }
  keep({
    kind: 'build-cache',
    reason: 'live',
    ...figure(keptCache.filter((c) => c.live)),
    why: 'steps of tagged images: their rebuilds are cache hits',
    freedBy: 'strata gc --build-cache --all',
  });
  keep({
    kind: 'snapshots',
    reason: 'live',
    ...figure(keptSnaps.filter((s) => s.live)),
    why: 'unpacked layer chains of tagged images: builds on them start without unpacking',
    freedBy: 'strata gc --snapshots --all',
  });
  if (apt.length === 0) {
    keep({
      kind: 'apt-cache',
      reason: busy && dropApt ? 'busy' : 'opt-in',
      ...figure(inv.apt),
      why:
        busy && dropApt
          ? busyWhy
          : 'apt lists and downloaded .debs, shared by every build on this store',
      freedBy: busy && dropApt ? busyBy : 'strata gc --apt-cache',
    });
  }
  keep({
    kind: 'blobs',
    reason: 'live',
    count: inv.tagBlobs.size,
    bytes: [...inv.tagBlobs.values()].reduce((a, b) => a + b, 0),
    why: 'manifests, configs and layers of tagged images',
    freedBy: 'strata rm <tag>, then strata gc',
  });
  return { cacheRoots: dropCache, snapshots: dropSnaps, scratch, apt, kept };
}

/** Fold the plan and what the blob gc freed into the report. */
function report(plan: GcPlan, blobs: BlobGcResult, dryRun: boolean): GcReport {
  const cacheLayers = new Set(plan.cacheRoots.flatMap((c) => (c.layer ? [c.layer.digest] : [])));
  const layerBytes = blobs.blobs
    .filter((b) => cacheLayers.has(b.digest))
    .reduce((n, b) => n + b.size, 0);
  const layerCount = blobs.blobs.filter((b) => cacheLayers.has(b.digest)).length;
  // An entry's layer counts only when the blob gc really removed it (another root, a tag added
  // meanwhile or a lease may still hold it).
  const entryFiles = plan.cacheRoots.reduce((n, c) => n + c.fileBytes, 0);
  const freed = {
    blobs: {
      count: blobs.removed - layerCount,
      bytes: blobs.bytesFreed - blobs.partials.bytes - layerBytes,
    },
    buildCache: { count: plan.cacheRoots.length, bytes: entryFiles + layerBytes },
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
      throw new LockedError('a build, pull or import is running on this store; try again later');
    }
    const inv = await takeInventory(store);
    const plan = planGc(inv, opts, config, busy, store.configPath);
    const snaps = new Snapshots(store);
    for (const s of plan.snapshots) await snaps.remove(s.chain);
    for (const t of plan.scratch) await snaps.remove(t.name);
    await removeApt(store, plan.apt);
    const blobs = await store.gc({ dropRoots: plan.cacheRoots.map((c) => c.root) });
    return report(plan, blobs, false);
  });
}

/** One row of `strata df`. */
export interface DfRow {
  kind: 'tags' | UsageKind;
  count: number;
  /** What tagged images use. */
  live: number;
  bytes: number;
  /** What `freedBy` frees. */
  reclaimable: number;
  freedBy: string;
}

/** `strata df --json` (schemas/df-report.schema.json). */
export interface DfReport {
  store: string;
  rows: DfRow[];
  /** Bytes on disk: blobs, build-cache files, snapshots and apt caches. */
  totalBytes: number;
}

/** Disk use of a store by kind, with what each gc option would free. Reads only. */
export async function diskUsageReport(store: Store): Promise<DfReport> {
  const inv = await takeInventory(store);
  const config = await store.config();
  const plain = planGc(inv, {}, config, false);
  const wide = planGc(inv, { buildCache: true, snapshots: true, aptCache: true }, config, false);
  const plainBlobs = await store.gc({
    dryRun: true,
    dropRoots: plain.cacheRoots.map((c) => c.root),
  });
  const wideBlobs = await store.gc({ dryRun: true, dropRoots: wide.cacheRoots.map((c) => c.root) });
  const plainReport = report(plain, plainBlobs, true);
  const wideReport = report(wide, wideBlobs, true);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const tagBytes = sum([...inv.tagBlobs.values()]);
  const blobBytes = sum(inv.blobs.map((b) => b.size));
  const cacheBytes = sum(inv.cache.map((c) => c.bytes));
  const snapBytes = sum([...inv.snapshots, ...inv.scratch].map((s) => s.bytes));
  const aptBytes = sum(inv.apt.map((a) => a.bytes));
  const rows: DfRow[] = [
    {
      kind: 'tags',
      count: inv.tags,
      live: inv.tags,
      bytes: tagBytes,
      reclaimable: 0,
      freedBy: 'strata rm <tag>, then strata gc',
    },
    {
      kind: 'blobs',
      count: inv.blobs.length,
      live: inv.tagBlobs.size,
      bytes: blobBytes,
      reclaimable: plainReport.freed.blobs.bytes + plainReport.freed.partials.bytes,
      freedBy: 'strata gc',
    },
    {
      kind: 'build-cache',
      count: inv.cache.length,
      live: inv.cache.filter((c) => c.live).length,
      bytes: cacheBytes,
      reclaimable: wideReport.freed.buildCache.bytes,
      freedBy: 'strata gc --build-cache (--all: also what tags use)',
    },
    {
      kind: 'snapshots',
      count: inv.snapshots.length + inv.scratch.length,
      live: inv.snapshots.filter((s) => s.live).length,
      bytes: snapBytes,
      reclaimable: wideReport.freed.snapshots.bytes,
      freedBy: 'strata gc --snapshots (--all: also what tags use)',
    },
    {
      kind: 'apt-cache',
      count: inv.apt.length,
      live: 0,
      bytes: aptBytes,
      reclaimable: aptBytes,
      freedBy: 'strata gc --apt-cache',
    },
  ];
  // The build cache's layers are blobs: only its own files add to the blobs.
  const cacheFiles = sum(inv.cache.map((c) => c.fileBytes));
  return { store: store.root, rows, totalBytes: blobBytes + cacheFiles + snapBytes + aptBytes };
}
