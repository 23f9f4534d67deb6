import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  ArtifactTypes,
  Descriptor,
  Digest,
  MediaTypes,
  chainId,
  digestHex,
  sha256,
  validateDfReport,
  validateGcReport,
} from '@strata/oci';
import { Store } from '@strata/store';
import { holdLease, withTempStore } from '@strata/store/testing';
import { CacheEntry, cacheRootName, readCache, writeCache } from './cache';
import { Snapshots } from './snapshots';
import { logsDir } from './debuild';
import { diskUsageReport } from './df';
import { GcReport, collectGarbage } from './gc';
import { planGc } from './gc-plan';
import { takeInventory } from './inventory';

let store: Store;
let dir: string;
withTempStore('gc', (t) => ({ store, dir } = t));

interface Step {
  key: Digest;
  layer: Descriptor;
  diffId: Digest;
}

/** A built step: a layer blob, its cache entry, and the snapshot of the chain it ends. */
async function step(text: string, below: Step[], bytes = 1000): Promise<Step> {
  const data = Buffer.alloc(bytes, text);
  const info = await store.putBytes(data);
  const layer = { mediaType: MediaTypes.layerTar, digest: info.digest, size: info.size };
  const diffId = info.digest;
  const key = sha256(`key of ${text} on ${below.map((s) => s.diffId).join(',')}`);
  const entry: CacheEntry = {
    key,
    layer,
    diffId,
    record: { diffId, createdBy: `RUN ${text}`, cacheKey: key },
    packages: [],
    created: '2024-01-01T00:00:00Z',
  };
  await writeCache(store, entry);
  const snaps = new Snapshots(store);
  const tree = await snaps.scratch('test');
  await fsp.writeFile(path.join(tree, text), Buffer.alloc(bytes * 3, text));
  const parent = chainId(below.map((s) => s.diffId));
  await snaps.commit(
    chainId([...below, { diffId }].map((s) => s.diffId)) as Digest,
    tree,
    parent ? { kind: 'diff', parent } : { kind: 'full' },
  );
  return { key, layer, diffId };
}

/** Tag an image made of these steps, with the metadata a build records. */
async function tagImage(tag: string, steps: Step[]): Promise<void> {
  const config = await store.putJson(
    {
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: steps.map((s) => s.diffId) },
      strata: {
        schemaVersion: 1,
        name: tag,
        created: '2024-01-01T00:00:00Z',
        features: [],
        architecture: 'amd64',
        distribution: {},
        packages: [],
        exclusions: [],
        layers: steps.map((s) => ({ diffId: s.diffId, createdBy: 'RUN', cacheKey: s.key })),
      },
    },
    MediaTypes.imageConfig,
  );
  const m = await store.putJson(
    {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config,
      layers: steps.map((s) => s.layer),
    },
    MediaTypes.imageManifest,
  );
  await store.tag(tag, m);
}

const snapshotDir = (steps: Step[]) =>
  path.join(
    store.root,
    '.strata',
    'snapshots',
    (chainId(steps.map((s) => s.diffId)) as string).slice(7),
  );
const exists = (p: string) =>
  fsp.access(p).then(
    () => true,
    () => false,
  );

/** base ← live (tagged live:1) and base ← gone (its tag removed). */
async function twoBranches() {
  const base = await step('base', [], 4000);
  const live = await step('live', [base], 2000);
  const gone = await step('gone', [base], 3000);
  await tagImage('live:1', [base, live]);
  await tagImage('gone:1', [base, gone]);
  await store.untag('gone:1');
  return { base, live, gone };
}

function kept(r: GcReport, kind: string, reason: string) {
  return r.kept.find((k) => k.kind === kind && k.reason === reason);
}

test('plain gc expires the cache entries and snapshots of a removed tag, keeps those of live tags, and says so', async () => {
  const { base, live, gone } = await twoBranches();
  const r = await collectGarbage(store);
  expect(validateGcReport(r)).toEqual({ ok: true, value: r });
  // The removed tag's step: its entry and its layer (3000 bytes) went, and its snapshot.
  expect(await readCache(store, gone.key)).toBeUndefined();
  expect(await store.hasBlob(gone.layer.digest)).toBe(false);
  expect(await exists(snapshotDir([base, gone]))).toBe(false);
  expect(r.freed.buildCache.count).toBe(1);
  expect(r.freed.buildCache.bytes).toBeGreaterThan(3000);
  // The snapshot's file (3 × 3000 bytes) and its meta.json.
  expect(r.freed.snapshots.count).toBe(1);
  expect(r.freed.snapshots.bytes).toBeGreaterThan(9000);
  expect(r.freed.snapshots.bytes).toBeLessThan(9200);
  // The live tag's steps stay cache hits, on their snapshots.
  expect(await readCache(store, base.key)).toBeDefined();
  expect(await readCache(store, live.key)).toBeDefined();
  expect(await exists(snapshotDir([base]))).toBe(true);
  expect(await exists(snapshotDir([base, live]))).toBe(true);
  expect(kept(r, 'build-cache', 'live')).toMatchObject({
    count: 2,
    freedBy: 'strata gc --build-cache --all',
  });
  expect(kept(r, 'snapshots', 'live')).toMatchObject({ count: 2 });
  expect(kept(r, 'snapshots', 'live')!.bytes).toBeGreaterThanOrEqual(12000 + 6000);
  const f = r.freed;
  expect(r.bytesFreed).toBe(
    f.blobs.bytes + f.buildCache.bytes + f.snapshots.bytes + f.aptCache.bytes + f.partials.bytes,
  );
});

test('--build-cache forgets only what no tag uses; with --all it forgets everything', async () => {
  const { base, live, gone } = await twoBranches();
  // A budget that would keep the unused entry: --build-cache overrides it.
  await fsp.writeFile(store.configPath, JSON.stringify({ gc: { keepUnusedBytes: 1e9 } }));
  await collectGarbage(store, { buildCache: true });
  expect(await readCache(store, gone.key)).toBeUndefined();
  expect(await readCache(store, base.key)).toBeDefined();
  expect(await readCache(store, live.key)).toBeDefined();
  // Snapshots were not asked for: the budget keeps the unused one.
  expect(await exists(snapshotDir([base, gone]))).toBe(true);

  const all = await collectGarbage(store, { buildCache: true, all: true });
  expect(all.freed.buildCache.count).toBe(2);
  expect(await store.listRoots()).toEqual([]);
  // Tags still hold the layers.
  expect(await store.hasBlob(live.layer.digest)).toBe(true);
  expect(await exists(snapshotDir([base, live]))).toBe(true);
});

test('the config keeps unused entries within its byte budget and age, newest first', async () => {
  const { base, gone } = await twoBranches();
  const other = await step('other', [base], 3000);
  const old = Date.now() / 1000 - 3 * 24 * 3600;
  await fsp.utimes(path.join(store.rootsDir, `${cacheRootName(other.key)}.json`), old, old);
  await fsp.utimes(path.join(snapshotDir([base, other]), 'meta.json'), old, old);
  await fsp.writeFile(
    store.configPath,
    JSON.stringify({ gc: { keepUnusedBytes: 1e9, keepUnusedDays: 2 } }),
  );
  const r = await collectGarbage(store);
  // Recent: kept within the budget. Three days old: expired.
  expect(await readCache(store, gone.key)).toBeDefined();
  expect(await exists(snapshotDir([base, gone]))).toBe(true);
  expect(await readCache(store, other.key)).toBeUndefined();
  expect(await exists(snapshotDir([base, other]))).toBe(false);
  expect(kept(r, 'build-cache', 'limit')).toMatchObject({
    count: 1,
    freedBy: 'strata gc --build-cache',
  });
  expect(kept(r, 'build-cache', 'limit')!.why).toContain(store.configPath);
  expect(kept(r, 'snapshots', 'limit')).toMatchObject({
    count: 1,
    freedBy: 'strata gc --snapshots',
  });

  // A budget smaller than the entry lets it go.
  await fsp.writeFile(store.configPath, JSON.stringify({ gc: { keepUnusedBytes: 100 } }));
  await collectGarbage(store);
  expect(await readCache(store, gone.key)).toBeUndefined();
  expect(await exists(snapshotDir([base, gone]))).toBe(false);
});

test('a DEBUILD log goes with the cache entry of its key, and counts in what gc frees', async () => {
  const { base, live, gone } = await twoBranches();
  const logs = logsDir(store.root);
  await fsp.mkdir(logs, { recursive: true });
  const logOf = (s: Step) => path.join(logs, `debuild-x-${digestHex(s.key).slice(0, 12)}.log`);
  await fsp.writeFile(logOf(gone), Buffer.alloc(5000));
  await fsp.writeFile(logOf(live), Buffer.alloc(7000));
  const r = await collectGarbage(store, { buildCache: true });
  expect(r.freed.buildCache.count).toBe(1);
  expect(r.freed.buildCache.bytes).toBeGreaterThanOrEqual(5000);
  expect(await exists(logOf(gone))).toBe(false);
  expect(await exists(logOf(live))).toBe(true);
  expect(await readCache(store, base.key)).toBeDefined();
});

test('a failed DEBUILD’s log (no entry of its key) is kept within the config’s limits, and goes when old or with --build-cache', async () => {
  await twoBranches();
  const logs = logsDir(store.root);
  await fsp.mkdir(logs, { recursive: true });
  const recent = path.join(logs, `debuild-x-${'a'.repeat(12)}.log`);
  const old = path.join(logs, `debuild-y-${'b'.repeat(12)}.log`);
  await fsp.writeFile(recent, Buffer.alloc(3000));
  await fsp.writeFile(old, Buffer.alloc(4000));
  const then = new Date(Date.now() - 30 * 24 * 60 * 60 * 1000);
  await fsp.utimes(old, then, then);
  await fsp.writeFile(store.configPath, JSON.stringify({ gc: { keepUnusedBytes: 1e9 } }));
  const first = await collectGarbage(store);
  expect(await exists(old)).toBe(false);
  expect(await exists(recent)).toBe(true);
  expect(first.freed.buildCache.bytes).toBeGreaterThanOrEqual(4000);
  await collectGarbage(store, { buildCache: true });
  expect(await exists(recent)).toBe(false);
});

test('a DEBUILD entry stays while a tagged template carries its .debs, and expires once none does', async () => {
  const { base } = await twoBranches();
  await tagImage('with-debs:1', [base]);
  const entryFor = async (name: string) => {
    const file = path.join(dir, `${name}_1.0_all.deb`);
    await fsp.writeFile(file, `not really a deb: ${name}`);
    const info = await store.putBytes(await fsp.readFile(file));
    const blob = { mediaType: MediaTypes.debianPackage, digest: info.digest, size: info.size };
    const key = sha256(`debuild ${name}`);
    const debs = [{ blob, filename: path.basename(file) }];
    await store.putRoot(cacheRootName(key), {
      descriptors: [blob],
      entry: { key, kind: 'debuild', source: `./${name}`, debs },
    });
    return { key, file };
  };
  const carried = await entryFor('carried');
  const loose = await entryFor('loose');
  await store.attach(await store.resolve('with-debs:1'), ArtifactTypes.debs, [
    { path: carried.file, mediaType: MediaTypes.debianPackage, title: 'carried_1.0_all.deb' },
  ]);
  await collectGarbage(store);
  const roots = (await store.listRoots()).map((r) => r.name);
  expect(roots).toContain(cacheRootName(carried.key));
  expect(roots).not.toContain(cacheRootName(loose.key));
  await store.untag('with-debs:1');
  await collectGarbage(store);
  expect((await store.listRoots()).map((r) => r.name)).not.toContain(cacheRootName(carried.key));
});

test('--dry-run deletes nothing and reports what the real run then frees', async () => {
  const { base, gone } = await twoBranches();
  const listing = async () => ({
    blobs: (await store.listBlobs()).length,
    roots: (await store.listRoots()).length,
    snaps: (await fsp.readdir(path.join(store.root, '.strata', 'snapshots'))).sort(),
  });
  const before = await listing();
  const dry = await collectGarbage(store, { dryRun: true });
  expect(dry.dryRun).toBe(true);
  expect(await listing()).toEqual(before);
  expect(await readCache(store, gone.key)).toBeDefined();
  expect(await exists(snapshotDir([base, gone]))).toBe(true);
  const real = await collectGarbage(store);
  expect({ ...real, dryRun: true }).toEqual(dry);
  expect(real.bytesFreed).toBeGreaterThan(0);
});

test('while a build holds a lease, gc leaves the cache and snapshots alone, and an explicit --build-cache refuses', async () => {
  const { base, gone } = await twoBranches();
  const endLease = await holdLease(store);
  try {
    const r = await collectGarbage(store);
    expect(await readCache(store, gone.key)).toBeDefined();
    expect(await exists(snapshotDir([base, gone]))).toBe(true);
    expect(kept(r, 'build-cache', 'busy')).toMatchObject({ count: 1 });
    await expect(collectGarbage(store, { buildCache: true })).rejects.toMatchObject({
      code: 'LOCKED',
    });
  } finally {
    await endLease();
  }
  await collectGarbage(store);
  expect(await readCache(store, gone.key)).toBeUndefined();
});

test('apt caches stay unless asked for; --apt-cache drops them', async () => {
  await twoBranches();
  const apt = path.join(store.root, '.strata', 'apt');
  await fsp.mkdir(path.join(apt, 'lists', 'abcd'), { recursive: true });
  await fsp.writeFile(path.join(apt, 'lists', 'abcd', 'Packages'), Buffer.alloc(5000));
  await fsp.mkdir(path.join(apt, 'archives'), { recursive: true });
  await fsp.writeFile(path.join(apt, 'archives', 'x.deb'), Buffer.alloc(7000));
  const r = await collectGarbage(store);
  expect(kept(r, 'apt-cache', 'opt-in')).toMatchObject({
    count: 2,
    bytes: 12000,
    freedBy: 'strata gc --apt-cache',
  });
  expect(await exists(path.join(apt, 'archives', 'x.deb'))).toBe(true);
  const a = await collectGarbage(store, { aptCache: true });
  expect(a.freed.aptCache).toEqual({ count: 2, bytes: 12000 });
  expect(await fsp.readdir(apt)).toEqual(['lists']);
  expect(await fsp.readdir(path.join(apt, 'lists'))).toEqual([]);
});

test('a diff snapshot whose parent goes goes with it, even when a budget would keep it', async () => {
  const { base, gone } = await twoBranches();
  const child = await step('child', [base, gone], 10);
  const inv = await takeInventory(store);
  // The budget fits the small child but not its parent.
  const plan = planGc(inv, {}, { gc: { keepUnusedBytes: 500, keepUnusedDays: 7 } }, false);
  const dropped = plan.snapshots.map((s) => s.chain);
  expect(dropped).toContain(chainId([base, gone].map((s) => s.diffId)));
  expect(dropped).toContain(chainId([base, gone, child].map((s) => s.diffId)));
  expect(dropped).not.toContain(chainId([base].map((s) => s.diffId)));
});

test('df counts each kind, what tags use, and what gc would free', async () => {
  const { gone } = await twoBranches();
  const r = await diskUsageReport(store);
  expect(validateDfReport(r)).toEqual({ ok: true, value: r });
  const row = (k: string) => r.rows.find((x) => x.kind === k)!;
  expect(row('tags')).toMatchObject({ count: 1, live: 1 });
  expect(row('build-cache')).toMatchObject({ count: 3, live: 2 });
  expect(row('build-cache').reclaimable).toBeGreaterThan(gone.layer.size);
  expect(row('snapshots')).toMatchObject({ count: 3, live: 2 });
  expect(row('snapshots').reclaimable).toBeGreaterThan(9000);
  expect(row('snapshots').reclaimable).toBeLessThan(9200);
  // The removed tag's manifest and config are reclaimable by a plain gc.
  expect(row('blobs').reclaimable).toBeGreaterThan(0);
  const before = await store.listBlobs();
  expect((await diskUsageReport(store)).rows).toEqual(r.rows);
  expect(await store.listBlobs()).toEqual(before);
});

test('df shows what a killed template create left in the ingest area, and gc frees it', async () => {
  // A process that has exited: its unpacked rootfs is nobody's.
  const { spawnSync } = await import('node:child_process');
  const pid = spawnSync('true').pid;
  const left = path.join(store.root, '.strata', 'ingest', `rootfs-${pid}-0123456789ab`);
  await fsp.mkdir(path.join(left, 'usr'), { recursive: true });
  await fsp.writeFile(path.join(left, 'usr', 'su'), Buffer.alloc(5000));
  const r = await diskUsageReport(store);
  expect(validateDfReport(r)).toEqual({ ok: true, value: r });
  expect(r.rows.find((x) => x.kind === 'ingest')).toEqual({
    kind: 'ingest',
    count: 1,
    live: 0,
    bytes: 5000,
    reclaimable: 5000,
    freedBy: 'strata gc',
  });
  expect(r.totalBytes).toBeGreaterThanOrEqual(5000);
  const gc = await collectGarbage(store, {});
  expect(gc.freed.partials).toEqual({ count: 1, bytes: 5000 });
  expect(await fsp.readdir(path.join(store.root, '.strata', 'ingest'))).toEqual([]);
});

test('while a build runs, gc --all says why it refuses when plain gc runs, and a dry run names no option given already', async () => {
  await twoBranches();
  const endLease = await holdLease(store);
  try {
    const e = (await collectGarbage(store, { all: true }).catch((err: unknown) => err)) as {
      code: string;
      message: string;
      hint?: string;
    };
    expect(e.code).toBe('LOCKED');
    expect(e.message).toContain('`strata gc --all` would delete build-cache entries, snapshots');
    expect(e.hint).toContain('a plain `strata gc` may run meanwhile');
    const dry = await collectGarbage(store, { all: true, dryRun: true });
    const cache = dry.kept.filter((k) => k.kind === 'build-cache' || k.kind === 'snapshots');
    expect(cache.length).toBeGreaterThan(0);
    for (const k of cache) {
      expect(k).toMatchObject({ reason: 'busy', freedBy: 'strata gc --all, once it has finished' });
    }
    const plain = await collectGarbage(store, { dryRun: true });
    expect(kept(plain, 'build-cache', 'live')?.freedBy).toBe('strata gc --build-cache --all');
  } finally {
    await endLease();
  }
  const all = await collectGarbage(store, { all: true, dryRun: true });
  expect(all.kept.filter((k) => k.kind === 'build-cache' || k.kind === 'snapshots')).toEqual([]);
});
