/**
 * A deep stack, as a new user writes one: `FROM` a template made from the minbase fixture,
 * then 100 one-line RUN steps. Each step mounts an overlay over every layer below it, so this is
 * where the lowerdir option outgrows its page (it used to fail at step 37). The result is
 * flattened to a rootfs tar and read back by GNU tar; a second build must be cached throughout.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  cleanupTmp,
  manifestOf,
  minbaseRootfs,
  runOk,
  show,
  strata,
  strataOk,
  tmpDir,
} from './helpers';

jest.setTimeout(SLOW);

const STEPS = 100;

let work: string;
let store: string;
let context: string;

interface BuildJson {
  digest: string;
  layers: Array<{ digest: string }>;
  cacheHits: number;
  stepsRun: number;
}

async function build(): Promise<BuildJson> {
  const r = await strata(['build', '-q', '--json', '-t', 'deep:1', context], { store });
  if (r.code !== 0) throw new Error(`strata build: ${show(r)}`);
  return JSON.parse(r.stdout) as BuildJson;
}

beforeAll(async () => {
  const fx = await minbaseRootfs();
  work = tmpDir('strata-deep-');
  store = path.join(work, 'store');
  await strataOk(['template', 'create', fx.minbaseTar, '-t', 'base:1', '--name', 'base'], {
    store,
  });
  context = path.join(work, 'ctx');
  fs.mkdirSync(context);
  const steps = Array.from({ length: STEPS }, (_, i) => `RUN echo ${i + 1} > /etc/step-${i + 1}`);
  fs.writeFileSync(path.join(context, 'Stratafile'), ['FROM base:1', ...steps, ''].join('\n'));
});

afterAll(() => cleanupTmp());

describe(`a Stratafile of ${STEPS} RUN steps`, () => {
  let first: BuildJson;

  test('builds, one layer per step on top of the base', async () => {
    first = await build();
    expect(first.stepsRun).toBe(STEPS);
    const base = manifestOf(store, 'base:1').manifest.layers.length;
    expect(first.layers.length).toBe(base + STEPS);
  });

  test('flattens to a rootfs tar holding every step’s file', async () => {
    const out = path.join(work, 'deep.tar');
    await strataOk(['flatten', 'deep:1', '--rootfs', out], { store });
    const dest = path.join(work, 'flat');
    fs.mkdirSync(dest);
    const listed = (await runOk('tar', ['-tf', out])).stdout.split('\n');
    const steps = listed.filter((n) => /^(\.\/)?etc\/step-\d+$/.test(n));
    expect(steps.length).toBe(STEPS);
    await runOk('tar', ['-xf', out, '-C', dest, ...steps]);
    const names = fs.readdirSync(path.join(dest, 'etc')).filter((n) => n.startsWith('step-'));
    expect(names.length).toBe(STEPS);
    for (let i = 1; i <= STEPS; i++)
      expect(fs.readFileSync(path.join(dest, 'etc', `step-${i}`), 'utf8')).toBe(`${i}\n`);
  });

  test('a rebuild is cached at every step and gives the same image', async () => {
    const again = await build();
    expect(again.stepsRun).toBe(0);
    expect(again.cacheHits).toBe(STEPS);
    expect(again.digest).toBe(first.digest);
  });
});
