/**
 * DEBUILD with real dpkg-buildpackage, apt and qemu-user: the test sources in
 * e2e/fixtures/debuild (a C program at debhelper compat 13, and a package that depends on it)
 * built in a buildchroot stage, installed by name in later steps, cached per source, and
 * cross-built for arm64 from an amd64 buildchroot.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  REPO_ROOT,
  SLOW,
  cleanupTmp,
  foreignMinbaseTar,
  run,
  runOk,
  strata,
  strataLinesAreOneError,
  strataOk,
} from './helpers';
import { buildJson, mountsUnder, storeWithBase } from './fixtures/build/harness';
import { Registry, startRegistry } from './registry-fixtures';

jest.setTimeout(SLOW);

const SOURCES = path.join(REPO_ROOT, 'e2e', 'fixtures', 'debuild');

let work: string;
let store: string;
let sources: string;

beforeAll(async () => {
  ({ work, store, sources } = await storeWithBase());
}, SLOW);

afterAll(() => cleanupTmp());

/** A build context holding the test sources and `stratafile`. */
function context(name: string, stratafile: string): string {
  const dir = path.join(work, name);
  fs.cpSync(SOURCES, dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Stratafile'), stratafile);
  return dir;
}

const build = (args: string[]) => buildJson(['--apt-sources', sources, ...args], store);

/** `strata check` of `ref` against the Stratafile in `ctx`: exit code and output lines. */
async function check(ref: string, ctx: string): Promise<{ code: number; lines: string[] }> {
  const file = path.join(ctx, 'Stratafile');
  const r = await strata(['check', '-f', file, '--apt-sources', sources, '--no-packages', ref], {
    store,
  });
  return { code: r.code, lines: r.stdout.trim().split('\n') };
}

interface Bundle {
  debuilds: Array<{
    name: string;
    version: string;
    source?: string;
    packages: string[];
    files: Array<{ name: string; sha256: string; size: number }>;
  }>;
  missing: Array<{ name: string }>;
  attached?: string;
}

/**
 * `strata sources --json --allow-missing` of `ref` into a new folder, against an apt source
 * with an empty Sources index: the mirror's packages are all missing (downloading the sources
 * of minbase is e2e/sources.test.ts's work), the DEBUILD ones come from the template.
 */
async function bundle(
  ref: string,
  inStore = store,
  extra: string[] = [],
): Promise<{ out: string; index: Bundle }> {
  const repo = fs.mkdtempSync(path.join(work, 'no-sources-'));
  fs.writeFileSync(path.join(repo, 'Sources'), '');
  const empty = createHash('sha256').update('').digest('hex');
  fs.writeFileSync(path.join(repo, 'Release'), `SHA256:\n ${empty} 0 Sources\n`);
  const list = path.join(repo, 'sources.list');
  fs.writeFileSync(list, `deb file:${repo} ./\n`);
  const out = fs.mkdtempSync(path.join(work, 'bundle-'));
  const r = await strataOk(
    ['--json', 'sources', ref, '-o', out, '--apt-sources', list, '--allow-missing', ...extra],
    { store: inStore },
  );
  return { out, index: JSON.parse(r.stdout) as Bundle };
}

const sha256Of = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** A file of a built template, read from its flattened rootfs. */
async function fileOf(ref: string, file: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(work, 'flat-'));
  await strataOk(['flatten', ref, '--rootfs', path.join(dir, 'rootfs.tar')], { store });
  await runOk('tar', ['-xf', path.join(dir, 'rootfs.tar'), '-C', dir, file]);
  return path.join(dir, file);
}

const NATIVE = `FROM base:v1 AS buildchroot

FROM base:v1
BUILDCHROOT buildchroot
DEBUILD strata-hello strata-greeting
INSTALL strata-greeting
RUN strata-greet > /etc/greeted
`;

/**
 * A context whose strata-hello is a 3.0 (quilt) source at 1.0-1, its upstream tarball beside it
 * (made from the tree as it is, so any later change to it needs a patch).
 */
async function quiltContext(name: string): Promise<{ ctx: string; tree: string }> {
  const ctx = context(name, NATIVE.replace('strata-hello strata-greeting', 'strata-hello'));
  const tree = path.join(ctx, 'strata-hello');
  await runOk('tar', [
    '-czf',
    path.join(ctx, 'strata-hello_1.0.orig.tar.gz'),
    '--exclude=debian',
    '-C',
    ctx,
    'strata-hello',
  ]);
  fs.writeFileSync(path.join(tree, 'debian/source/format'), '3.0 (quilt)\n');
  const changelog = path.join(tree, 'debian/changelog');
  fs.writeFileSync(
    changelog,
    fs.readFileSync(changelog, 'utf8').replace('strata-hello (1.0)', 'strata-hello (1.0-1)'),
  );
  return { ctx, tree };
}

describe('a native DEBUILD', () => {
  let ctx: string;
  beforeAll(() => {
    ctx = context('native', NATIVE);
  });

  test('builds both packages; INSTALL takes them by name with their dependency; RUN runs the program', async () => {
    const r = await build(['-t', 'own:1', ctx]);
    expect(r.stepsRun).toBe(4); // two DEBUILD sources, INSTALL, RUN
    expect(fs.readFileSync(await fileOf('own:1', 'etc/greeted'), 'utf8')).toBe(
      'hello from strata-hello, greetings from a package that depends on another\n',
    );
    const inspect = JSON.parse((await strataOk(['inspect', '--json', 'own:1'], { store })).stdout);
    const names = inspect.packages.map((p: { name: string }) => p.name);
    expect(names).toEqual(expect.arrayContaining(['strata-hello', 'strata-greeting']));
    // The build's repository and its sources entry stay out of the layers.
    const flat = fs.mkdtempSync(path.join(work, 'flat-'));
    await strataOk(['flatten', 'own:1', '--rootfs', path.join(flat, 'rootfs.tar')], { store });
    const list = (await runOk('tar', ['-tf', path.join(flat, 'rootfs.tar')])).stdout;
    expect(list).not.toMatch(/strata-local|run\/strata/);
    expect(list).not.toMatch(/^build\//m);
  });

  test('strata sources bundles the source packages DEBUILD built from, as checked files that dpkg-source unpacks', async () => {
    const { out, index } = await bundle('own:1');
    expect(index.debuilds.map((d) => [d.name, d.version, d.source])).toEqual([
      ['strata-greeting', '1.0', './strata-greeting'],
      ['strata-hello', '1.0', './strata-hello'],
    ]);
    expect(index.debuilds[1]?.packages).toEqual(
      expect.arrayContaining(['strata-hello=1.0', 'strata-hello-dbgsym=1.0']),
    );
    expect(index.missing.map((m) => m.name)).not.toContain('strata-hello');
    for (const d of index.debuilds) {
      expect(d.files.map((f) => f.name)).toEqual([`${d.name}_1.0.dsc`, `${d.name}_1.0.tar.xz`]);
      for (const f of d.files) {
        expect(sha256Of(path.join(out, f.name))).toBe(f.sha256);
        expect(fs.statSync(path.join(out, f.name)).size).toBe(f.size);
      }
    }
    // dpkg-source, not Strata, checks the bundle: it unpacks to the tree that was built.
    const x = path.join(out, 'x');
    await runOk('dpkg-source', ['-x', path.join(out, 'strata-hello_1.0.dsc'), x]);
    expect(fs.readFileSync(path.join(x, 'hello.c'))).toEqual(
      fs.readFileSync(path.join(SOURCES, 'strata-hello', 'hello.c')),
    );
    // Dated by the changelog, not by the files of the checkout it was built from.
    const listing = (
      await runOk('tar', ['--utc', '-tvf', path.join(out, 'strata-hello_1.0.tar.xz')])
    ).stdout;
    const changelog = (
      await runOk('dpkg-parsechangelog', [
        '-l',
        path.join(SOURCES, 'strata-hello/debian/changelog'),
        '-SDate',
      ])
    ).stdout.trim();
    const day = new Date(changelog).toISOString().slice(0, 10);
    for (const line of listing.trim().split('\n'))
      expect(line).toMatch(/ 0\/0 .* strata-hello-1\.0\//);
    for (const line of listing.trim().split('\n')) expect(line).toContain(` ${day} `);
  });

  test('an unchanged rebuild is all cache hits', async () => {
    const r = await build(['-t', 'own:2', ctx]);
    expect(r.stepsRun).toBe(0);
  });

  test('strata check finds a template built with DEBUILD up to date', async () => {
    expect(await check('own:1', ctx)).toEqual({ code: 0, lines: ['own:1 is up to date'] });
  });

  test('changing one source file rebuilds that package only, and the steps that install it', async () => {
    const changed = context('native-changed', NATIVE);
    const c = path.join(changed, 'strata-hello', 'hello.c');
    // A comment leaves the binary, and so the .deb, byte for byte the same (the build is dated
    // by debian/changelog, not the clock): the steps that install it stay cache hits.
    fs.appendFileSync(c, '/* a comment */\n');
    const same = await build(['-t', 'own:3', changed]);
    expect(same.stepsRun).toBe(1);
    const before = (await build(['-t', 'own:2', ctx])).debs;
    expect(before?.map((d) => d.filename)).toEqual([
      'strata-hello-dbgsym_1.0_amd64.deb',
      'strata-hello_1.0_amd64.deb',
      'strata-greeting_1.0_all.deb',
    ]);
    expect(same.debs).toEqual(before);
    fs.writeFileSync(c, fs.readFileSync(c, 'utf8').replace('hello from', 'hi from'));
    // check names the DEBUILD line, and only it: the steps after it saw the packages it made.
    expect(await check('own:3', changed)).toEqual({
      code: 1,
      lines: [
        'own:3 is stale:',
        `${path.join(changed, 'Stratafile')}:5:1: DEBUILD ./strata-hello ./strata-greeting: ./strata-hello changed: its source, an ARG/ENV value, or the apt indices its Build-Depends resolve from changed since the build`,
      ],
    });
    // strata-hello's DEBUILD, then INSTALL and RUN (the repository changed); strata-greeting
    // does not build with strata-hello and is a cache hit.
    expect((await build(['-t', 'own:4', changed])).stepsRun).toBe(3);
    expect(fs.readFileSync(await fileOf('own:4', 'etc/greeted'), 'utf8')).toMatch(/^hi from/);
    expect((await check('own:4', changed)).code).toBe(0);
  });

  test('a .dsc builds as its tree does, byte for byte', async () => {
    const dsc = context('dsc', '');
    await runOk('dpkg-source', ['-b', 'strata-greeting'], { cwd: dsc });
    fs.rmSync(path.join(dsc, 'strata-greeting'), { recursive: true });
    fs.writeFileSync(
      path.join(dsc, 'Stratafile'),
      NATIVE.replace(
        'DEBUILD strata-hello strata-greeting',
        'DEBUILD strata-greeting_1.0.dsc',
      ).replace('INSTALL strata-greeting\nRUN strata-greet > /etc/greeted\n', 'RUN true\n'),
    );
    const r = await build(['-t', 'own-dsc:1', dsc]);
    const fromTree = (await build(['-t', 'own:2', ctx])).debs?.find(
      (d) => d.filename === 'strata-greeting_1.0_all.deb',
    );
    expect(r.debs).toEqual([fromTree]);
    // Its source package is the .dsc and tarball it was given, byte for byte.
    const { out, index } = await bundle('own-dsc:1');
    expect(index.debuilds.map((d) => [d.source, d.files.map((f) => f.name)])).toEqual([
      ['./strata-greeting_1.0.dsc', ['strata-greeting_1.0.dsc', 'strata-greeting_1.0.tar.xz']],
    ]);
    for (const f of ['strata-greeting_1.0.dsc', 'strata-greeting_1.0.tar.xz'])
      expect(fs.readFileSync(path.join(out, f))).toEqual(fs.readFileSync(path.join(dsc, f)));
  });

  test('--profiles reaches the build', async () => {
    const marked = context(
      'profiles',
      NATIVE.replace(
        'DEBUILD strata-hello strata-greeting',
        'DEBUILD --profiles=strata-mark strata-hello\nDEBUILD strata-greeting',
      ),
    );
    // Files dated long before the changelog, as an old checkout has them: the cache key does
    // not see dates, so neither may the source package.
    const old = new Date('2001-01-01T00:00:00Z');
    for (const f of ['hello.c', 'Makefile', 'debian/rules'])
      fs.utimesSync(path.join(marked, 'strata-hello', f), old, old);
    const r = await build(['-t', 'own-mark:1', marked]);
    // strata-hello with the profile, INSTALL and RUN; strata-greeting is the cached one.
    expect(r.stepsRun).toBe(3);
    expect(fs.readFileSync(await fileOf('own-mark:1', 'etc/greeted'), 'utf8')).toMatch(
      / \(strata-mark\)\n$/,
    );
    // Built again from another checkout of the same tree: the same source package.
    const hello = async (ref: string) =>
      (await bundle(ref)).index.debuilds.find((d) => d.name === 'strata-hello')?.files;
    const again = await hello('own-mark:1');
    expect(again).toHaveLength(2);
    expect(again).toEqual(await hello('own:1'));
  });

  test('a 3.0 (quilt) tree builds from the upstream tarball beside it, with its patches', async () => {
    const { ctx: q, tree } = await quiltContext('quilt');
    const orig = path.join(work, 'hello.c.orig');
    const patched = path.join(work, 'hello.c.patched');
    fs.copyFileSync(path.join(tree, 'hello.c'), orig);
    fs.writeFileSync(
      patched,
      fs.readFileSync(orig, 'utf8').replace('hello from', 'patched hello from'),
    );
    const diff = await run('diff', [
      '-u',
      '--label',
      'a/hello.c',
      '--label',
      'b/hello.c',
      orig,
      patched,
    ]);
    fs.mkdirSync(path.join(tree, 'debian/patches'));
    fs.writeFileSync(path.join(tree, 'debian/patches/greeting.patch'), diff.stdout);
    fs.writeFileSync(path.join(tree, 'debian/patches/series'), 'greeting.patch\n');
    fs.writeFileSync(
      path.join(q, 'Stratafile'),
      NATIVE.replace('strata-hello strata-greeting', 'strata-hello').replace(
        'INSTALL strata-greeting\nRUN strata-greet > /etc/greeted',
        'INSTALL strata-hello\nRUN strata-hello > /etc/greeted',
      ),
    );
    const r = await build(['-t', 'own-quilt:1', q]);
    expect(r.debs?.map((d) => d.filename)).toContain('strata-hello_1.0-1_amd64.deb');
    expect(fs.readFileSync(await fileOf('own-quilt:1', 'etc/greeted'), 'utf8')).toBe(
      'patched hello from strata-hello\n',
    );
    // Its source package is the upstream tarball and the debian/ with its patch.
    const { out, index } = await bundle('own-quilt:1');
    expect(index.debuilds.map((d) => d.files.map((f) => f.name))).toEqual([
      [
        'strata-hello_1.0-1.debian.tar.xz',
        'strata-hello_1.0-1.dsc',
        'strata-hello_1.0.orig.tar.gz',
      ],
    ]);
    expect(fs.readFileSync(path.join(out, 'strata-hello_1.0.orig.tar.gz'))).toEqual(
      fs.readFileSync(path.join(q, 'strata-hello_1.0.orig.tar.gz')),
    );
    const x = path.join(out, 'x');
    await runOk('dpkg-source', ['-x', path.join(out, 'strata-hello_1.0-1.dsc'), x]);
    expect(fs.readFileSync(path.join(x, 'hello.c'), 'utf8')).toContain('patched hello from');
  });

  test('a stage FROM a template with a buildchroot builds in that one', async () => {
    const inherit = context('inherit', 'FROM own:1\nDEBUILD strata-hello\nRUN true\n');
    const r = await build(['-t', 'own-inherit:1', inherit]);
    // The bundled buildchroot is the one own:1 built in: the same key, a cache hit.
    expect(r.stepsRun).toBe(1);
    expect(r.debs?.map((d) => d.filename)).toContain('strata-hello_1.0_amd64.deb');
  });

  test('no process and no mount is left behind', async () => {
    expect(await mountsUnder(store)).toEqual([]);
  });
});

describe('the packages travel with the template', () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(() => registry?.stop());

  test('--cache-to shares DEBUILD results: a fresh store building with --cache-from builds nothing', async () => {
    const shared = context('shared', NATIVE);
    const cache = `127.0.0.1:${registry.port}/teams/cache`;
    const first = await build(['--cache-to', cache, '-t', 'own:shared', shared]);
    const { store: other, sources: otherSources } = await storeWithBase();
    const r = await strata(
      ['build', '--apt-sources', otherSources, '--cache-from', cache, '-t', 'own:shared', shared],
      { store: other },
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`fetched from cache ${cache} ./strata-hello: strata-hello`);
    const again = await buildJson(
      ['--apt-sources', otherSources, '-t', 'own:shared', shared],
      other,
    );
    expect(again.stepsRun).toBe(0);
    expect(again.debs).toEqual(first.debs);
    expect(again.layers.map((l) => l.digest)).toEqual(first.layers.map((l) => l.digest));
    expect((await strataOk(['fsck'], { store: other })).stdout).toMatch(/^ok:/m);
  });

  test('through a registry to a fresh store, where a derived Stratafile installs them without building', async () => {
    // The middleware team builds its packages and publishes its template.
    const mw = context(
      'middleware',
      'FROM base:v1 AS buildchroot\n\nFROM base:v1\nBUILDCHROOT buildchroot\nDEBUILD strata-hello strata-greeting\nRUN true\n',
    );
    const built = await build(['-t', 'mw:1', mw]);
    const remote = `127.0.0.1:${registry.port}/teams/middleware:1`;
    await strataOk(['push', 'mw:1', remote], { store });

    // The application team, on another machine: a fresh store and no sources at all.
    const { work: appWork, store: appStore, sources: appSources } = await storeWithBase();
    const app = path.join(appWork, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(
      path.join(app, 'Stratafile'),
      `FROM ${remote}\nINSTALL strata-greeting\nRUN strata-greet > /etc/greeted\n`,
    );
    const r = await buildJson(['--apt-sources', appSources, '-t', 'app:1', app], appStore);
    expect(r.stepsRun).toBe(2);
    expect(r.debs?.map((d) => d.digest).sort()).toEqual(built.debs?.map((d) => d.digest).sort());
    const flat = fs.mkdtempSync(path.join(appWork, 'flat-'));
    await strataOk(['flatten', 'app:1', '--rootfs', path.join(flat, 'r.tar')], { store: appStore });
    await runOk('tar', ['-xf', path.join(flat, 'r.tar'), '-C', flat, 'etc/greeted']);
    expect(fs.readFileSync(path.join(flat, 'etc/greeted'), 'utf8')).toMatch(
      /^hello from strata-hello, greetings/,
    );
    // Their INSTALL step records them as the build's own packages, so the SBOM does not send
    // scanners to Debian's data for them.
    const meta = JSON.parse(
      (await strataOk(['inspect', '--json', 'app:1'], { store: appStore })).stdout,
    ) as { layers: Array<{ createdBy?: string; ownDebs?: string[] }> };
    expect(meta.layers.find((l) => l.createdBy === 'INSTALL strata-greeting')?.ownDebs).toEqual([
      'strata-greeting=1.0',
      'strata-hello=1.0',
    ]);
    const spdx = JSON.parse((await strataOk(['sbom', 'app:1'], { store: appStore })).stdout) as {
      packages: Array<{ name: string; externalRefs?: Array<{ referenceLocator: string }> }>;
    };
    for (const name of ['strata-greeting', 'strata-hello'])
      expect(
        spdx.packages.find((p) => p.name === name)?.externalRefs?.[0]?.referenceLocator,
      ).toMatch(new RegExp(`^pkg:deb/${name}@1\\.0\\?arch=`));
    // The source packages they were built from came along, and bundle with the derived
    // template that installs them.
    const { index } = await bundle('app:1', appStore);
    expect(index.debuilds.map((d) => [d.name, d.source, d.packages])).toEqual([
      ['strata-greeting', undefined, ['strata-greeting=1.0']],
      ['strata-hello', undefined, ['strata-hello=1.0']],
    ]);
    // And they export as a plain apt repository.
    const out = path.join(appWork, 'repo');
    await strataOk(['debs', 'app:1', '-o', out], { store: appStore });
    expect(fs.readdirSync(out).sort()).toEqual(
      expect.arrayContaining([
        'Packages',
        'Release',
        'strata-greeting_1.0_all.deb',
        'strata-hello_1.0_amd64.deb',
      ]),
    );
  });
});

describe('DEBUILD errors', () => {
  test('a stage without a buildchroot fails on the DEBUILD line', async () => {
    const ctx = context('no-bc', 'FROM base:v1\nDEBUILD strata-hello\n');
    const r = await strata(['build', '-q', '--apt-sources', sources, ctx], { store });
    expect(r.code).not.toBe(0);
    expect(strataLinesAreOneError(r.stderr)).toBe(true);
    expect(r.stderr).toContain(`${path.join(ctx, 'Stratafile')}:2:1: DEBUILD needs a buildchroot`);
  });

  test('a missing Build-Depends names the package and keeps the whole log', async () => {
    const ctx = context('bad-deps', NATIVE.replace('strata-hello strata-greeting', 'strata-hello'));
    const control = path.join(ctx, 'strata-hello', 'debian', 'control');
    fs.writeFileSync(
      control,
      fs
        .readFileSync(control, 'utf8')
        .replace('debhelper-compat (= 13)', 'debhelper-compat (= 13), strata-no-such-package'),
    );
    const r = await strata(['build', '-q', '--apt-sources', sources, ctx], { store });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /Stratafile:5:1: DEBUILD \.\/strata-hello \(source package strata-hello\): its Build-Depends cannot be installed/,
    );
    expect(r.stderr).toContain('strata-no-such-package');
    const log = /the whole build log: (\S+\.log)/.exec(r.stderr)?.[1];
    expect(log && fs.readFileSync(log, 'utf8')).toContain('strata-no-such-package');
    expect(await mountsUnder(store)).toEqual([]);
  });

  test('a tree that dpkg-source -b refuses fails its DEBUILD line with dpkg-source’s reason', async () => {
    const { ctx: ctx, tree } = await quiltContext('bad-quilt');
    // A change to the upstream source that no patch in debian/patches holds.
    fs.appendFileSync(path.join(tree, 'hello.c'), '/* not in a patch */\n');
    const r = await strata(['build', '-q', '--apt-sources', sources, ctx], { store });
    expect(r.code).not.toBe(0);
    expect(strataLinesAreOneError(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(
      /Stratafile:5:1: DEBUILD \.\/strata-hello \(source package strata-hello\): dpkg-source -b refused to make its source package/,
    );
    expect(r.stderr).toMatch(/unexpected upstream changes/);
    expect(await mountsUnder(store)).toEqual([]);
  });

  test('a compile error shows the compiler’s last lines and keeps the whole log', async () => {
    const ctx = context('bad-code', NATIVE.replace('strata-hello strata-greeting', 'strata-hello'));
    fs.appendFileSync(path.join(ctx, 'strata-hello', 'hello.c'), 'this is not C;\n');
    const r = await strata(['build', '-q', '--apt-sources', sources, ctx], { store });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /DEBUILD \.\/strata-hello \(source package strata-hello\): dpkg-buildpackage failed/,
    );
    expect(r.stderr).toMatch(/hello\.c:\d+:\d+: error/);
    const log = /the whole build log: (\S+\.log)/.exec(r.stderr)?.[1];
    expect(log && fs.readFileSync(log, 'utf8')).toMatch(/hello\.c:\d+:\d+: error/);
    expect(await mountsUnder(store)).toEqual([]);
  });
});

describe('a cross DEBUILD', () => {
  test('an amd64 buildchroot cross-builds for an arm64 template: file says aarch64', async () => {
    const tar = await foreignMinbaseTar('arm64');
    await strataOk(['template', 'create', tar, '-t', 'base-arm64:1', '--name', 'base'], { store });
    const ctx = context(
      'cross',
      'FROM base:v1 AS buildchroot\n\nFROM base-arm64:1\nBUILDCHROOT buildchroot\nDEBUILD strata-hello\nINSTALL strata-hello\n',
    );
    await build(['-t', 'own-arm64:1', ctx]);
    const bin = await fileOf('own-arm64:1', 'usr/bin/strata-hello');
    expect((await runOk('file', ['-b', bin])).stdout).toMatch(/ARM aarch64/);
    expect(await mountsUnder(store)).toEqual([]);
  });
});
