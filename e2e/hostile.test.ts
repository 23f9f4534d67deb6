/**
 * Hostile rootfs tarballs given to `strata template create x.tar`: each must fail with a non-zero
 * exit and one line that names the offending entry, must write nothing outside, and must tag
 * nothing. Everything the CLI could touch (cwd, TMPDIR, store, the "outside" target) lives under
 * one private directory, which is listed after each run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  cleanupTmp,
  isOneLineError,
  listAll,
  makeTar,
  type TarEntrySpec,
  show,
  strata,
  tmpDir,
} from './helpers';

afterAll(cleanupTmp);

interface Case {
  title: string;
  /** Build the entries; `outside` is an absolute directory the archive must not reach. */
  entries: (outside: string) => TarEntrySpec[];
  /** The entry name the one-line error must contain. */
  names: (outside: string) => string;
}

const prologue: TarEntrySpec[] = [
  { name: 'etc/', type: 'dir' },
  { name: 'etc/os-release', type: 'file', content: 'ID=debian\nVERSION_ID="12"\n' },
];

// Relative climb from any extraction directory up to '/': deep enough for any temp path.
const UP = '../'.repeat(12);

const cases: Case[] = [
  {
    title: 'a ../ entry',
    entries: () => [...prologue, { name: '../evil', type: 'file', content: 'PWNED' }],
    names: () => '../evil',
  },
  {
    title: 'a ../ in the middle of a path',
    entries: () => [...prologue, { name: 'etc/../../evil-mid', type: 'file', content: 'PWNED' }],
    names: () => 'etc/../../evil-mid',
  },
  {
    title: 'an absolute path',
    entries: (outside) => [
      ...prologue,
      { name: `${outside}/abs-pwned`, type: 'file', content: 'PWNED' },
    ],
    names: (outside) => `${outside}/abs-pwned`,
  },
  {
    title: 'a write through an absolute symlink planted earlier',
    entries: (outside) => [
      ...prologue,
      { name: 'escape', type: 'symlink', linkname: outside },
      { name: 'escape/pwned', type: 'file', content: 'PWNED' },
    ],
    names: () => 'escape/pwned',
  },
  {
    title: 'a write through a relative symlink planted earlier',
    entries: (outside) => [
      ...prologue,
      { name: 'etc/up', type: 'symlink', linkname: `${UP}${outside.slice(1)}` },
      { name: 'etc/up/rel-pwned', type: 'file', content: 'PWNED' },
    ],
    names: () => 'etc/up/rel-pwned',
  },
  {
    title: 'a hardlink to /etc/passwd',
    entries: () => [...prologue, { name: 'etc/passwd', type: 'hardlink', linkname: '/etc/passwd' }],
    names: () => 'etc/passwd',
  },
  {
    title: 'a hardlink that climbs out, then a write to it',
    entries: (outside) => [
      ...prologue,
      { name: 'victim', type: 'hardlink', linkname: `${UP}${outside.slice(1)}/victim` },
      { name: 'victim', type: 'file', content: 'PWNED' },
    ],
    names: () => 'victim',
  },
];

describe.each(cases)('template create refuses $title', ({ entries, names }) => {
  it('with a non-zero exit and one line naming the entry, writing nothing outside', async () => {
    const base = tmpDir('strata-e2e-hostile-');
    const dirs = Object.fromEntries(
      ['work', 'tmp', 'store', 'outside'].map((d) => {
        const p = path.join(base, d);
        fs.mkdirSync(p);
        return [d, p];
      }),
    ) as Record<'work' | 'tmp' | 'store' | 'outside', string>;
    const victim = path.join(dirs.outside, 'victim');
    fs.writeFileSync(victim, 'original\n');
    const tarPath = path.join(dirs.work, 'hostile.tar');
    fs.writeFileSync(tarPath, makeTar(entries(dirs.outside)));
    const before = listAll(base);
    const passwd = fs.readFileSync('/etc/passwd');

    const r = await strata(['template', 'create', tarPath, '-t', 'evil', '--name', 'evil'], {
      store: dirs.store,
      cwd: dirs.work,
      env: { TMPDIR: dirs.tmp },
    });

    expect(r.code).not.toBe(0);
    expect([isOneLineError(r.stderr), r.stderr]).toEqual([true, r.stderr]);
    expect(r.stderr).toContain(names(dirs.outside));
    expect(fs.readFileSync(victim, 'utf8')).toBe('original\n');
    expect(fs.readFileSync('/etc/passwd')).toEqual(passwd);
    expect(fs.readdirSync(dirs.outside)).toEqual(['victim']);
    const after = listAll(base).filter((p) => !p.startsWith('store/') && !p.startsWith('tmp/'));
    expect(after).toEqual(before.filter((p) => !p.startsWith('store/') && !p.startsWith('tmp/')));
    // Nothing named like the payload anywhere (the temp area and store included).
    expect(listAll(base).filter((p) => /evil|pwned/.test(path.basename(p)))).toEqual([]);
    expect(fs.existsSync('/evil')).toBe(false);
    // Nothing was tagged.
    const idx = path.join(dirs.store, 'index.json');
    if (fs.existsSync(idx)) expect(fs.readFileSync(idx, 'utf8')).not.toContain('evil');
    expect(show(r)).not.toMatch(/\n\s+at /);
  });
});

it('the same harness accepts a benign tarball (so the refusals above are about the entries)', async () => {
  const base = tmpDir('strata-e2e-hostile-');
  const tarPath = path.join(base, 'ok.tar');
  fs.writeFileSync(
    tarPath,
    makeTar([
      ...prologue,
      { name: 'etc/link', type: 'symlink', linkname: '/etc/os-release' },
      { name: 'etc/hard', type: 'hardlink', linkname: 'etc/os-release' },
      { name: 'usr/', type: 'dir' },
      { name: 'usr/abs-link', type: 'symlink', linkname: '/nonexistent' },
    ]),
  );
  const store = path.join(base, 'store');
  // It has no dpkg to tell its platform: say it, or a warning would be the only stderr.
  const r = await strata(
    ['template', 'create', tarPath, '-t', 'fine', '--name', 'fine', '--platform', 'linux/amd64'],
    { store },
  );
  expect([r.code, r.stderr]).toEqual([0, '']);
});
