import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ParseError } from '@strata/oci';
import { spawnSync } from 'node:child_process';
import {
  ContextIgnore,
  STRATA_TAR,
  keptUnder,
  leavesOutUnder,
  loadContextIgnore,
  writeKeptList,
} from './ignore';

// Passed through, to count the directories that leavesOutUnder reads.
jest.mock('node:fs', () => {
  const actual = jest.requireActual<typeof fs>('node:fs');
  return { ...actual, readdirSync: jest.fn(actual.readdirSync) };
});

const ignores = (lines: string[], rel: string) =>
  ContextIgnore.parse(lines.join('\n'), '.strataignore').ignores(rel);

// Cases from moby/patternmatcher's tests and the .dockerignore reference.
test.each<[string[], string, boolean]>([
  // A pattern is anchored at the context's root: *.md is not **/*.md.
  [['*.md'], 'README.md', true],
  [['*.md'], 'docs/x.md', false],
  [['**/*.md'], 'docs/x.md', true],
  [['**/*.md'], 'x.md', true],
  [['**/*.go'], 'dir/dir2/file.go', true],
  [['**'], 'any/thing', true],
  [['**/'], 'file', true],
  [['dir/**'], 'dir/a/b', true],
  [['dir/**'], 'dir', false],
  [['**/file'], 'file', true],
  [['**/file'], 'a/b/file', true],
  [['abc/**/def'], 'abc/def', true],
  [['abc/**/def'], 'abc/x/y/def', true],
  [['abc/**/def'], 'abc/x/y/def/inner', true],
  [['abc/**/def'], 'abc/x/y/deff', false],
  // The .dockerignore reference's example.
  [['*/temp*'], 'somedir/temporary.txt', true],
  [['*/temp*'], 'somedir/temp', true],
  [['*/temp*'], 'temp', false],
  [['*/*/temp*'], 'somedir/subdir/temporary.txt', true],
  [['temp?'], 'tempa', true],
  [['temp?'], 'temp', false],
  [['temp?'], 'tempab', false],
  // `*` and `?` never cross a "/"; a directory's pattern leaves out what is under it.
  [['a?c'], 'a/c', false],
  [['*'], 'dir/file', true],
  [['.git'], '.git/objects/ab/cdef', true],
  [['[a-c]x'], 'bx', true],
  [['[a-c]x'], 'dx', false],
  [['[^a]x'], 'ax', false],
  [['a\\*b'], 'a*b', true],
  [['a\\*b'], 'axb', false],
  // Patterns are cleaned and relative to the root: a leading "/" and "./" go.
  [['/abs'], 'abs', true],
  [['./foo/../bar/'], 'bar/x', true],
  [['  spaced  '], 'spaced', true],
  // Comments only at the start of a line; blank lines skipped.
  [['# comment', '', 'x'], '# comment', false],
  [['  #x'], '#x', true],
  // The last pattern that matches wins; "!" keeps.
  [['*.md', '!README*.md', 'README-secret.md'], 'README.md', false],
  [['*.md', '!README*.md', 'README-secret.md'], 'README-secret.md', true],
  [['*.md', '!README*.md', 'README-secret.md'], 'CHANGES.md', true],
  [['docs', '!docs/README.md'], 'docs/README.md', false],
  [['docs', '!docs/README.md'], 'docs/other.md', true],
  [['!docs/README.md', 'docs'], 'docs/README.md', true],
  [['*.log', '! keep.log'], 'keep.log', false],
  [['!x'], 'x', false],
  [['x'], '.', false],
  [['x'], './x', true],
])('%j leaves out %s: %s', (lines, rel, want) => {
  expect(ignores(lines, rel)).toBe(want);
});

test('a malformed pattern is an error at its line', () => {
  expect(() => ContextIgnore.parse('ok\n# c\n  [abc\n', 'ctx/.strataignore')).toThrow(
    'ctx/.strataignore:3:3: bad pattern "[abc"',
  );
  expect(() => ContextIgnore.parse('ok\n# c\n  [abc\n', 'ctx/.strataignore')).toThrow(ParseError);
  expect(() => ContextIgnore.parse('a\\', '.strataignore')).toThrow('.strataignore:1:1:');
  expect(() => ContextIgnore.parse('x\n!\n', '.strataignore')).toThrow(
    '.strataignore:2:1: a "!" needs a pattern after it',
  );
});

describe('in a context', () => {
  let ctx: string;
  const put = (rel: string) => {
    fs.mkdirSync(path.dirname(path.join(ctx, rel)), { recursive: true });
    fs.writeFileSync(path.join(ctx, rel), rel);
  };
  beforeEach(() => {
    ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ignore-'));
    for (const f of ['a.txt', 'x.log', 'keep.log', '.git/HEAD', '.git/refs/main', 'sub/b.log'])
      put(f);
    put('build/out/bin');
    put('build/out/keep/me');
  });
  afterEach(() => fs.rmSync(ctx, { recursive: true, force: true }));

  test('keptUnder walks what is kept, a left-out directory only for an exception in it', () => {
    const ignore = ContextIgnore.parse('.git\n*.log\n!keep.log\nbuild\n!build/out/keep\n', 'i');
    expect([...keptUnder(ctx, '', ignore)]).toEqual([
      'a.txt',
      'build',
      'build/out',
      'build/out/keep',
      'build/out/keep/me',
      'keep.log',
      'sub',
      'sub/b.log',
    ]);
    expect([...keptUnder(ctx, './build/', ignore)]).toEqual(['out', 'out/keep', 'out/keep/me']);
    expect(leavesOutUnder(ctx, '.', ignore)).toBe(true);
    expect(leavesOutUnder(ctx, 'sub', ignore)).toBe(false);
  });

  test('strata_tar copies what the list names, and fails when a file on it cannot be read', async () => {
    const ignore = ContextIgnore.parse('.git\n*.log\n!keep.log\n', 'i');
    const list = path.join(ctx, '..', `${path.basename(ctx)}.list`);
    const dest = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ignore-dest-'));
    try {
      fs.chmodSync(path.join(ctx, 'sub'), 0o750);
      await writeKeptList(list, ctx, '', ignore);
      const run = () =>
        spawnSync(
          '/bin/sh',
          ['-c', `set -e\n${STRATA_TAR}\nstrata_tar "$1" "$2" "$3"`, 'sh', ctx, list, dest],
          {
            encoding: 'utf8',
          },
        );
      expect(run().status).toBe(0);
      const found: string[] = [];
      const walk = (rel: string) => {
        for (const n of fs.readdirSync(path.join(dest, rel)).sort()) {
          found.push(path.posix.join(rel, n));
          if (fs.statSync(path.join(dest, rel, n)).isDirectory()) walk(path.posix.join(rel, n));
        }
      };
      walk('');
      expect(found).toEqual([
        'a.txt',
        'build',
        'build/out',
        'build/out/bin',
        'build/out/keep',
        'build/out/keep/me',
        'keep.log',
        'sub',
        'sub/b.log',
      ]);
      expect(fs.statSync(path.join(dest, 'sub')).mode & 0o777).toBe(0o750);
      // A file gone since the list was made: the copy fails, though tar -x saw a whole archive.
      fs.rmSync(path.join(ctx, 'keep.log'));
      const gone = run();
      expect(gone.status).not.toBe(0);
      expect(gone.stderr).toContain('keep.log');
    } finally {
      fs.rmSync(dest, { recursive: true, force: true });
      fs.rmSync(list, { force: true });
    }
  });

  test('the Stratafile’s own ignore file goes before the context’s', () => {
    // A Stratafile outside the context writes no lock file into it.
    expect(loadContextIgnore(ctx, path.join(path.dirname(ctx), 'Stratafile'))).toBeUndefined();
    fs.writeFileSync(path.join(ctx, '.strataignore'), '# only a comment\n');
    expect(loadContextIgnore(ctx, undefined)).toBeUndefined();
    fs.writeFileSync(path.join(ctx, '.strataignore'), '*.log\n');
    expect(loadContextIgnore(ctx, path.join(ctx, 'Stratafile'))?.ignores('x.log')).toBe(true);
    fs.writeFileSync(path.join(ctx, 'Stratafile.strataignore'), 'a.txt\n');
    const own = loadContextIgnore(ctx, path.join(ctx, 'Stratafile'));
    expect(own?.ignores('x.log')).toBe(false);
    expect(own?.ignores('a.txt')).toBe(true);
  });

  test('the lock files the build writes are never in the context, whatever the patterns say', () => {
    fs.rmSync(path.join(ctx, '.strataignore'), { force: true });
    fs.rmSync(path.join(ctx, 'Stratafile.strataignore'), { force: true });
    const top = loadContextIgnore(ctx, path.join(ctx, 'Stratafile'));
    expect(top?.ignores('Stratafile.lock')).toBe(true);
    expect(top?.ignores('Stratafile.arm64.lock')).toBe(true);
    expect(top?.ignores('./Stratafile.lock')).toBe(true);
    expect(top?.ignores('other.lock')).toBe(false);
    expect(top?.ignores('sub/Stratafile.lock')).toBe(false);
    expect(top?.ignores('Stratafile')).toBe(false);
    const sub = loadContextIgnore(ctx, path.join(ctx, 'build', 'app.strata'));
    expect(sub?.ignores('build/app.strata.lock')).toBe(true);
    expect(sub?.ignores('app.strata.lock')).toBe(false);
    fs.writeFileSync(path.join(ctx, '.strataignore'), '*.log\n!Stratafile.lock\n');
    expect(loadContextIgnore(ctx, path.join(ctx, 'Stratafile'))?.ignores('Stratafile.lock')).toBe(
      true,
    );
    fs.rmSync(path.join(ctx, '.strataignore'));
  });

  test('without patterns, only the lock files’ own directory is read to find what is left out', () => {
    const readdir = fs.readdirSync as unknown as jest.Mock;
    const read = (dir: string, ignore: ContextIgnore) => {
      readdir.mockClear();
      const out = leavesOutUnder(ctx, dir, ignore);
      const dirs = readdir.mock.calls.map((c) => path.relative(ctx, String(c[0])));
      return { out, dirs };
    };
    put('Stratafile.lock');
    put('build/app.strata.amd64.lock');
    put('deep/a/b/c/d');
    fs.symlinkSync('build', path.join(ctx, 'link'));
    const top = loadContextIgnore(ctx, path.join(ctx, 'Stratafile')) as ContextIgnore;
    const sub = loadContextIgnore(ctx, path.join(ctx, 'build', 'app.strata')) as ContextIgnore;
    // Through a symlink: the walk does not follow it, but reads the directory it is asked for.
    const linked = loadContextIgnore(ctx, path.join(ctx, 'link', 'app.strata')) as ContextIgnore;
    const cases: Array<[ContextIgnore, string, boolean, string[]]> = [
      [top, '.', true, ['']],
      [top, 'deep', false, []],
      [top, 'build', false, []],
      [sub, '', true, ['build']],
      [sub, './build/', true, ['build']],
      [sub, 'build/out', false, []],
      [sub, 'deep', false, []],
      [linked, '.', false, []],
      [linked, 'link', true, ['link']],
    ];
    // The same question with a pattern that leaves nothing out is answered by the walk.
    fs.writeFileSync(path.join(ctx, '.strataignore'), 'no-such-file\n');
    const walked = (s: string) => loadContextIgnore(ctx, path.join(ctx, s)) as ContextIgnore;
    const withPattern = new Map<ContextIgnore, ContextIgnore>([
      [top, walked('Stratafile')],
      [sub, walked('build/app.strata')],
      [linked, walked('link/app.strata')],
    ]);
    for (const [ignore, dir, out, dirs] of cases) {
      expect([dir, read(dir, ignore)]).toEqual([dir, { out, dirs }]);
      expect([dir, leavesOutUnder(ctx, dir, withPattern.get(ignore) as ContextIgnore)]).toEqual([
        dir,
        out,
      ]);
    }
    expect(read('.', withPattern.get(top) as ContextIgnore).dirs.length).toBeGreaterThan(1);
    fs.rmSync(path.join(ctx, 'Stratafile.lock'));
    expect(read('.', top)).toEqual({ out: false, dirs: [''] });
  });
});
