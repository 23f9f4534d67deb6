/**
 * What a new user met on the build path: the date a build carries, the reason a quiet build
 * failed, REMOVE of what cannot or need not be removed, and a bad tag found only after the work.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import {
  SLOW,
  cleanupTmp,
  strataLinesAreOneError,
  minbaseRootfs,
  strata,
  strataOk,
  buildContext,
} from './helpers';
import { BASE_ARCHIVE, DEBIAN_SOURCES, readImage, storeWithBase } from './fixtures/build/harness';

jest.setTimeout(SLOW);

let work: string;
let store: string;
let sources: string;
let minbaseTar: string;

beforeAll(async () => {
  ({ work, store, sources } = await storeWithBase());
  minbaseTar = (await minbaseRootfs()).minbaseTar;
});

afterAll(() => cleanupTmp());

const context = (stratafile: string, files: Record<string, string> = {}) =>
  buildContext(work, stratafile, files);

function build(ctx: string, extra: string[] = [], env: Record<string, string> = {}) {
  return strata(['build', '--apt-sources', sources, ...extra, ctx], { store, env });
}

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
          return;
        }
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => (text += s));
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
}

/** The newest Date: of the test sources' InRelease files, read here without Strata. */
async function mirrorDate(): Promise<string> {
  const dates = await Promise.all(
    DEBIAN_SOURCES.trim()
      .split('\n')
      .map(async (line) => {
        const [, uri, suite] = line.split(' ');
        const text = await fetchText(`${uri}/dists/${suite}/InRelease`);
        return Date.parse((/^Date: (.+)$/m.exec(text) as RegExpExecArray)[1] as string);
      }),
  );
  return new Date(Math.max(...dates)).toISOString().replace(/\.000Z$/, 'Z');
}

describe('the build date', () => {
  test('is the mirror state of the apt sources, not the base template’s date', async () => {
    // A base made by `template create` is dated when it was made; a build on it is dated by
    // the mirror state its apt sources resolve to.
    await strataOk(['template', 'create', minbaseTar, '-t', 'made:1', '--name', 'made'], { store });
    const ctx = context('FROM made:1\nRUN echo one > /etc/one\n');
    await strataOk(['build', '-q', '--apt-sources', sources, '-t', 'dated:1', ctx], { store });
    const { config } = readImage(store, 'dated:1');
    const base = readImage(store, 'made:1').config;
    const want = await mirrorDate();
    expect(config.created).toBe(want);
    expect(config.strata?.created).toBe(want);
    expect(base.created).not.toBe(want);
    expect(config.history?.[config.history.length - 1]?.created).toBe(want);
  });

  test('--timestamp now dates it by the clock, and SOURCE_DATE_EPOCH wins over both', async () => {
    const ctx = context('FROM base:v1\nRUN echo two > /etc/two\n');
    const before = Math.floor(Date.now() / 1000) * 1000;
    await strataOk(
      ['build', '-q', '--apt-sources', sources, '--timestamp', 'now', '-t', 'now:1', ctx],
      {
        store,
      },
    );
    const created = Date.parse(readImage(store, 'now:1').config.created as string);
    expect(created).toBeGreaterThanOrEqual(before);
    expect(created).toBeLessThanOrEqual(Date.now());

    await strataOk(['build', '-q', '--apt-sources', sources, '--no-cache', '-t', 'sde:1', ctx], {
      store,
      env: { SOURCE_DATE_EPOCH: '1700000000' },
    });
    expect(readImage(store, 'sde:1').config.created).toBe('2023-11-14T22:13:20Z');
  });
});

describe('a quiet build that fails still says why', () => {
  test('INSTALL of an unknown package shows apt’s E: line', async () => {
    const ctx = context('FROM base:v1\nINSTALL curl mosquito\n');
    const r = await build(ctx, ['-q', '-t', 'typo:1']);
    expect(r.code).toBe(1);
    const last = r.stderr.trimEnd().split('\n').pop() as string;
    expect(last).toBe(
      `strata: error: ${path.join(ctx, 'Stratafile')}:2:14: INSTALL failed with exit code 100: E: Unable to locate package mosquito`,
    );
    // And the step's last lines, above the error.
    expect(r.stderr).toMatch(/^ {2}\| .*Reading package lists/m);
  });

  test('COPY --chown of an unknown user fails at the flag, in one line, before the copy runs', async () => {
    const ctx = context('FROM base:v1\nCOPY --chown=appuser motd /etc/motd\n', { motd: 'hi\n' });
    const r = await build(ctx, ['-q', '-t', 'chown:1']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `strata: error: ${path.join(ctx, 'Stratafile')}:2:6: --chown user appuser is not in the template's /etc/passwd (hint: create it in an earlier step (RUN useradd appuser), or give a numeric id)`,
    ]);
  });

  test('INSTALL of a local .deb that is not one fails at its place, naming it as written', async () => {
    const ctx = context('FROM base:v1\nINSTALL curl ./debs/bad.deb\n', {
      'debs/bad.deb': 'not a package\n',
    });
    const r = await build(ctx, ['-q', '-t', 'baddeb:1']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      `strata: error: ${path.join(ctx, 'Stratafile')}:2:14: ./debs/bad.deb: not a Debian package (not an ar archive) (hint: INSTALL takes .deb files that dpkg-deb --build made)`,
    ]);
  });

  test('COPY under a file of the template names that file, at the destination', async () => {
    const ctx = context('FROM base:v1\nCOPY motd /etc/passwd/x\n', { motd: 'hi\n' });
    const r = await build(ctx, ['-q', '-t', 'under-file:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `strata: error: ${path.join(ctx, 'Stratafile')}:2:11: COPY to /etc/passwd/x: /etc/passwd is a file in the way, not a directory`,
    );
    expect(r.stderr).not.toMatch(/exit code/);
  });
});

test('a COPY to a path no layer keeps (/tmp) fails at its line before it runs', async () => {
  const ctx = context('FROM base:v1\nCOPY tool.deb /tmp/tool.deb\nRUN dpkg -i /tmp/tool.deb\n', {
    'tool.deb': 'x',
  });
  const r = await build(ctx, ['-q', '-t', 'tmpcopy:1']);
  expect(r.code).toBe(1);
  expect(strataLinesAreOneError(r.stderr)).toBe(true);
  expect(r.stderr).toContain(
    `${path.join(ctx, 'Stratafile')}:2:1: COPY to /tmp/tool.deb: no layer keeps tmp/** (temporary files), so the copy would be lost before the next step`,
  );
  expect((await strata(['ls'], { store })).stdout).not.toContain('tmpcopy');
});

describe('REMOVE', () => {
  test('of an Essential or Protected package is refused, naming it and why', async () => {
    const ctx = context('FROM base:v1\nREMOVE e2fsprogs\n');
    const r = await build(ctx, ['-q', '-t', 'noe2fs:1']);
    expect(r.code).toBe(1);
    expect(strataLinesAreOneError(r.stderr)).toBe(true);
    expect(r.stderr).toContain(
      `${path.join(ctx, 'Stratafile')}:2:1: REMOVE e2fsprogs (Important: yes): dpkg marks it as needed`,
    );
  });

  test('of a package that is not installed is an error, and adds no layer', async () => {
    const ctx = context('FROM base:v1\nREMOVE curl\n');
    const r = await build(ctx, ['-q', '-t', 'nocurl:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`:2:1: REMOVE curl: it is not installed here`);
    expect(r.stderr).not.toMatch(/^ {2}layer /m);
    expect((await strata(['ls'], { store })).stdout).not.toContain('nocurl');
  });
});

test('an invalid -t fails before any step runs', async () => {
  const ctx = context('FROM base:v1\nRUN echo x > /etc/x\n');
  const r = await build(ctx, ['-t', 'Bad:Tag']);
  expect({ code: r.code, stderr: r.stderr }).toEqual({
    code: 2,
    stderr: expect.stringMatching(/^strata: error: invalid image reference "Bad:Tag"/),
  });
  expect(r.stderr).not.toContain('[1/1]');
  // Only the REF column: a digest may well contain "bad".
  expect((await strata(['ls'], { store })).stdout).not.toMatch(/^bad/im);
});

test('a mistake in the Stratafile fails before its FROM template is fetched', async () => {
  // Nothing listens on this loopback port: had the build asked the registry first, it would
  // have failed there, and a reachable one would have pulled the whole template.
  const ctx = context('FROM 127.0.0.1:9/acme/base:1\nRUN true\nINSTAL curl\n');
  const r = await build(ctx);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/Stratafile:3:1: unknown instruction "INSTAL"/);
  expect(r.stderr).not.toMatch(/ECONNREFUSED|127\.0\.0\.1:9/);
  expect(strataLinesAreOneError(r.stderr)).toBe(true);
});

test('an input file that is not there is NOT_FOUND, naming the option, in build, check and sources', async () => {
  const ctx = context('FROM base:v1\nRUN true\n');
  const runs = {
    build: ['build', ctx],
    check: ['check', 'base:v1', '-f', path.join(ctx, 'Stratafile')],
    sources: ['sources', 'base:v1', '-o', path.join(work, 'no-sources')],
  };
  for (const [cmd, args] of Object.entries(runs)) {
    const r = await strata(['--json', ...args, '--apt-sources', 'nope.list'], { store });
    expect({ cmd, stdout: JSON.parse(r.stdout) as unknown, stderr: r.stderr }).toEqual({
      cmd,
      stdout: {
        error: {
          code: 'NOT_FOUND',
          message: '--apt-sources nope.list: no such file',
          // check's 1 means stale: one that could not run is 2.
          exitCode: cmd === 'check' ? 2 : 1,
        },
      },
      stderr: 'strata: error: --apt-sources nope.list: no such file\n',
    });
  }
  const r = await strata(['--json', 'build', '--secret', 'id=k,src=nofile', ctx], { store });
  expect((JSON.parse(r.stdout) as { error: unknown }).error).toEqual({
    code: 'NOT_FOUND',
    message: '--secret id=k,src=nofile: no such file',
    exitCode: 1,
  });
});

test('inspect reads a .tmpl.img in place, as diff and sbom do; a file path never gets the pull hint', async () => {
  fs.symlinkSync(BASE_ARCHIVE, path.join(work, 'app1.tmpl.img'));
  const r = await strata(['--json', 'inspect', './app1.tmpl.img'], { store, cwd: work });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  const stored = await strata(['--json', 'inspect', 'base:v1'], { store });
  const { ref: fileRef, ...fromFile } = JSON.parse(r.stdout) as { ref: string };
  const { ref: tagRef, ...fromStore } = JSON.parse(stored.stdout) as { ref: string };
  expect(fromFile).toEqual(fromStore);
  expect([fileRef, tagRef]).toEqual([expect.any(String), 'base:v1']);
  // A command that takes only the store names the file as one, and says to load it.
  const none = await strata(['sources', './app1.tmpl.img', '-o', 'x'], { store, cwd: work });
  expect(none.code).toBe(1);
  expect(none.stderr).toContain('./app1.tmpl.img is a file');
  expect(none.stderr).toContain('strata load ./app1.tmpl.img');
  expect(none.stderr).not.toMatch(/pull|ENOTFOUND|getaddrinfo/);
});
