import { Store } from '@strata/store';
import { takeInventory } from './inventory';
import { UsageKind, planGc } from './gc-plan';
import { report } from './gc';

/** One row of `strata df`. */
export interface DfRow {
  /** `ingest`: what interrupted commands left (partial downloads, an unpacked rootfs). */
  kind: 'tags' | UsageKind | 'ingest';
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
  /** Bytes on disk: blobs, build-cache files, snapshots, apt caches and ingest leftovers. */
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
  const cacheBytes = sum([...inv.cache, ...inv.logs].map((c) => c.bytes));
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
      reclaimable: plainReport.freed.blobs.bytes,
      freedBy: 'strata gc',
    },
    {
      kind: 'build-cache',
      count: inv.cache.length + inv.logs.length,
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
    {
      kind: 'ingest',
      count: plainBlobs.partials.count,
      live: 0,
      bytes: plainBlobs.partials.bytes,
      reclaimable: plainBlobs.partials.bytes,
      freedBy: 'strata gc',
    },
  ];
  // The build cache's layers are blobs: only its own files add to the blobs.
  const cacheFiles = sum(inv.cache.map((c) => c.fileBytes));
  const ingestBytes = plainBlobs.partials.bytes;
  return {
    store: store.root,
    rows,
    totalBytes: blobBytes + cacheFiles + snapBytes + aptBytes + ingestBytes,
  };
}
