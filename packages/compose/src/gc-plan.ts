/** What gc deletes and what it keeps, and why: decided from an inventory and the store config alone. */
import { StoreConfig, pidAlive } from '@strata/store';
import { AptItem, CacheItem, Inventory, LogItem } from './inventory';
import { ScratchInfo, SnapshotInfo } from './snapshots';

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
  /** Failed DEBUILDs' logs, which go with the build cache. */
  logs: LogItem[];
  kept: KeptItem[];
}

const DAY = 24 * 60 * 60 * 1000;

export function figure(items: ReadonlyArray<{ bytes: number }>): Figure {
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
  // A running build may be writing one; otherwise one is kept as an unused entry would be.
  const logs = busy
    ? []
    : inv.logs.filter(
        (l) =>
          cacheScope !== 'limit' ||
          now - l.mtimeMs > keepUnusedDays * DAY ||
          l.bytes > keepUnusedBytes,
      );

  const keptCache = inv.cache.filter((c) => !dropCache.includes(c));
  const keptSnaps = inv.snapshots.filter((s) => !gone.has(s.chain));
  const limitWhy = `unused, but within the keepUnusedBytes (${keepUnusedBytes}) and keepUnusedDays (${keepUnusedDays}) of ${configPath}`;
  const busyWhy = 'a build, pull or import is running on this store';
  // The command as given: a hint must not name an option the user gave already.
  const busyBy = `${gcCommand(opts)}, once it has finished`;
  // With --all, what tagged images use would go too: kept only because of the running command.
  const liveKept = <T extends { live: boolean }>(xs: T[], scope: string): T[] =>
    xs.filter((x) => x.live && !(busy && scope === 'all'));
  if (busy) {
    keep({
      kind: 'build-cache',
      reason: 'busy',
      ...figure(keptCache.filter((c) => !c.live || cacheScope === 'all')),
      why: busyWhy,
      freedBy: busyBy,
    });
    keep({
      kind: 'snapshots',
      reason: 'busy',
      ...figure(keptSnaps.filter((s) => !s.live || snapScope === 'all')),
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
    ...figure(liveKept(keptCache, cacheScope)),
    why: 'steps of tagged images: their rebuilds are cache hits',
    freedBy: 'strata gc --build-cache --all',
  });
  keep({
    kind: 'snapshots',
    reason: 'live',
    ...figure(liveKept(keptSnaps, snapScope)),
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
          : "apt lists, downloaded .debs and the host's dpkg set up for foreign roots, shared by every build on this store",
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
  return { cacheRoots: dropCache, snapshots: dropSnaps, scratch, apt, logs, kept };
}

/** The gc command line these options stand for, e.g. `strata gc --build-cache --all`. */
export function gcCommand(opts: GcOptions): string {
  const flags = [
    opts.buildCache ? ' --build-cache' : '',
    opts.snapshots ? ' --snapshots' : '',
    opts.aptCache ? ' --apt-cache' : '',
    opts.all ? ' --all' : '',
  ];
  return `strata gc${flags.join('')}`;
}
