/**
 * `strata gc` and `strata df` as a user meets them: two products built on one template, one of
 * them removed. gc must free that one's build cache, snapshots and layers, keep the live one's
 * (its rebuild stays a cache hit), and say what it kept and why.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  blobPath,
  cleanupTmp,
  minbaseRootfs,
  readBlobJson,
  manifestOf,
  startStrata,
  type StrataChild,
  strata,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

jest.setTimeout(SLOW);

interface Figure {
  count: number;
  bytes: number;
}
interface GcReport {
  dryRun: boolean;
  removed: number;
  bytesFreed: number;
  freed: Record<'blobs' | 'buildCache' | 'snapshots' | 'aptCache' | 'partials', Figure>;
  kept: Array<{ kind: string; reason: string; count: number; bytes: number; freedBy: string }>;
}
interface DfRow {
  kind: string;
  count: number;
  live: number;
  bytes: number;
  reclaimable: number;
  freedBy: string;
}
interface BuildResult {
  cacheHits: number;
  stepsRun: number;
  layers: Array<{ digest: string; size: number }>;
}

const work = tmpDir('strata-gc-');
const store = path.join(work, 'store');
const BIG = 4_000_000;

/** A context whose one RUN writes `bytes` of random data (so the layer is that big too). */
function context(name: string, bytes: number): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'Stratafile'),
    `FROM base:1\nRUN head -c ${bytes} /dev/urandom > /etc/${name}.bin\n`,
  );
  return dir;
}

const build = (tag: string, dir: string) =>
  strataJson<BuildResult>(['build', '-q', '-t', tag, dir], { store });

/** Snapshot directory of an image's whole layer chain, computed by the OCI chain ID rule. */
function snapshotOf(ref: string): string {
  const { manifest } = manifestOf(store, ref);
  const config = readBlobJson<{ rootfs: { diff_ids: string[] } }>(store, manifest.config.digest);
  let chain = '';
  for (const d of config.rootfs.diff_ids) {
    chain = chain ? `sha256:${createHash('sha256').update(`${chain} ${d}`).digest('hex')}` : d;
  }
  return path.join(store, '.strata', 'snapshots', chain.slice(7));
}

let keepDir: string;
let goneLayer: { digest: string; size: number };
let goneSnapshot: string;
let keepSnapshot: string;

beforeAll(async () => {
  const fx = await minbaseRootfs();
  await strataOk(['template', 'create', fx.rootfs, '-t', 'base:1', '--name', 'base'], { store });
  keepDir = context('keep', 1_000_000);
  await build('keep:1', keepDir);
  const gone = await build('gone:1', context('gone', BIG));
  goneLayer = gone.layers[gone.layers.length - 1]!;
  goneSnapshot = snapshotOf('gone:1');
  keepSnapshot = snapshotOf('keep:1');
  expect(fs.existsSync(goneSnapshot)).toBe(true);
  await strataOk(['rm', 'gone:1'], { store });
});

afterAll(() => cleanupTmp());

test('df shows the removed tag’s cache and snapshot as reclaimable', async () => {
  const df = await strataJson<{ rows: DfRow[]; totalBytes: number }>(['df'], { store });
  const row = (k: string) => df.rows.find((r) => r.kind === k)!;
  expect(row('tags')).toMatchObject({ count: 2, live: 2 });
  // base and keep (2 chains) are live; gone's chain is not.
  expect(row('snapshots')).toMatchObject({ count: 3, live: 2 });
  expect(row('snapshots').reclaimable).toBeGreaterThanOrEqual(BIG);
  expect(row('build-cache')).toMatchObject({ count: 2, live: 1 });
  expect(row('build-cache').reclaimable).toBeGreaterThanOrEqual(goneLayer.size);
  expect(row('apt-cache').freedBy).toBe('strata gc --apt-cache');
  const text = await strataOk(['df'], { store });
  expect(text.stdout).toMatch(/^TYPE\s+COUNT\s+LIVE\s+SIZE\s+RECLAIMABLE\s+FREED BY$/m);
  expect(text.stdout).toMatch(/^build cache\s+2\s+1\s/m);
});

test('gc --dry-run reports what gc frees and deletes nothing', async () => {
  const before = fs.readdirSync(path.join(store, 'blobs', 'sha256')).sort();
  const dry = await strataJson<GcReport>(['gc', '--dry-run'], { store });
  expect(dry.dryRun).toBe(true);
  expect(dry.freed.snapshots.bytes).toBeGreaterThanOrEqual(BIG);
  expect(dry.freed.buildCache.bytes).toBeGreaterThanOrEqual(goneLayer.size);
  expect(fs.readdirSync(path.join(store, 'blobs', 'sha256')).sort()).toEqual(before);
  expect(fs.existsSync(goneSnapshot)).toBe(true);
  const text = await strataOk(['gc', '--dry-run'], { store });
  expect(text.stdout).toMatch(/^dry run: would free /);
  expect(fs.existsSync(blobPath(store, goneLayer.digest))).toBe(true);
});

test('gc frees the removed tag’s layer, cache entry and snapshot, and keeps the live tag’s', async () => {
  const blobsBefore = fs.readdirSync(path.join(store, 'blobs', 'sha256')).length;
  const r = await strataJson<GcReport>(['gc'], { store });
  expect(r.dryRun).toBe(false);
  expect(fs.existsSync(blobPath(store, goneLayer.digest))).toBe(false);
  expect(fs.existsSync(goneSnapshot)).toBe(false);
  expect(fs.existsSync(keepSnapshot)).toBe(true);
  expect(r.freed.buildCache.count).toBe(1);
  expect(r.freed.buildCache.bytes).toBeGreaterThanOrEqual(goneLayer.size);
  expect(r.freed.snapshots.count).toBe(1);
  expect(r.freed.snapshots.bytes).toBeGreaterThanOrEqual(BIG);
  expect(r.removed).toBe(blobsBefore - fs.readdirSync(path.join(store, 'blobs', 'sha256')).length);
  const sum = Object.values(r.freed).reduce((n, f) => n + f.bytes, 0);
  expect(r.bytesFreed).toBe(sum);

  // Nothing left to free; the report says what stays and which flag frees it.
  const again = await strataOk(['gc'], { store });
  expect(again.stdout).toMatch(/^freed 0 B \(0 bytes\)$/m);
  expect(again.stdout).toMatch(
    /^ {2}build cache: 1, .*\(freed by: strata gc --build-cache --all\)$/m,
  );
  expect(again.stdout).toMatch(/^ {2}snapshots: 2, .*\(freed by: strata gc --snapshots --all\)$/m);
  expect(again.stdout).toMatch(/^ {2}apt caches: \d+, .*\(freed by: strata gc --apt-cache\)$/m);
  const keptSnaps = (await strataJson<GcReport>(['gc'], { store })).kept.find(
    (k) => k.kind === 'snapshots' && k.reason === 'live',
  )!;
  // base's full unpacked tree is far bigger than keep's 1 MB diff.
  expect(keptSnaps.bytes).toBeGreaterThan(50_000_000);
  expect((await strata(['fsck'], { store })).code).toBe(0);
});

test('the live tag’s rebuild is still a cache hit after gc and after gc --build-cache', async () => {
  expect(await build('keep:1', keepDir)).toMatchObject({ cacheHits: 1, stepsRun: 0 });
  const r = await strataJson<GcReport>(['gc', '--build-cache'], { store });
  expect(r.freed.buildCache.count).toBe(0);
  expect(await build('keep:1', keepDir)).toMatchObject({ cacheHits: 1, stepsRun: 0 });
  // Only --all forgets the live tag's steps.
  const all = await strataJson<GcReport>(['gc', '--build-cache', '--all'], { store });
  expect(all.freed.buildCache.count).toBe(1);
  expect(await build('keep:1', keepDir)).toMatchObject({ cacheHits: 0, stepsRun: 1 });
});

describe('the unpacked rootfs of an interrupted template create', () => {
  const ingest = path.join(store, '.strata', 'ingest');
  const unpacked = () => fs.readdirSync(ingest).filter((n) => n.startsWith('rootfs-'));

  /** Whether the create has unpacked some files yet (the minbase tar begins with its folders). */
  const begun = (): boolean =>
    unpacked().some((n) => fs.readdirSync(path.join(ingest, n)).length > 3);

  /** Start `template create` of the minbase tar; resolves once it has unpacked some of it. */
  async function startCreate(): Promise<StrataChild> {
    const fx = await minbaseRootfs();
    const c = startStrata([
      '--store',
      store,
      'template',
      'create',
      fx.minbaseTar,
      '-t',
      'cut:1',
      '--name',
      'cut',
    ]);
    const t0 = Date.now();
    while (!begun() && c.running() && Date.now() - t0 < 60_000)
      await new Promise((r) => setTimeout(r, 50));
    expect(unpacked()).toHaveLength(1);
    return c;
  }

  test('SIGTERM: the command removes it before it ends', async () => {
    const c = await startCreate();
    c.child.kill('SIGTERM');
    expect((await c.exited)[0]).toBe(130);
    expect(c.output().stderr).toContain('interrupted');
    expect(unpacked()).toEqual([]);
  });

  test('SIGKILL: df shows it, gc removes it', async () => {
    const c = await startCreate();
    c.child.kill('SIGKILL');
    await c.exited;
    expect(unpacked()).toHaveLength(1);
    const df = await strataJson<{ rows: DfRow[] }>(['df'], { store });
    const row = df.rows.find((r) => r.kind === 'ingest')!;
    expect(row.count).toBe(1);
    expect(row.reclaimable).toBeGreaterThan(0);
    const r = await strataJson<GcReport>(['gc'], { store });
    expect(r.freed.partials.count).toBe(1);
    expect(unpacked()).toEqual([]);
  });
});
