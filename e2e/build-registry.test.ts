/**
 * The registry as the distributed engine: a template travels through a real registry, and a
 * machine that never built a step gets it from the build cache that another machine pushed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { minbaseRootfs, SLOW } from './helpers';
import { Registry, freePort, startRegistry, strata, strataOk, tmpDir } from './registry-fixtures';

jest.setTimeout(SLOW);

let registry: Registry;
let base: string;
let context: string;
const storeA = tmpDir('cache-a');
const storeB = tmpDir('cache-b');

beforeAll(async () => {
  const fx = await minbaseRootfs();
  registry = await startRegistry();
  base = `127.0.0.1:${registry.port}/acme/base:1`;
  await strataOk([
    '--store',
    storeA,
    'template',
    'create',
    fx.rootfs,
    '-t',
    'base:1',
    '--name',
    'acme-base',
  ]);
  await strataOk(['--store', storeA, 'push', 'base:1', base]);
  context = tmpDir('cache-ctx');
  fs.writeFileSync(path.join(context, 'motd'), 'built once, shared everywhere\n');
  fs.writeFileSync(
    path.join(context, 'Stratafile'),
    [
      `FROM ${base}`,
      'RUN echo step-one > /etc/step-one',
      // Changes nothing: no layer, and its cache entry (which says so) travels all the same.
      'RUN true',
      'COPY --chmod=0640 motd /etc/motd',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await registry?.stop();
});

interface BuildJson {
  digest: string;
  stepsRun: number;
  cacheHits: number;
  layers: Array<{ digest: string }>;
  steps: Array<{ status: string; from?: string; layer?: { digest: string } }>;
}

async function build(store: string, extra: string[]): Promise<BuildJson> {
  const r = await strataOk([
    '--store',
    store,
    '--json',
    'build',
    '-q',
    '-t',
    'app:1',
    ...extra,
    context,
  ]);
  return JSON.parse(r.stdout) as BuildJson;
}

test('a step built and pushed on one machine is a cache hit on another', async () => {
  const cache = `127.0.0.1:${registry.port}/acme/cache`;
  const first = await build(storeA, ['--cache-to', cache]);
  expect(first.stepsRun).toBe(3);

  // Machine B has an empty store: the FROM is pulled and every step comes from the registry.
  const second = await build(storeB, ['--cache-from', cache]);
  expect(second).toMatchObject({ stepsRun: 0, cacheHits: 3 });
  expect(first.steps.map((s) => s.status)).toEqual(['run', 'run', 'run']);
  expect(first.steps.map((s) => s.layer !== undefined)).toEqual([true, false, true]);
  // Each step says where it came from.
  expect(
    second.steps.map((s) => ({ status: s.status, from: s.from, layer: s.layer?.digest })),
  ).toEqual(
    first.steps.map((s) => ({ status: 'remote-cached', from: cache, layer: s.layer?.digest })),
  );
  expect(second.layers.map((l) => l.digest)).toEqual(first.layers.map((l) => l.digest));
  expect((await strataOk(['--store', storeB, 'fsck'])).stdout).toMatch(/^ok:/m);

  // Without the shared cache, machine B would have run the steps itself.
  const storeC = tmpDir('cache-c');
  const third = await build(storeC, []);
  expect(third.stepsRun).toBe(3);
  expect(third.layers.map((l) => l.digest)).toEqual(first.layers.map((l) => l.digest));
});

test('a registry FROM that does not exist fails with one line naming the Stratafile line', async () => {
  const ctx = tmpDir('cache-missing');
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    `FROM 127.0.0.1:${registry.port}/acme/nothing:1\nRUN true\n`,
  );
  const r = await strata(['--store', storeB, 'build', ctx]);
  expect(r.code).not.toBe(0);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/Stratafile:1:1: FROM .*nothing/);
});

describe('a cache registry that cannot be reached', () => {
  let cache: string;
  beforeAll(async () => {
    // A port nothing listens on: every connection is refused.
    cache = `127.0.0.1:${await freePort()}/team/cache`;
  });

  test('--cache-from: one warning naming it, and the steps run without it', async () => {
    const r = await strata([
      '--store',
      tmpDir('cache-from-down'),
      '--json',
      'build',
      '-t',
      'app:1',
      '--cache-from',
      cache,
      context,
    ]);
    expect([r.code, r.stderr]).toEqual([0, expect.any(String)]);
    expect(JSON.parse(r.stdout)).toMatchObject({ stepsRun: 3, cacheHits: 0 });
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('strata: warning:'));
    expect(warnings).toEqual([
      expect.stringMatching(
        /^strata: warning: --cache-from 127\.0\.0\.1:\d+\/team\/cache: cannot reach the registry \(.*ECONNREFUSED.*\); building without this cache$/,
      ),
    ]);
    expect(warnings[0]).toContain(`--cache-from ${cache}:`);
  });

  test('--cache-to: fails before any step runs, naming it', async () => {
    const r = await strata([
      '--store',
      tmpDir('cache-to-down'),
      '--json',
      'build',
      '-t',
      'app:1',
      '--cache-to',
      cache,
      context,
    ]);
    expect(r.code).toBe(1);
    const error = (JSON.parse(r.stdout) as { error: { code: string; message: string } }).error;
    expect(error).toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/ECONNREFUSED/),
    });
    expect(error.message).toContain(`--cache-to ${cache}: cannot reach the registry`);
    // No step ran (or started) before it.
    expect(r.stderr).not.toMatch(/\[1\/2\]/);
  });
});

describe('a FROM registry that cannot be reached', () => {
  let down: Registry;
  let ref: string;
  let ctx: string;
  const store = tmpDir('offline-store');
  const stratafile = () => path.join(ctx, 'Stratafile');
  const lockedBase = () =>
    (JSON.parse(fs.readFileSync(`${stratafile()}.lock`, 'utf8')) as LockJson).stages[0]!.from
      .digest;
  const offline = (s: string, extra: string[] = []) =>
    strata(['--store', s, '--json', 'build', '-t', 'offline:1', ...extra, ctx]);

  interface LockJson {
    stages: Array<{ from: { ref: string; digest: string } }>;
  }

  beforeAll(async () => {
    // A registry of its own, which the tests stop.
    down = await startRegistry();
    ref = `127.0.0.1:${down.port}/acme/base:1`;
    await strataOk(['--store', storeA, 'push', 'base:1', ref]);
    ctx = tmpDir('offline-ctx');
    fs.writeFileSync(stratafile(), `FROM ${ref}\nRUN echo offline > /etc/offline\n`);
  });

  afterAll(async () => {
    await down?.stop();
  });

  test('a base the store holds is built on, with a warning naming its digest; none, fails', async () => {
    const first = JSON.parse(
      (await strataOk(['--store', store, '--json', 'build', '-q', '-t', 'offline:1', ctx])).stdout,
    ) as BuildJson;
    await down.stop();
    const digest = lockedBase();
    for (const extra of [[], ['--frozen']]) {
      const r = await offline(store, extra);
      expect([extra, r.code, r.stderr]).toEqual([extra, 0, expect.any(String)]);
      expect(JSON.parse(r.stdout)).toMatchObject({ digest: first.digest, stepsRun: 0 });
      const warnings = r.stderr.split('\n').filter((l) => l.startsWith('strata: warning:'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(
        new RegExp(
          `^strata: warning: .*Stratafile:1:1: FROM ${ref.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: the registry could not be reached \\(.*ECONNREFUSED.*\\); using the copy the store holds, ${digest}$`,
        ),
      );
    }
    expect(lockedBase()).toBe(digest);
    // A store that holds nothing for it still fails, with the connection error.
    const fresh = await offline(tmpDir('offline-fresh'));
    expect(fresh.code).not.toBe(0);
    expect(fresh.stderr.trim().split('\n')).toHaveLength(1);
    expect(fresh.stderr).toMatch(/Stratafile:1:1: FROM .*ECONNREFUSED/);
  });

  test('--frozen takes only the digest the lock has, not what the tag holds now', async () => {
    // The reference's local tag moved since the lock was written (as a later pull of a moved
    // tag does), and the image the lock has is no longer in the store.
    const archive = path.join(tmpDir('offline-archive'), 'other.tar');
    await strataOk(['--store', store, 'save', 'offline:1', '-o', archive]);
    await strataOk(['--store', store, 'load', archive, '-t', ref]);
    const other = (
      JSON.parse((await strataOk(['--store', store, '--json', 'ls'])).stdout) as Array<{
        ref: string;
        digest: string;
      }>
    ).find((x) => x.ref === ref)?.digest;
    expect(other).toMatch(/^sha256:/);
    expect(other).not.toBe(lockedBase());
    const frozen = await offline(store, ['--frozen']);
    expect(frozen.code).not.toBe(0);
    expect(frozen.stderr).toMatch(/Stratafile:1:1: FROM .*ECONNREFUSED/);
    // Without --frozen the tag's image is taken, and the warning says which.
    const r = await offline(store);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`using the copy the store holds, ${other}`);
    expect(lockedBase()).toBe(other);
  });
});
