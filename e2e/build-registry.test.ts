/**
 * The registry as the distributed engine: a template travels through a real registry, and a
 * machine that never built a step gets it from the build cache that another machine pushed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { minbaseRootfs, SLOW } from './helpers';
import { Registry, startRegistry, strata, strataOk, tmpDir } from './registry-fixtures';

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
  expect(first.stepsRun).toBe(2);

  // Machine B has an empty store: the FROM is pulled and every step comes from the registry.
  const second = await build(storeB, ['--cache-from', cache]);
  expect(second).toMatchObject({ stepsRun: 0, cacheHits: 2 });
  expect(first.steps.map((s) => s.status)).toEqual(['run', 'run']);
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
  expect(third.stepsRun).toBe(2);
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
