/**
 * The harness checks itself: the tree comparison must see every kind of difference the template
 * tests rely on, and the cached fixture must hold what its comment promises.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  applyExclusions,
  cleanupTmp,
  DEFAULT_EXCLUSIONS,
  diffTrees,
  FIXTURE_EXTRAS,
  globRegExp,
  makeTar,
  minbaseRootfs,
  runOk,
  SLOW,
  snapshotTree,
  tmpDir,
} from './helpers';

afterAll(cleanupTmp);

describe('diffTrees', () => {
  let base: string;
  beforeEach(async () => {
    base = tmpDir();
    fs.mkdirSync(path.join(base, 'd'));
    fs.writeFileSync(path.join(base, 'd/a'), 'a');
    fs.linkSync(path.join(base, 'd/a'), path.join(base, 'd/b'));
    fs.writeFileSync(path.join(base, 'd/c'), 'c');
    fs.symlinkSync('a', path.join(base, 'd/s'));
    await runOk('setfattr', ['-n', 'user.k', '-v', 'v', path.join(base, 'd/c')]);
  });

  it('finds no difference between a tree and a faithful copy', async () => {
    const copy = tmpDir();
    await runOk('cp', ['-a', `${base}/.`, copy]);
    expect(diffTrees(await snapshotTree(base), await snapshotTree(copy))).toEqual([]);
  });

  it.each([
    ['mode', (d: string) => fs.chmodSync(path.join(d, 'd/c'), 0o600), 'd/c: mode'],
    ['owner', (d: string) => fs.chownSync(path.join(d, 'd/c'), 1, 0), 'd/c: uid'],
    ['content', (d: string) => fs.writeFileSync(path.join(d, 'd/c'), 'C'), 'd/c: sha256'],
    [
      'symlink target',
      (d: string) => {
        fs.unlinkSync(path.join(d, 'd/s'));
        fs.symlinkSync('b', path.join(d, 'd/s'));
      },
      'd/s: target',
    ],
    [
      'hardlink broken',
      (d: string) => {
        fs.unlinkSync(path.join(d, 'd/b'));
        fs.writeFileSync(path.join(d, 'd/b'), 'a');
      },
      'd/a: hardlinks',
    ],
    ['missing path', (d: string) => fs.unlinkSync(path.join(d, 'd/c')), 'd/c: missing'],
    ['extra path', (d: string) => fs.writeFileSync(path.join(d, 'd/x'), ''), 'd/x: unexpected'],
  ])('notices a changed %s', async (_what, mutate, expected) => {
    const copy = tmpDir();
    await runOk('cp', ['-a', `${base}/.`, copy]);
    mutate(copy);
    const diffs = diffTrees(await snapshotTree(base), await snapshotTree(copy));
    expect(diffs.join('\n')).toContain(expected);
  });

  it('notices a lost xattr', async () => {
    const copy = tmpDir();
    await runOk('cp', ['-a', `${base}/.`, copy]);
    await runOk('setfattr', ['-x', 'user.k', path.join(copy, 'd/c')]);
    const diffs = diffTrees(await snapshotTree(base), await snapshotTree(copy));
    expect(diffs).toEqual([expect.stringContaining('d/c: xattrs')]);
  });
});

describe('exclusion model', () => {
  it('matches globs within one path component, dotfiles included', () => {
    expect(globRegExp('tmp/*').test('tmp/.hidden')).toBe(true);
    expect(globRegExp('tmp/*').test('tmp')).toBe(false);
    expect(globRegExp('etc/apt/apt.conf.d/*proxy*').test('etc/apt/apt.conf.d/99proxy')).toBe(true);
    expect(globRegExp('etc/ssh/ssh_host_*').test('etc/ssh/sshd_config')).toBe(false);
  });
});

describe('minbase fixture', () => {
  it(
    'holds the promised extras, and GNU tar round-trips it exactly',
    async () => {
      const fx = await minbaseRootfs();
      const tree = await snapshotTree(fx.rootfs);
      const x = FIXTURE_EXTRAS;
      expect(tree.get('usr/local/bin/strata-ping')?.xattrs?.['security.capability']).toBeDefined();
      expect(tree.get(`${x}/hardlink-a`)?.links).toEqual([`${x}/hardlink-b`, `${x}/hardlink-c`]);
      expect(tree.get(`${x}/fifo`)?.type).toBe('fifo');
      expect(tree.get(`${x}/char-null`)?.type).toBe('char');
      expect(tree.get(`${x}/block-loop`)?.type).toBe('block');
      expect(tree.get(`${x}/owned`)).toMatchObject({ uid: 1234, gid: 5678, mode: 0o640 });
      expect(tree.get('etc/machine-id')?.size).toBeGreaterThan(0);
      expect(tree.get('var/lib/dpkg/status')?.type).toBe('file');
      expect(tree.get('usr/bin/perl')?.links?.length).toBeGreaterThan(0);

      const out = tmpDir();
      await runOk('tar', [
        '-xpf',
        fx.rootfsTar,
        '--xattrs',
        '--xattrs-include=*',
        '--numeric-owner',
        '-C',
        out,
      ]);
      expect(diffTrees(tree, await snapshotTree(out))).toEqual([]);

      // Every default exclusion has something to act on in this fixture.
      const kept = applyExclusions(tree, DEFAULT_EXCLUSIONS);
      for (const ex of DEFAULT_EXCLUSIONS) {
        const re = globRegExp(ex.pattern);
        expect([ex.pattern, [...tree.keys()].some((p) => re.test(p))]).toEqual([ex.pattern, true]);
      }
      expect(kept.get('etc/machine-id')).toMatchObject({ type: 'file', size: 0, mode: 0o444 });
      expect(kept.has('var/log')).toBe(true);
      // Only folders stay under var/log (apt owns /var/log/apt).
      expect(
        [...kept.entries()].filter(([p, e]) => p.startsWith('var/log/') && e.type !== 'dir'),
      ).toEqual([]);
      expect(kept.get('var/log/apt')?.type).toBe('dir');
      expect(kept.has('etc/ssh/sshd_config')).toBe(true);
      expect(kept.has('etc/apt/apt.conf.d/70debconf')).toBe(true);
    },
    SLOW,
  );
});

describe('makeTar', () => {
  it('writes archives GNU tar reads', async () => {
    const d = tmpDir();
    fs.writeFileSync(
      path.join(d, 't.tar'),
      makeTar([
        { name: 'dir/', type: 'dir' },
        { name: 'dir/f', type: 'file', content: 'hello' },
        { name: 'dir/l', type: 'symlink', linkname: 'f' },
        { name: 'dir/h', type: 'hardlink', linkname: 'dir/f' },
      ]),
    );
    const r = await runOk('tar', ['-tvf', path.join(d, 't.tar')]);
    expect(r.stdout).toMatch(/dir\/l -> f/);
    expect(r.stdout).toMatch(/dir\/h link to dir\/f/);
  });
});
