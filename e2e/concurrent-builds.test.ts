/**
 * Builds side by side, as a new user first tried them: two builds on one fresh store at once,
 * `FROM base` with `INSTALL curl`, and `FROM base` with `RUN …` then `INSTALL less`. One used
 * to fail on apt's lock of the shared lists, and a build that unpacked the base while the other
 * had just committed it removed that snapshot from under the other's running step. A third
 * build runs the same step as the first at the same time, and two stores on one host build at
 * once as well. Each round starts from a fresh store, so the base is unpacked and apt's lists
 * are fetched while the others run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SLOW, cleanupTmp, show, strata, strataOk } from './helpers';
import { storeWithBase } from './fixtures/build/harness';
import { assertStoreClean } from './support/concurrency';

jest.setTimeout(SLOW);

const ROUNDS = 3;

afterAll(() => cleanupTmp());

/** Contexts for the two Stratafiles, and a copy of the first. */
function contexts(work: string): Record<'curl' | 'less' | 'curl2', string> {
  const files = {
    curl: 'FROM base:v1\nINSTALL curl\n',
    less: 'FROM base:v1\nRUN echo side-by-side > /etc/side-by-side\nINSTALL less\n',
    curl2: 'FROM base:v1\nINSTALL curl\n',
  };
  const out = {} as Record<keyof typeof files, string>;
  for (const [name, text] of Object.entries(files) as Array<[keyof typeof files, string]>) {
    const dir = path.join(work, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'Stratafile'), text);
    out[name] = dir;
  }
  return out;
}

for (let round = 1; round <= ROUNDS; round++) {
  test(`three builds on one fresh store at once all succeed (round ${round} of ${ROUNDS})`, async () => {
    const { work, store, sources } = await storeWithBase();
    const ctx = contexts(work);
    const build = (tag: string, dir: string) =>
      strata(['build', '-q', '--apt-sources', sources, '-t', tag, dir], { store });
    const results = await Promise.all([
      build('curl:1', ctx.curl),
      build('less:1', ctx.less),
      build('curl:2', ctx.curl2),
    ]);
    for (const r of results) if (r.code !== 0) throw new Error(show(r));
    await assertStoreClean(store);
    // What each built is whole: a rebuild is all cache hits, and the packages are there.
    const again = await strataOk(
      ['build', '-q', '--json', '--apt-sources', sources, '-t', 'curl:3', ctx.curl],
      {
        store,
      },
    );
    expect(JSON.parse(again.stdout)).toMatchObject({ stepsRun: 0 });
    const inspect = JSON.parse((await strataOk(['inspect', '--json', 'less:1'], { store })).stdout);
    expect(JSON.stringify(inspect)).toContain('"less"');
  });
}

test('builds on two stores of one host at once both succeed', async () => {
  const one = await storeWithBase();
  const two = await storeWithBase();
  const results = await Promise.all(
    [one, two].map(({ work, store, sources }) =>
      strata(['build', '-q', '--apt-sources', sources, '-t', 'curl:1', contexts(work).curl], {
        store,
      }),
    ),
  );
  for (const r of results) if (r.code !== 0) throw new Error(show(r));
  await assertStoreClean(one.store);
  await assertStoreClean(two.store);
});
