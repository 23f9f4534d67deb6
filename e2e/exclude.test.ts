/**
 * EXCLUDE keeps its paths out of the template: out of every layer of its stage, also those of
 * steps written before it (a user put it after the INSTALL it was meant for, and nothing was
 * excluded).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  cleanupTmp,
  minbaseRootfs,
  runOk,
  show,
  strata,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

jest.setTimeout(SLOW);

let work: string;
let store: string;

beforeAll(async () => {
  work = tmpDir('strata-exclude-');
  store = path.join(work, 'store');
  const { minbaseTar } = await minbaseRootfs();
  await strataOk(['template', 'create', minbaseTar, '-t', 'base:v1', '--name', 'base'], {
    store,
  });
});

afterAll(() => cleanupTmp());

test('an EXCLUDE after the step that made the files keeps them out, and inspect counts them', async () => {
  const dir = path.join(work, 'ctx');
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'Stratafile'),
    [
      'FROM base:v1',
      'RUN mkdir -p /usr/share/doc/acme && echo notes > /usr/share/doc/acme/README && echo 1 > /etc/acme',
      'EXCLUDE /usr/share/doc/acme/**',
      'RUN echo 2 >> /etc/acme',
      '',
    ].join('\n'),
  );
  const r = await strata(['build', '-q', '-t', 'app:v1', dir], { store });
  expect(show(r)).toMatch(/^exit 0/);
  const tar = path.join(work, 'app.tar');
  await strataOk(['flatten', 'app:v1', '--rootfs', tar], { store });
  const entries = (await runOk('tar', ['-tf', tar])).stdout.split('\n');
  // `**` matches what is under the directory; the directory itself stays, empty.
  expect(entries.filter((e) => e.includes('usr/share/doc/acme/'))).toEqual(['usr/share/doc/acme/']);
  expect((await runOk('tar', ['-xOf', tar, 'etc/acme'])).stdout).toBe('1\n2\n');
  // The FROM template's own docs stay.
  expect(entries.some((e) => /usr\/share\/doc\/bash\//.test(e))).toBe(true);
  const inspect = await strataJson<{ exclusions: Array<{ pattern: string; matched: number }> }>(
    ['inspect', 'app:v1'],
    { store },
  );
  expect(inspect.exclusions.find((e) => e.pattern === '/usr/share/doc/acme/**')?.matched).toBe(1);
});
