import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDeb822 } from '@strata/debian';
import { writeDebsRepo } from './local-repo';

let dir: string;
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-repo-'));
});
afterEach(() => fsp.rm(dir, { recursive: true, force: true }));

/** A real .deb made by dpkg-deb, holding /usr/share/NAME. */
async function deb(name: string, version: string, depends?: string): Promise<string> {
  const root = path.join(dir, `src-${name}`);
  await fsp.mkdir(path.join(root, 'DEBIAN'), { recursive: true });
  await fsp.mkdir(path.join(root, 'usr/share'), { recursive: true });
  await fsp.writeFile(path.join(root, 'usr/share', name), `${name}\n`);
  await fsp.writeFile(
    path.join(root, 'DEBIAN/control'),
    [
      `Package: ${name}`,
      `Version: ${version}`,
      'Architecture: all',
      'Maintainer: Strata Tests <tests@example.invalid>',
      ...(depends ? [`Depends: ${depends}`] : []),
      `Description: ${name} for tests`,
      ' A second line of description.',
      '',
    ].join('\n'),
  );
  const out = path.join(dir, `${name}_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, out], { stdio: 'ignore' });
  return out;
}

test('a flat repository that apt reads, with the dependency between its packages', async () => {
  const debs = [
    await deb('strata-two', '2.0', 'strata-one (>= 1.0)'),
    await deb('strata-one', '1.0'),
  ];
  const repo = path.join(dir, 'repo');
  const got = await writeDebsRepo(repo, debs, { date: new Date(0) });
  expect(got.packages.map((p) => `${p.name} ${p.version} ${p.architecture}`).sort()).toEqual([
    'strata-one 1.0 all',
    'strata-two 2.0 all',
  ]);
  const index = readFileSync(path.join(repo, 'Packages'), 'utf8');
  const stanzas = parseDeb822(index);
  expect(stanzas.map((s) => s.get('package'))).toEqual(['strata-one', 'strata-two']);
  const two = stanzas[1]!;
  expect(two.get('depends')).toBe('strata-one (>= 1.0)');
  expect(two.get('filename')).toBe('./strata-two_2.0_all.deb');
  expect(two.get('sha256')).toBe(createHash('sha256').update(readFileSync(debs[0]!)).digest('hex'));
  const release = readFileSync(path.join(repo, 'Release'), 'utf8');
  expect(release).toContain(`${createHash('sha256').update(index).digest('hex')}`);
  expect(got.release).toBe(createHash('sha256').update(release).digest('hex'));

  // The host's apt, on a state of its own, resolves both from the repository.
  const state = path.join(dir, 'apt');
  for (const d of ['lists/partial', 'cache', 'etc/preferences.d', 'etc/apt.conf.d'])
    await fsp.mkdir(path.join(state, d), { recursive: true });
  await fsp.writeFile(path.join(state, 'etc/sources.list'), `deb [trusted=yes] file:${repo} ./\n`);
  const apt = (cmd: string, ...args: string[]) =>
    execFileSync(
      cmd,
      [
        '-o',
        `Dir::Etc=${path.join(state, 'etc')}`,
        '-o',
        `Dir::State::Lists=${path.join(state, 'lists')}`,
        '-o',
        `Dir::Cache=${path.join(state, 'cache')}`,
        '-o',
        'Dir::State::status=/dev/null',
        '-o',
        'Debug::NoLocking=1',
        ...args,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
  apt('apt-get', 'update', '-q');
  expect(apt('apt-get', 'install', '-s', 'strata-two')).toMatch(
    /Inst strata-one \(1\.0[\s\S]*Inst strata-two \(2\.0/,
  );
});

test('the same debs and date make the same files', async () => {
  const debs = [await deb('strata-one', '1.0')];
  const a = await writeDebsRepo(path.join(dir, 'a'), debs, { date: new Date(1e12) });
  const b = await writeDebsRepo(path.join(dir, 'b'), debs, { date: new Date(1e12) });
  expect(a.release).toBe(b.release);
});
