/**
 * What a Stratafile's instructions see, in real builds: the FROM template's ENV in substitution,
 * COPY globs and symlinks in the build context, INSTALL's local .debs (which are read the same
 * way), and a --build-arg that nothing uses.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  buildDeb,
  cleanupTmp,
  minbaseRootfs,
  runOk,
  show,
  strata,
  strataOk,
  tmpDir,
  buildContext,
} from './helpers';
import { readImage, sourcesFile } from './fixtures/build/harness';

jest.setTimeout(SLOW);

let work: string;
let store: string;
let sources: string;
// No mirror is asked for the image's date.
const env = { SOURCE_DATE_EPOCH: '1700000000' };

beforeAll(async () => {
  work = tmpDir('strata-stratafile-context-');
  store = path.join(work, 'store');
  sources = sourcesFile(work);
  const { minbaseTar } = await minbaseRootfs();
  await strataOk(['template', 'create', minbaseTar, '-t', 'base:v1', '--name', 'base'], { store });
});

afterAll(() => cleanupTmp());

const context = (stratafile: string[], files: Record<string, string> = {}) =>
  buildContext(work, `${stratafile.join('\n')}\n`, files);

function build(ctx: string, extra: string[] = []) {
  return strata(['build', '--apt-sources', sources, ...extra, ctx], { store, env });
}

const PATH0 = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

test("ENV PATH=/opt/bin:$PATH extends the template's PATH, and later RUNs still find ls", async () => {
  const r = await build(
    context([
      'FROM base:v1',
      'ENV PATH=/opt/bin:$PATH',
      'RUN ls / >/dev/null && mkdir -p /opt/bin',
    ]),
    ['-t', 'path:1'],
  );
  expect(r.code).toBe(0);
  const { config } = readImage(store, 'path:1');
  expect(config.config.Env).toContain(`PATH=/opt/bin:${PATH0}`);

  // A template's own ENV reaches a LABEL of the Stratafile built FROM it.
  await strataOk(
    [
      'build',
      '--apt-sources',
      sources,
      '-t',
      'product:1',
      context(['FROM path:1', 'ENV PRODUCT="Acme Gateway"', 'RUN true']),
    ],
    { store, env },
  );
  const child = await build(
    context([
      'FROM product:1',
      'LABEL x=${PRODUCT:-unset}',
      'RUN test "$PRODUCT" = "Acme Gateway"',
    ]),
    ['-t', 'child:1'],
  );
  expect(child.code).toBe(0);
  expect(readImage(store, 'child:1').config.strata.labels).toMatchObject({ x: 'Acme Gateway' });
});

test('COPY globs copy what they match, in the shell and the JSON form', async () => {
  const files = {
    'a.txt': 'a\n',
    'b.txt': 'b\n',
    'g/one.conf': 'one\n',
    'g/two.conf': 'two\n',
    'g/one.cob': 'cob\n',
  };
  const ok = await build(
    context(
      [
        'FROM base:v1',
        'COPY *.txt /opt/g/',
        'COPY g/*.conf /etc/x/',
        'COPY g/one.co? /etc/q/',
        'COPY ["g/[ot]*.conf", "/etc/j/"]',
        'RUN test "$(cat /opt/g/a.txt /opt/g/b.txt)" = "$(printf "a\\nb")" && ' +
          'test "$(ls /etc/x)" = "$(printf "one.conf\\ntwo.conf")" && ' +
          'test "$(ls /etc/q)" = one.cob && test "$(cat /etc/j/two.conf)" = two',
      ],
      files,
    ),
  );
  expect(ok.code).toBe(0);

  const none = await build(context(['FROM base:v1', 'COPY a.txt g/*.nope /opt/'], files));
  expect(none.code).not.toBe(0);
  expect(none.stderr).toContain('Stratafile:2:12: g/*.nope matches nothing in the build context');
  const notDir = await build(context(['FROM base:v1', 'COPY g/*.conf /etc/x.conf'], files));
  expect(notDir.stderr).toContain(
    'Stratafile:2:6: COPY g/*.conf matches 2 paths (g/one.conf, g/two.conf): with several sources, the destination must be a directory ending in "/"',
  );
});

test('COPY refuses a symlink out of the context, and follows one inside it', async () => {
  const ctx = context(['FROM base:v1', 'COPY d/etclink/shadow /opt/s'], { 'real/conf': 'mine\n' });
  fs.mkdirSync(path.join(ctx, 'd'));
  fs.symlinkSync('/etc', path.join(ctx, 'd/etclink'));
  const out = await build(ctx);
  expect(out.code).not.toBe(0);
  expect(out.stderr).toContain(
    'Stratafile:2:6: d/etclink/shadow escapes the build context: d/etclink is a symlink to /etc',
  );
  fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nCOPY d/etclink /opt/etc/\n');
  const dir = await build(ctx);
  expect(dir.stderr).toContain('d/etclink escapes the build context');
  expect(dir.stderr).not.toContain('/run/strata/context');

  fs.symlinkSync('../real/conf', path.join(ctx, 'd/conf'));
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    [
      'FROM base:v1',
      'COPY d/conf /opt/s',
      'COPY d/conf /opt/dir/',
      'RUN test ! -L /opt/s && test "$(cat /opt/s)" = mine && test "$(cat /opt/dir/conf)" = mine',
      '',
    ].join('\n'),
  );
  const inside = await build(ctx);
  expect({ code: inside.code, out: show(inside) }).toMatchObject({ code: 0 });
});

test("INSTALL's local .debs: a symlink is followed inside the context and its file keyed, one out of it refused, a glob expanded", async () => {
  const ctx = context(['FROM base:v1', 'INSTALL ./debs/hello.deb', 'RUN cat /usr/share/hello/v']);
  const pool = path.join(ctx, 'pool');
  fs.mkdirSync(pool);
  fs.mkdirSync(path.join(ctx, 'debs'));
  const hello = (v: string) =>
    buildDeb(pool, 'strata-hello', {}, { 'usr/share/hello/v': { text: `${v}\n`, mode: 0o644 } });
  const file = await hello('one');
  fs.symlinkSync(`../pool/${path.basename(file)}`, path.join(ctx, 'debs/hello.deb'));
  const first = await build(ctx, ['-t', 'hello:1']);
  expect({ code: first.code, out: show(first) }).toMatchObject({ code: 0 });
  expect(first.stdout + first.stderr).toContain('one');

  // The same link to a rebuilt file: the key holds the file, so the step runs again.
  fs.rmSync(file);
  await hello('two');
  const second = await build(ctx, ['-t', 'hello:2']);
  expect({ code: second.code, out: show(second) }).toMatchObject({ code: 0 });
  expect(second.stdout + second.stderr).toContain('two');
  expect(readImage(store, 'hello:2').manifest.layers).not.toEqual(
    readImage(store, 'hello:1').manifest.layers,
  );

  // A glob takes every match; a link out of the context is refused at its place on the line.
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    'FROM base:v1\nINSTALL ./pool/*.deb\nRUN cat /usr/share/hello/v\n',
  );
  const glob = await build(ctx, ['-t', 'hello:glob']);
  expect({ code: glob.code, out: show(glob) }).toMatchObject({ code: 0 });
  // The same package on the same base: the same layer as through the link, and the RUN cached.
  expect(readImage(store, 'hello:glob').manifest.layers).toEqual(
    readImage(store, 'hello:2').manifest.layers,
  );
  const outside = path.join(work, 'outside.deb');
  fs.copyFileSync(path.join(pool, 'strata-hello_1.0_all.deb'), outside);
  fs.symlinkSync(outside, path.join(ctx, 'debs/out.deb'));
  fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nINSTALL less ./debs/out.deb\n');
  const out = await build(ctx);
  expect(out.code).not.toBe(0);
  expect(out.stderr).toContain(
    `Stratafile:2:14: ./debs/out.deb escapes the build context: debs/out.deb is a symlink to ${outside} (hint: a build reads only its context; copy the file into it)`,
  );
});

test('a --build-arg that no ARG declares is a warning line', async () => {
  const r = await build(context(['FROM base:v1', 'ARG USED', 'FEATURE x']), [
    '--build-arg',
    'USED=1',
    '--build-arg',
    'TYPO=2',
  ]);
  expect(r.code).toBe(0);
  expect(r.stderr).toContain(
    'strata: warning: build arg TYPO is not used: no ARG in Stratafile declares it\n',
  );
});

test('COPY --chown with a user alone gives the group of the same id, as Docker does', async () => {
  const ctx = context(
    [
      'FROM base:v1',
      'COPY --chown=daemon a.txt /opt/by-name',
      'COPY --chown=4321 a.txt /opt/by-id',
      'COPY --chown=daemon:adm a.txt /opt/with-group',
      'RUN stat -c "%n %u:%g" /opt/by-name /opt/by-id /opt/with-group > /owners',
    ],
    { 'a.txt': 'a\n' },
  );
  const r = await build(ctx, ['-t', 'owners:1']);
  expect(show(r)).toMatch(/^exit 0/);
  const tar = path.join(work, 'owners.tar');
  await strataOk(['flatten', 'owners:1', '--rootfs', tar], { store });
  const owners = await runOk('tar', ['-xOf', tar, 'owners']);
  // daemon is uid 1 in Debian; adm is gid 4.
  expect(owners.stdout).toBe('/opt/by-name 1:1\n/opt/by-id 4321:4321\n/opt/with-group 1:4\n');
});
