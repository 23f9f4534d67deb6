import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cacheKey, hashContextPaths } from './cache';
import { ContextIgnore } from './ignore';
import { CopySourceError, copySources, matchComponent } from './copy-sources';
import { StageKeys } from './stage-keys';
import { CopyInstruction, parseStratafile } from './stratafile';
import { stepCommand } from './step-command';

let ctx: string;

function put(rel: string, text = `${rel}\n`): void {
  fs.mkdirSync(path.dirname(path.join(ctx, rel)), { recursive: true });
  fs.writeFileSync(path.join(ctx, rel), text);
}

function link(rel: string, target: string): void {
  fs.mkdirSync(path.dirname(path.join(ctx, rel)), { recursive: true });
  fs.symlinkSync(target, path.join(ctx, rel));
}

beforeEach(() => {
  ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-copy-sources-'));
  put('a.txt');
  put('b.txt');
  put('c.md');
  put('g/one.conf');
  put('g/two.conf');
  put('g/three.conf');
  put('g/one.cob');
  put('g/sub/deep.conf');
});

afterEach(() => fs.rmSync(ctx, { recursive: true, force: true }));

const written = (sources: string[]) => copySources(ctx, sources).map((s) => s.written);

function copyError(sources: string[]): CopySourceError {
  try {
    copySources(ctx, sources);
  } catch (e) {
    if (e instanceof CopySourceError) return e;
    throw e;
  }
  throw new Error('expected a CopySourceError');
}

test("globs match as Go's filepath.Match, one component at a time, sorted", () => {
  expect(written(['*.txt'])).toEqual(['a.txt', 'b.txt']);
  expect(written(['g/*.conf'])).toEqual(['g/one.conf', 'g/three.conf', 'g/two.conf']);
  expect(written(['g/one.co?'])).toEqual(['g/one.cob']);
  expect(written(['g/[ot]*.conf'])).toEqual(['g/one.conf', 'g/three.conf', 'g/two.conf']);
  expect(written(['g/[^o]*.conf'])).toEqual(['g/three.conf', 'g/two.conf']);
  expect(written(['*/*.conf'])).toEqual(['g/one.conf', 'g/three.conf', 'g/two.conf']);
  // `*` never crosses a `/`, and `**` is no more than `*` (the docs promise no `**` for COPY).
  expect(written(['g/**.conf'])).toEqual(['g/one.conf', 'g/three.conf', 'g/two.conf']);
  expect(written(['./c.md', 'g/one.c?b'])).toEqual(['./c.md', 'g/one.cob']);
  expect(matchComponent('a\\*', 'a*')).toBe(true);
  expect(matchComponent('a\\*', 'ab')).toBe(false);
  expect(matchComponent('x-[a-c]', 'x-b')).toBe(true);
});

test('a source that is missing, or a glob that matches nothing, is an error naming it', () => {
  expect(copyError(['a.txt', 'g/*.nope'])).toMatchObject({
    index: 1,
    message: 'g/*.nope matches nothing in the build context',
  });
  expect(copyError(['nope.txt'])).toMatchObject({
    index: 0,
    message: 'nope.txt is not in the build context',
  });
  expect(copyError(['g/[ab'])).toMatchObject({ message: 'g/[ab: bad glob pattern' });
});

test('symlinks are followed inside the context; one that leads out of it is refused', () => {
  link('d/etclink', '/etc');
  link('d/up', '../../');
  link('d/conf', '../g');
  link('top.conf', 'g/one.conf');
  link('abs.conf', path.join(ctx, 'g/two.conf'));
  expect(copyError(['d/etclink/shadow'])).toMatchObject({
    message: 'd/etclink/shadow escapes the build context: d/etclink is a symlink to /etc',
  });
  expect(copyError(['d/etclink'])).toMatchObject({
    message: 'd/etclink escapes the build context: d/etclink is a symlink to /etc',
  });
  expect(copyError(['d/up/x'])).toMatchObject({
    message: 'd/up/x escapes the build context: d/up is a symlink to ../../',
  });
  expect(copyError(['d/e*/passwd'])).toMatchObject({ message: /escapes the build context/ });
  // A top-level source that is a link is read where it points, and named as written.
  expect(copySources(ctx, ['top.conf', 'abs.conf', 'd/conf/two.conf'])).toEqual([
    { written: 'top.conf', path: 'g/one.conf' },
    { written: 'abs.conf', path: 'g/two.conf' },
    { written: 'd/conf/two.conf', path: 'g/two.conf' },
  ]);
});

test("a glob's match is a source, followed as one; a directory's symlinks are left as they are", () => {
  // Docker's rule. `COPY *` refused a link out of the context while `COPY .` copied it: both
  // hold, and the refusal says why the two differ.
  link('rel-out', '../outside.txt');
  link('shadow-link', '/etc/shadow');
  const e = copyError(['*']);
  expect(e).toMatchObject({
    index: 0,
    message:
      'rel-out (matched by *) escapes the build context: rel-out is a symlink to ../outside.txt',
  });
  expect(e.hint).toMatch(/only a symlink inside a copied directory \(COPY \. or COPY dir\/\)/);
  expect(copyError(['shadow-*']).message).toBe(
    'shadow-link (matched by shadow-*) escapes the build context: shadow-link is a symlink to /etc/shadow',
  );
  // The directory itself is the source: its links are copied as links, never followed.
  expect(copySources(ctx, ['.'])).toEqual([{ written: '.', path: '.' }]);
});

test('the key reads what the copy reads, and keeps its old value where no link or glob is', () => {
  link('top.conf', 'g/one.conf');
  expect(hashContextPaths(ctx, copySources(ctx, ['./g/one.conf', 'g']))).toBe(
    hashContextPaths(ctx, ['./g/one.conf', 'g']),
  );
  // The link's target's content, not the link.
  const viaLink = hashContextPaths(ctx, copySources(ctx, ['top.conf']));
  expect(viaLink).not.toBe(hashContextPaths(ctx, ['top.conf']));
  fs.writeFileSync(path.join(ctx, 'g/one.conf'), 'changed\n');
  expect(hashContextPaths(ctx, copySources(ctx, ['top.conf']))).not.toBe(viaLink);
});

function copyIns(line: string): CopyInstruction {
  const ins = parseStratafile(`FROM base:1\n${line}\n`, 'Stratafile').stages[0]?.steps[0];
  return ins as CopyInstruction;
}

test('COPY keys and copies the expanded sources; errors point at the source', async () => {
  const keys = new StageKeys({ context: ctx });
  const scope = { env: new Map(), args: new Map(), excludes: [] };
  const ins = copyIns('COPY ["g/t*.conf", "a.txt", "/etc/x/"]');
  const keyed = await keys.keyFor(scope, ins, undefined);
  expect(keyed.copy?.map((c) => c.written)).toEqual(['g/three.conf', 'g/two.conf', 'a.txt']);
  const script = stepCommand(ins, keyed.copy)[2] as string;
  expect(script).toContain(
    "t=$(strata_dir '/etc/x')/'three.conf'; cp -a '/run/strata/context/g/three.conf' \"$t\"",
  );
  expect(script).toContain(
    "t=$(strata_dir '/etc/x')/'a.txt'; cp -a '/run/strata/context/a.txt' \"$t\"",
  );

  link('top.conf', 'g/one.conf');
  const top = copyIns('COPY top.conf /etc/x/');
  expect(stepCommand(top, (await keys.keyFor(scope, top, undefined)).copy)[2]).toContain(
    "t=$(strata_dir '/etc/x')/'top.conf'; cp -a '/run/strata/context/g/one.conf' \"$t\"",
  );

  await expect(keys.keyFor(scope, copyIns('COPY a.txt  g/*.nope /x/'), undefined)).rejects.toThrow(
    'Stratafile:2:13: g/*.nope matches nothing in the build context',
  );
  await expect(keys.keyFor(scope, copyIns('COPY g/t*.conf /etc/x'), undefined)).rejects.toThrow(
    'Stratafile:2:6: COPY g/t*.conf matches 2 paths (g/three.conf, g/two.conf): with several sources, the destination must be a directory ending in "/"',
  );
  link('d/etclink', '/etc');
  await expect(
    keys.keyFor(scope, copyIns('COPY d/etclink/shadow /opt/s'), undefined),
  ).rejects.toThrow(
    'Stratafile:2:6: d/etclink/shadow escapes the build context: d/etclink is a symlink to /etc',
  );
});

describe("COPY --from: sources in a stage's tree", () => {
  test('are absolute in the tree; links resolve as in a chroot of it, never on the host', () => {
    put('opt/out/hello');
    link('src/abs', '/opt/out/hello');
    link('src/up', '../../../../opt');
    link('bin', 'usr/bin');
    put('usr/bin/tool');
    const got = copySources(ctx, ['/src/abs', '/src/up/out/', '/bin/tool', '/g/*.conf'], {
      tree: 'stage b',
    });
    expect(got).toEqual([
      { written: '/src/abs', path: 'opt/out/hello' },
      { written: '/src/up/out/', path: 'opt/out' },
      { written: '/bin/tool', path: 'usr/bin/tool' },
      { written: '/g/one.conf', path: 'g/one.conf' },
      { written: '/g/three.conf', path: 'g/three.conf' },
      { written: '/g/two.conf', path: 'g/two.conf' },
    ]);
    // The same link in a build context leaves it.
    expect(() => copySources(ctx, ['src/abs'])).toThrow(/escapes the build context/);
  });

  test('a missing source or an empty glob names the stage', () => {
    expect(() => copySources(ctx, ['/src/nope'], { tree: 'stage builder' })).toThrow(
      '/src/nope: no such file in stage builder',
    );
    expect(() => copySources(ctx, ['/g/*.none'], { tree: 'stage builder' })).toThrow(
      '/g/*.none matches nothing in stage builder',
    );
  });
});

describe('with a .strataignore', () => {
  const ignoreOf = (text: string) => ContextIgnore.parse(text, '.strataignore');

  test('what it leaves out is not in the context: globs skip it, naming it is an error', () => {
    put('x.log');
    put('keep.log');
    const ignore = ignoreOf('*.log\n!keep.log\ng/one.*\n');
    expect(copySources(ctx, ['*.log'], { ignore }).map((s) => s.written)).toEqual(['keep.log']);
    expect(copySources(ctx, ['g/*.conf'], { ignore }).map((s) => s.written)).toEqual([
      'g/three.conf',
      'g/two.conf',
    ]);
    let err: unknown;
    try {
      copySources(ctx, ['a.txt', './x.log'], { ignore });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CopySourceError);
    expect((err as CopySourceError).index).toBe(1);
    expect((err as CopySourceError).message).toBe(
      './x.log is not in the build context: .strataignore excludes it',
    );
    expect(() => copySources(ctx, ['g/one.*'], { ignore })).toThrow(
      'g/one.* matches nothing in the build context (.strataignore excludes what it matches)',
    );
    // A symlink to a left-out file does not bring it back.
    link('alias', 'x.log');
    expect(() => copySources(ctx, ['alias'], { ignore })).toThrow('.strataignore excludes it');
  });

  test('a directory it leaves something out of is marked; one an exception keeps part of is kept', () => {
    const ignore = ignoreOf('g/sub\ng\n!g/two.conf\n');
    expect(copySources(ctx, ['.', 'a.txt'], { ignore })).toEqual([
      { written: '.', path: '.', filtered: true },
      { written: 'a.txt', path: 'a.txt' },
    ]);
    expect(copySources(ctx, ['g'], { ignore })).toEqual([
      { written: 'g', path: 'g', filtered: true },
    ]);
    expect(() => copySources(ctx, ['g/sub'], { ignore })).toThrow('excludes it');
    expect(copySources(ctx, ['g'], { ignore: ignoreOf('*.md') })).toEqual([
      { written: 'g', path: 'g' },
    ]);
  });

  test('COPY . keys only what is kept, and copies it from the list', async () => {
    put('.git/HEAD', 'ref: main\n');
    put('debug.log');
    put('keep.log');
    put('.strataignore', '.git\n*.log\n!keep.log\n');
    const scope = { env: new Map(), args: new Map(), excludes: [] };
    const ins = copyIns('COPY . /opt/app/');
    const keyOf = async () =>
      (await new StageKeys({ context: ctx }).keyFor(scope, ins, undefined)).key;
    const before = await keyOf();
    put('.git/HEAD', 'ref: other\n');
    put('debug.log', 'more\n');
    put('.git/objects/ab/cd');
    expect(await keyOf()).toBe(before);
    put('keep.log', 'changed\n');
    const changed = await keyOf();
    expect(changed).not.toBe(before);
    put('a.txt', 'changed\n');
    expect(await keyOf()).not.toBe(changed);

    const keyed = await new StageKeys({ context: ctx }).keyFor(scope, ins, undefined);
    expect(keyed.copy).toEqual([{ written: '.', path: '.', filtered: true }]);
    expect(stepCommand(ins, keyed.copy)[2]).toContain(
      'strata_tar \'/run/strata/context/.\' /run/strata/copy-lists/0 "$t"',
    );
    // Without an ignore file, the key is what it always was and the copy is cp's.
    fs.rmSync(path.join(ctx, '.strataignore'));
    const plain = await new StageKeys({ context: ctx }).keyFor(scope, ins, undefined);
    expect(plain.key).toBe(cacheKeyOfPlainCopy(ins));
    expect(stepCommand(ins, plain.copy)[2]).toContain('cp -a \'/run/strata/context/.\'/. "$t"/');
  });

  test('the Stratafile’s <name>.strataignore goes before the context’s, and is read though excluded', async () => {
    put('.strataignore', 'a.txt\n');
    put('build.strata.strataignore', 'b.txt\nbuild.strata.strataignore\n');
    const scope = { env: new Map(), args: new Map(), excludes: [] };
    const keys = new StageKeys({ context: ctx, stratafile: path.join(ctx, 'build.strata') });
    await expect(keys.keyFor(scope, copyIns('COPY b.txt /x'), undefined)).rejects.toThrow(
      /^Stratafile:2:6: b.txt is not in the build context: \S*build.strata.strataignore excludes it$/,
    );
    await expect(keys.keyFor(scope, copyIns('COPY a.txt /x'), undefined)).resolves.toBeDefined();
    await expect(
      keys.keyFor(scope, copyIns('COPY build.strata.strataignore /x'), undefined),
    ).rejects.toThrow('excludes it');
  });
});

/** The key a COPY of the whole context had before .strataignore existed. */
function cacheKeyOfPlainCopy(ins: CopyInstruction): string {
  return cacheKey({
    parent: null,
    instruction: ins.text,
    env: [],
    inputs: [hashContextPaths(ctx, [{ written: '.', path: '.' }])],
  });
}
