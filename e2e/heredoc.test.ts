/**
 * Here-documents, as in BuildKit's Dockerfile: in RUN a script given inline (`RUN <<EOF`), one
 * with its own interpreter (`#!`), and a command fed a here-document (`RUN cat > f <<EOF`); in
 * COPY files written from their lines. Real builds on the minbase template: each lands in its
 * layer, is a cache hit when unchanged and runs again when a line of its body changes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SLOW, cleanupTmp, runOk, strata, strataOk } from './helpers';
import { buildJson, storeWithBase } from './fixtures/build/harness';

let work: string;
let store: string;
let sources: string;

interface Step {
  instruction: string;
  status: string;
}

function context(name: string, text: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Stratafile'), text);
  return dir;
}

async function build(dir: string, tag: string): Promise<{ steps: Step[] }> {
  const r = await buildJson(['--apt-sources', sources, '-t', tag, dir], store);
  const { steps } = r as typeof r & { steps: Step[] };
  // The ARG is a step of the build's report too, one that runs nothing.
  return { steps: steps.filter((s) => !s.instruction.startsWith('ARG ')) };
}

/** The text of files in the flattened rootfs of `tag`, as GNU tar reads them. */
async function files(tag: string, names: string[]): Promise<string[]> {
  const out = path.join(work, `${tag.replace(':', '-')}.tar`);
  await strataOk(['flatten', tag, '--rootfs', out], { store });
  return Promise.all(names.map(async (n) => (await runOk('tar', ['-xOf', out, n])).stdout));
}

const STRATAFILE = (version: string): string =>
  [
    'FROM base:v1',
    'ARG NAME=gateway',
    'RUN <<EOF',
    'set -e',
    '# a comment line of the script, not of the Stratafile',
    'mkdir -p /etc/product',
    '',
    `printf '%s\\n' "${version}" > /etc/product/version`,
    'EOF',
    "RUN cat > /etc/product/config <<'CONF'",
    '# written as is: $NAME stays',
    'name=$NAME',
    'CONF',
    'RUN <<-EOF',
    '\t#!/usr/bin/perl',
    "\topen my $f, '>', '/etc/product/perl' or die;",
    '\tprint $f "name=$ENV{NAME} arch=", `dpkg --print-architecture`;',
    '\tEOF',
    '',
  ].join('\n');

beforeAll(async () => {
  ({ work, store, sources } = await storeWithBase());
}, SLOW);

afterAll(() => cleanupTmp());

test(
  'RUN <<EOF scripts, a #! interpreter and cat <<EOF run in the chroot, and are cached by their lines',
  async () => {
    const dir = context('app', STRATAFILE('v1'));
    const first = await build(dir, 'heredoc:1');
    expect(first.steps.map((s) => [s.instruction.split('\n')[0], s.status])).toEqual([
      ['RUN <<EOF', 'run'],
      ["RUN cat > /etc/product/config <<'CONF'", 'run'],
      ['RUN <<-EOF', 'run'],
    ]);
    const arch = (await runOk('dpkg', ['--print-architecture'])).stdout.trim();
    expect(
      await files('heredoc:1', ['etc/product/version', 'etc/product/config', 'etc/product/perl']),
    ).toEqual([
      'v1\n',
      '# written as is: $NAME stays\nname=$NAME\n',
      `name=gateway arch=${arch}\n`,
    ]);

    // inspect shows one line a step.
    const shown = (await strataOk(['inspect', 'heredoc:1'], { store })).stdout;
    expect(shown).toContain('RUN <<EOF … (6 more lines)');

    // Unchanged: every step from the cache. One line of the first script changed: it runs again,
    // and the steps after it too, as they stand on its layer.
    const again = await build(dir, 'heredoc:1');
    expect(again.steps.map((s) => s.status)).toEqual(['cached', 'cached', 'cached']);
    fs.writeFileSync(path.join(dir, 'Stratafile'), STRATAFILE('v2'));
    const changed = await build(dir, 'heredoc:2');
    expect(changed.steps.map((s) => s.status)).toEqual(['run', 'run', 'run']);
    expect(await files('heredoc:2', ['etc/product/version'])).toEqual(['v2\n']);
  },
  SLOW,
);

test('a here-document the file ends inside is an error at its marker, before any step', async () => {
  const dir = context('open', 'FROM base:v1\nRUN echo a > /etc/a\nRUN cat > /etc/b <<EOF\nb\n');
  const r = await strata(['build', '--apt-sources', sources, '-t', 'open:1', dir], { store });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain('Stratafile:3:18: here-document <<EOF is not closed');
  expect(fs.existsSync(path.join(dir, 'Stratafile.lock'))).toBe(false);
});

const COPIES = (version: string): string =>
  [
    'FROM base:v1',
    'ARG NAME=gateway',
    'COPY <<EOF /etc/x.conf',
    'name=$NAME',
    `version=${version} "quoted" \\$HOME`,
    'EOF',
    "COPY <<'RAW' /etc/raw.conf",
    'name=$NAME ${NAME}',
    'RAW',
    'COPY --chmod=0600 <<EOF /etc/secret.conf',
    'token=abc',
    'EOF',
    'COPY <<a.conf <<-b.conf /etc/app/',
    'first',
    'a.conf',
    '\tsecond $NAME',
    '\tb.conf',
    '',
  ].join('\n');

/**
 * Mode, owner and path of files in the flattened rootfs of `tag` (`-rw-r--r-- 0/0 etc/x.conf`),
 * sorted by path (tar lists them in the archive's order).
 */
async function modes(tag: string, names: string[]): Promise<string[]> {
  const out = path.join(work, `${tag.replace(':', '-')}.tar`);
  const listing = (await runOk('tar', ['--numeric-owner', '-tvf', out, ...names])).stdout;
  return listing
    .trim()
    .split('\n')
    .map((l) => {
      const [mode, owner, , , , name] = l.split(/\s+/);
      return { name: name ?? '', shown: `${mode} ${owner} ${name}` };
    })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => f.shown);
}

test(
  'COPY <<EOF writes files from their lines: substituted unless quoted, with --chmod, several into a directory; cached by content, checked by strata check',
  async () => {
    const dir = context('copies', COPIES('v1'));
    const first = await build(dir, 'copies:1');
    expect(first.steps.map((s) => [s.instruction.split('\n')[0], s.status])).toEqual([
      ['COPY <<EOF /etc/x.conf', 'run'],
      ["COPY <<'RAW' /etc/raw.conf", 'run'],
      ['COPY --chmod=0600 <<EOF /etc/secret.conf', 'run'],
      ['COPY <<a.conf <<-b.conf /etc/app/', 'run'],
    ]);
    const names = [
      'etc/x.conf',
      'etc/raw.conf',
      'etc/secret.conf',
      'etc/app/a.conf',
      'etc/app/b.conf',
    ];
    expect(await files('copies:1', names)).toEqual([
      'name=gateway\nversion=v1 "quoted" $HOME\n',
      'name=$NAME ${NAME}\n',
      'token=abc\n',
      'first\n',
      'second gateway\n',
    ]);
    expect(await modes('copies:1', names)).toEqual([
      '-rw-r--r-- 0/0 etc/app/a.conf',
      '-rw-r--r-- 0/0 etc/app/b.conf',
      '-rw-r--r-- 0/0 etc/raw.conf',
      '-rw------- 0/0 etc/secret.conf',
      '-rw-r--r-- 0/0 etc/x.conf',
    ]);
    // Nothing was written into the build context.
    expect(fs.readdirSync(dir).sort()).toEqual(['Stratafile', 'Stratafile.lock']);
    // inspect shows the COPY line and how many lines follow it.
    const shown = (await strataOk(['inspect', 'copies:1'], { store })).stdout;
    expect(shown).toContain('COPY <<EOF /etc/x.conf … (3 more lines)');

    const check = (tag: string) =>
      strata(['check', '--no-packages', '-f', path.join(dir, 'Stratafile'), tag], { store });
    const fresh = await check('copies:1');
    expect([fresh.code, fresh.stdout.trim()]).toEqual([0, 'copies:1 is up to date']);

    const again = await build(dir, 'copies:1');
    expect(again.steps.map((s) => s.status)).toEqual(['cached', 'cached', 'cached', 'cached']);

    // One line of the first file changed: its step runs again, and those on its layer too.
    fs.writeFileSync(path.join(dir, 'Stratafile'), COPIES('v2'));
    const stale = await check('copies:1');
    expect(stale.code).toBe(1);
    // One line a reason: the step's first line, and what differs.
    expect(stale.stdout).toContain(
      'COPY <<EOF /etc/x.conf … (3 more lines): changed: the lines of its here-documents differ from the ones it was built with',
    );
    expect(stale.stdout).not.toContain('version=v2');
    const changed = await build(dir, 'copies:2');
    expect(changed.steps.map((s) => s.status)).toEqual(['run', 'run', 'run', 'run']);
    expect(await files('copies:2', ['etc/x.conf'])).toEqual([
      'name=gateway\nversion=v2 "quoted" $HOME\n',
    ]);
  },
  SLOW,
);

test('a here-document cannot be copied --from a stage: an error at its marker', async () => {
  const dir = context(
    'copy-from',
    'FROM base:v1 AS a\nRUN true\nFROM base:v1\nCOPY --from=a <<EOF /etc/x\nx\nEOF\n',
  );
  const r = await strata(['build', '--apt-sources', sources, '-t', 'copyfrom:1', dir], { store });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain('Stratafile:4:15: COPY --from cannot copy here-document <<EOF');
});
