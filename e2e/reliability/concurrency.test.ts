/**
 * Everything at once on one store: two builds that share a base (and their first step), a
 * template create, a push and a pull against a real docker-registry on 127.0.0.1, and `gc` in a
 * loop the whole time (a plain one, and now and then one asked to drop the build cache and the
 * snapshots, which must refuse while anything holds a lease). Each command succeeds or fails on
 * one line for a reason it names (a gc refused or timed out on a lock). Then every result is
 * right: the builds' layers, read by GNU tar, hold what their steps wrote (and every round makes
 * the same digests as the first), the template is the one the same command makes on a quiet
 * store, the pulled image is the one pushed, the pushed image reads back with skopeo; nothing is
 * left mounted or running, fsck is clean, and a last gc keeps every tag whole.
 *
 * The pull finds its blobs in the store already, untagged and old (pulled, then untagged, before
 * the round): a gc under way must not take them from under the pull, which skips them.
 *
 * CI runs 2 rounds; STRATA_LONG=1 (npm run test:long) runs 20.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  RunResult,
  SLOW,
  cleanupTmp,
  minbaseRootfs,
  runOk,
  show,
  strata,
  strataLinesAreOneError,
  strataOk,
  tmpDir,
} from '../helpers';
import { readImage, storeWithBase } from '../fixtures/build/harness';
import { Registry, startRegistry } from '../registry-fixtures';
import { assertStoreClean } from '../support/concurrency';

jest.setTimeout(SLOW);

const LONG = process.env.STRATA_LONG === '1';
const ROUNDS = LONG ? 20 : 2;
/** Builds and template create are dated by this, so a quiet run gives the reference digests. */
const EPOCH = '1700000000';

const STRATAFILES = {
  alpha:
    'FROM base:v1\nRUN echo shared > /etc/shared\nRUN seq 1 300000 > /var/alpha && echo alpha > /etc/which\n',
  beta: 'FROM base:v1\nRUN echo shared > /etc/shared\nRUN seq 300000 -1 1 > /var/beta && echo beta > /etc/which\n',
};

let reg: Registry;
let work: string;
let rootfs: string;
const expected: Record<string, string> = {};
let pulledRef: string;

function contexts(dir: string): Record<keyof typeof STRATAFILES, string> {
  const out = {} as Record<keyof typeof STRATAFILES, string>;
  for (const [name, text] of Object.entries(STRATAFILES) as Array<
    [keyof typeof STRATAFILES, string]
  >) {
    const ctx = path.join(dir, name);
    fs.mkdirSync(ctx, { recursive: true });
    fs.writeFileSync(path.join(ctx, 'Stratafile'), text);
    out[name] = ctx;
  }
  return out;
}

/** The commands of a round, on `store`; `round` names the registry repository pushed to. */
function commands(
  store: string,
  dir: string,
  round: number,
): Record<string, () => Promise<RunResult>> {
  const env = { SOURCE_DATE_EPOCH: EPOCH };
  const ctx = contexts(dir);
  return {
    alpha: () => strata(['build', '-q', '-t', 'alpha:1', ctx.alpha], { store, env }),
    beta: () => strata(['build', '-q', '-t', 'beta:1', ctx.beta], { store, env }),
    create: () =>
      strata(['template', 'create', rootfs, '-t', 'made:1', '--name', 'made'], { store, env }),
    push: () => strata(['push', 'base:v1', `${reg.host}/round${round}/base:v1`], { store }),
    pull: () => strata(['pull', pulledRef, '-t', 'pulled:1'], { store }),
  };
}

beforeAll(async () => {
  work = tmpDir('strata-concurrency-');
  reg = await startRegistry();
  ({ rootfs } = await minbaseRootfs());
  // Something to pull: a small template pushed from a store of its own.
  const origin = path.join(work, 'origin');
  const tree = path.join(work, 'tree');
  fs.mkdirSync(path.join(tree, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'etc', 'pulled'), 'pulled\n'.repeat(100_000));
  await strataOk(['template', 'create', tree, '-t', 'pulled:1', '--name', 'pulled'], {
    store: origin,
  });
  pulledRef = `${reg.host}/pulled:1`;
  await strataOk(['push', 'pulled:1', pulledRef], { store: origin });
  expected['pulled:1'] = readImage(origin, 'pulled:1').digest;
  // The reference for template create: the same command alone on a quiet store. (The builds
  // are checked by what their layers hold, below: two more builds here would cost a minute.)
  const quiet = path.join(work, 'quiet');
  await strataOk(['template', 'create', rootfs, '-t', 'made:1', '--name', 'made'], {
    store: quiet,
    env: { SOURCE_DATE_EPOCH: EPOCH },
  });
  expected['made:1'] = readImage(quiet, 'made:1').digest;
});

afterAll(async () => {
  await reg?.stop();
  cleanupTmp();
});

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** `seq` from `a` to `b`, as the steps write it. */
function seq(a: number, b: number): string {
  const out: string[] = [];
  for (let i = a; a <= b ? i <= b : i >= b; i += a <= b ? 1 : -1) out.push(`${i}\n`);
  return out.join('');
}

/**
 * The two builds, read by GNU tar rather than by Strata: each is the base's layers and two
 * more, the first (the step both share) the same layer in both, holding /etc/shared; the second
 * holds what that build's own step wrote.
 */
async function expectBuilt(store: string, dir: string): Promise<void> {
  const base = readImage(store, 'base:v1').manifest.layers as Array<{ digest: string }>;
  const built = {
    alpha: readImage(store, 'alpha:1').manifest.layers as Array<{ digest: string }>,
    beta: readImage(store, 'beta:1').manifest.layers as Array<{ digest: string }>,
  };
  const unpack = async (digest: string, name: string): Promise<string> => {
    const out = path.join(dir, 'layers', name);
    fs.mkdirSync(out, { recursive: true });
    await runOk('tar', [
      '--zstd',
      '-xf',
      path.join(store, 'blobs', 'sha256', digest.slice(7)),
      '-C',
      out,
    ]);
    return out;
  };
  const n = base.length;
  for (const layers of Object.values(built)) {
    expect(layers.length).toBe(n + 2);
    expect(layers.slice(0, n)).toEqual(base);
  }
  expect(built.alpha[n]!.digest).toBe(built.beta[n]!.digest);
  const shared = await unpack(built.alpha[n]!.digest, 'shared');
  expect(fs.readFileSync(path.join(shared, 'etc', 'shared'), 'utf8')).toBe('shared\n');
  const alpha = await unpack(built.alpha[n + 1]!.digest, 'alpha');
  expect(fs.readFileSync(path.join(alpha, 'etc', 'which'), 'utf8')).toBe('alpha\n');
  expect(sha256(fs.readFileSync(path.join(alpha, 'var', 'alpha')))).toBe(sha256(seq(1, 300000)));
  const beta = await unpack(built.beta[n + 1]!.digest, 'beta');
  expect(fs.readFileSync(path.join(beta, 'etc', 'which'), 'utf8')).toBe('beta\n');
  expect(sha256(fs.readFileSync(path.join(beta, 'var', 'beta')))).toBe(sha256(seq(300000, 1)));
}

/** The tags of a store, by name. */
function tags(store: string): Record<string, string> {
  const index = JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const out: Record<string, string> = {};
  for (const m of index.manifests) {
    const ref = m.annotations?.['org.opencontainers.image.ref.name'];
    if (ref !== undefined) out[ref] = m.digest;
  }
  return out;
}

/** A gc that did not run failed cleanly: one line, saying what holds the store. */
function gcFailedCleanly(r: RunResult): boolean {
  return (
    strataLinesAreOneError(r.stderr) &&
    /is running on this store: `strata gc [^`]*` would delete|is locked by/.test(r.stderr)
  );
}

for (let round = 1; round <= ROUNDS; round++) {
  test(`builds, template create, push, pull and a gc loop at once on one store (round ${round} of ${ROUNDS})`, async () => {
    const { work: dir, store } = await storeWithBase();
    // The pull's blobs, present but untagged: a gc may take them before the pull starts, never
    // after it has found them.
    await strataOk(['pull', pulledRef, '-t', 'early:1'], { store });
    await strataOk(['rm', 'early:1'], { store });
    await new Promise((r) => setTimeout(r, 2500));

    let done = false;
    const gcs: Array<{ args: string[]; r: RunResult }> = [];
    const gcLoop = (async () => {
      for (let i = 0; !done; i++) {
        const args = i % 3 === 2 ? ['gc', '--build-cache', '--snapshots'] : ['gc'];
        gcs.push({ args, r: await strata(args, { store }) });
      }
    })();
    const run = commands(store, dir, round);
    const names = Object.keys(run);
    let results: RunResult[];
    try {
      results = await Promise.all(names.map((n) => run[n]!()));
    } finally {
      done = true;
      await gcLoop;
    }
    names.forEach((n, i) => {
      if (results[i]!.code !== 0) throw new Error(`${n}: ${show(results[i]!)}`);
    });
    expect(gcs.length).toBeGreaterThan(0);
    for (const { args, r } of gcs) {
      if (r.code !== 0 && !gcFailedCleanly(r))
        throw new Error(`strata ${args.join(' ')}: ${show(r)}`);
    }
    // A plain gc never needs to refuse: it leaves alone what a lease holds.
    expect(gcs.filter((g) => g.args.length === 1 && g.r.code !== 0).map((g) => show(g.r))).toEqual(
      [],
    );

    await assertStoreClean(store);
    expected['base:v1'] ??= readImage(store, 'base:v1').digest;
    await expectBuilt(store, dir);
    // The builds are dated by EPOCH: every round makes the same images as the first.
    expected['alpha:1'] ??= readImage(store, 'alpha:1').digest;
    expected['beta:1'] ??= readImage(store, 'beta:1').digest;
    for (const [tag, digest] of Object.entries(expected))
      expect([tag, readImage(store, tag).digest]).toEqual([tag, digest]);
    // skopeo reads the pushed image, every blob verified on the way.
    await runOk('skopeo', [
      'copy',
      '-q',
      '--src-tls-verify=false',
      `docker://${reg.host}/round${round}/base:v1`,
      `oci:${path.join(dir, 'pushed')}:base`,
    ]);
    const raw = await runOk('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      `docker://${reg.host}/round${round}/base:v1`,
    ]);
    expect(raw.stdout).toBe(
      fs.readFileSync(path.join(store, 'blobs', 'sha256', expected['base:v1']!.slice(7)), 'utf8'),
    );
    // A last gc, nothing running: every tag whole (fsck reads every tag's blobs).
    await strataOk(['gc'], { store });
    expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
    expect(Object.keys(tags(store)).sort()).toEqual(Object.keys(expected).sort());
    fs.rmSync(dir, { recursive: true, force: true });
  });
}
