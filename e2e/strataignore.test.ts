/**
 * `.strataignore`, as docker's `.dockerignore`: what it leaves out of the build context is not
 * copied by `COPY .`, does not change the COPY's cache key, and cannot be named by a COPY.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  REPO_ROOT,
  SLOW,
  buildContext,
  cleanupTmp,
  minbaseRootfs,
  runOk,
  show,
  strata,
  strataOk,
  tmpDir,
} from './helpers';
import { sourcesFile } from './fixtures/build/harness';

jest.setTimeout(SLOW);

let work: string;
let store: string;
let sources: string;
const env = { SOURCE_DATE_EPOCH: '1700000000' };

beforeAll(async () => {
  work = tmpDir('strata-strataignore-');
  store = path.join(work, 'store');
  sources = sourcesFile(work);
  const { minbaseTar } = await minbaseRootfs();
  await strataOk(['template', 'create', minbaseTar, '-t', 'base:v1', '--name', 'base'], { store });
});

afterAll(() => cleanupTmp());

function build(ctx: string, extra: string[] = []) {
  return strata(['build', '--apt-sources', sources, ...extra, ctx], { store, env });
}

/** The entries under `dir` of image `ref`'s root filesystem, by GNU tar. */
async function entriesUnder(ref: string, dir: string): Promise<string[]> {
  const tar = path.join(work, `${ref.replace(/:/g, '-')}.tar`);
  await strataOk(['flatten', ref, '--rootfs', tar], { store });
  return (await runOk('tar', ['-tf', tar])).stdout
    .split('\n')
    .map((e) => e.replace(/^\.\//, ''))
    .filter((e) => e.startsWith(dir))
    .sort();
}

test('COPY . leaves out what .strataignore excludes, keeps its exceptions, and is not rerun when an excluded file changes', async () => {
  const ctx = buildContext(work, 'FROM base:v1\nCOPY . /opt/app/\n', {
    '.strataignore': '# version control and logs\n.git\n*.log\n!keep.log\nbuild/\n!build/dist\n',
    '.git/HEAD': 'ref: refs/heads/main\n',
    '.git/objects/ab/cdef': 'blob\n',
    'app.sh': 'echo hi\n',
    'debug.log': 'noise\n',
    'keep.log': 'kept\n',
    'sub/inner.log': 'only the root *.log is excluded\n',
    'build/tmp/o.o': 'object\n',
    'build/dist/app': 'binary\n',
  });
  const first = await build(ctx, ['-t', 'app:1']);
  expect({ code: first.code, out: show(first) }).toMatchObject({ code: 0 });
  expect(await entriesUnder('app:1', 'opt/app/')).toEqual([
    'opt/app/',
    'opt/app/.strataignore',
    'opt/app/Stratafile',
    'opt/app/app.sh',
    'opt/app/build/',
    'opt/app/build/dist/',
    'opt/app/build/dist/app',
    'opt/app/keep.log',
    'opt/app/sub/',
    'opt/app/sub/inner.log',
  ]);

  // A commit, a new log: nothing the COPY reads changed, so it is a cache hit.
  fs.writeFileSync(path.join(ctx, '.git/HEAD'), 'ref: refs/heads/other\n');
  fs.mkdirSync(path.join(ctx, '.git/objects/cd'));
  fs.writeFileSync(path.join(ctx, '.git/objects/cd/0123'), 'blob\n');
  fs.writeFileSync(path.join(ctx, 'debug.log'), 'more noise\n');
  const again = await build(ctx, ['--json', '-q', '-t', 'app:2']);
  expect({ code: again.code, out: show(again) }).toMatchObject({ code: 0 });
  const doc = JSON.parse(again.stdout) as {
    steps: Array<{ instruction: string; status: string }>;
  };
  expect(doc.steps.find((s) => s.instruction === 'COPY . /opt/app/')?.status).toBe('cached');

  // A file the COPY keeps did change: the step runs again.
  fs.writeFileSync(path.join(ctx, 'keep.log'), 'kept, changed\n');
  const changed = await build(ctx, ['--json', '-q', '-t', 'app:3']);
  expect({ code: changed.code, out: show(changed) }).toMatchObject({ code: 0 });
  const doc3 = JSON.parse(changed.stdout) as typeof doc;
  expect(doc3.steps.find((s) => s.instruction === 'COPY . /opt/app/')?.status).toBe('run');
});

test("without a .strataignore, COPY . of the Stratafile's own folder is a cache hit on the next build: the lock the build writes there is never in the context", async () => {
  const ctx = buildContext(work, 'FROM base:v1\nCOPY . /opt/site/\n', { 'index.html': 'hi\n' });
  const first = await build(ctx, ['-t', 'site:1']);
  expect({ code: first.code, out: show(first) }).toMatchObject({ code: 0 });
  expect(fs.existsSync(path.join(ctx, 'Stratafile.lock'))).toBe(true);
  expect(await entriesUnder('site:1', 'opt/site/')).toEqual([
    'opt/site/',
    'opt/site/Stratafile',
    'opt/site/index.html',
  ]);
  for (const tag of ['site:2', 'site:3']) {
    const again = await build(ctx, ['--json', '-q', '-t', tag]);
    expect({ code: again.code, out: show(again) }).toMatchObject({ code: 0 });
    const doc = JSON.parse(again.stdout) as {
      steps: Array<{ instruction: string; status: string }>;
    };
    expect(doc.steps.find((s) => s.instruction === 'COPY . /opt/site/')?.status).toBe('cached');
  }
  // Named, it is refused with the reason.
  fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nCOPY Stratafile.lock /opt/\n');
  const named = await build(ctx);
  expect(named.code).not.toBe(0);
  expect(named.stderr).toContain(
    `${ctx}/Stratafile:2:6: Stratafile.lock is not in the build context: it is the build's lock file, which the build writes`,
  );
});

test('a COPY of an excluded file fails at the source, saying the ignore file excludes it', async () => {
  const ctx = buildContext(work, 'FROM base:v1\nCOPY app.sh debug.log /opt/\n', {
    '.strataignore': '*.log\n',
    'app.sh': 'echo hi\n',
    'debug.log': 'noise\n',
  });
  const r = await build(ctx);
  expect(r.code).not.toBe(0);
  const ignore = path.join(ctx, '.strataignore');
  expect(r.stderr).toContain(
    `${ctx}/Stratafile:2:13: debug.log is not in the build context: ${ignore} excludes it (hint: add a line !debug.log to ${ignore} to copy it)`,
  );
});

test('a malformed pattern fails the build at its line of .strataignore, before any step', async () => {
  // No step reads the context: docker refuses a bad .dockerignore all the same.
  const ctx = buildContext(work, 'FROM base:v1\nRUN true\n', {
    '.strataignore': '.git\n[abc\n',
  });
  const r = await build(ctx);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/\.strataignore:2:1: bad pattern "\[abc"/);
});

test('DEBUILD builds a tree without what .strataignore leaves out, and a change there is a cache hit', async () => {
  const ctx = buildContext(
    work,
    'FROM base:v1 AS buildchroot\n\nFROM base:v1\nBUILDCHROOT buildchroot\nDEBUILD strata-greeting\n',
    {
      '.strataignore': '**/.git\nstrata-greeting/Makefile\n',
      'strata-greeting/.git/HEAD': 'ref: refs/heads/main\n',
      // dh's build runs make when there is a Makefile: this one would fail it.
      'strata-greeting/Makefile': 'all:\n\tfalse\n',
    },
  );
  fs.cpSync(
    path.join(REPO_ROOT, 'e2e/fixtures/debuild/strata-greeting'),
    path.join(ctx, 'strata-greeting'),
    {
      recursive: true,
    },
  );
  const first = await build(ctx, ['-t', 'deb:1']);
  expect({ code: first.code, out: show(first) }).toMatchObject({ code: 0 });

  fs.writeFileSync(path.join(ctx, 'strata-greeting/.git/HEAD'), 'ref: refs/heads/other\n');
  const again = await build(ctx, ['--json', '-q', '-t', 'deb:2']);
  expect({ code: again.code, out: show(again) }).toMatchObject({ code: 0 });
  const doc = JSON.parse(again.stdout) as {
    steps: Array<{ instruction: string; status: string }>;
  };
  expect(doc.steps.find((s) => s.instruction === 'DEBUILD ./strata-greeting')?.status).toBe(
    'cached',
  );
});
