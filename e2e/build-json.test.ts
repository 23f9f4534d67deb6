/**
 * What a script that runs `strata build --json` in CI reads on stdout: each step of a build that
 * worked, and one error object for a build that failed, was interrupted or was misused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  cleanupTmp,
  startStrata,
  strata,
  strataLinesAreOneError,
  strataOk,
  buildContext,
} from './helpers';
import { storeWithBase } from './fixtures/build/harness';

jest.setTimeout(SLOW);

let work: string;
let store: string;
let sources: string;

beforeAll(async () => {
  ({ work, store, sources } = await storeWithBase());
});

afterAll(() => cleanupTmp());

const context = (stratafile: string, files: Record<string, string> = {}) =>
  buildContext(work, stratafile, files);

function build(ctx: string, extra: string[] = []) {
  return strata(['build', '--apt-sources', sources, ...extra, ctx], { store });
}

interface Step {
  stage: string;
  step: number;
  instruction: string;
  file: string;
  line: number;
  column: number;
  status: string;
  cacheKey?: string;
  layer?: { digest: string; size: number };
  packagesAdded: string[];
  packagesRemoved: string[];
  seconds: number;
}

interface ErrorJson {
  error: {
    code: string;
    message: string;
    hint?: string;
    file?: string;
    line?: number;
    column?: number;
    exitCode: number;
  };
}

test('a stage the target does not need is not built, as BuildKit skips it; --target builds it and fails at its line', async () => {
  const ctx = context(
    'FROM base:v1 AS unused\nRUN exit 3\n\nFROM base:v1 AS bc\nRUN touch /bc\n\nFROM base:v1\nBUILDCHROOT bc\nRUN touch /app\n',
  );
  const file = path.join(ctx, 'Stratafile');
  const r = await build(ctx, ['--json', '-t', 'skip:1']);
  expect(r.code).toBe(0);
  const doc = JSON.parse(r.stdout) as { steps: Step[] };
  expect(doc.steps.map((s) => [s.stage, s.instruction])).toEqual([
    ['bc', 'RUN touch /bc'],
    ['#2', 'BUILDCHROOT bc'],
    ['#2', 'RUN touch /app'],
  ]);
  // The lock has every stage up to the target, the skipped one without steps.
  const lock = JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')) as {
    stages: Array<{ name: string; steps: unknown[] }>;
  };
  expect(lock.stages.map((st) => [st.name, st.steps.length])).toEqual([
    ['unused', 0],
    ['bc', 1],
    ['#2', 1],
  ]);
  await expect(build(ctx, ['--frozen', '-t', 'skip:1'])).resolves.toMatchObject({ code: 0 });
  const failed = await build(ctx, ['--target', 'unused']);
  expect(failed.code).not.toBe(0);
  expect(failed.stderr).toContain(`${file}:2:1`);
});

test('--json lists every step: cached or run, its layer, packages and time, as the lock and inspect have them', async () => {
  const ctx = context('FROM base:v1\nCOPY motd /etc/motd\n', { motd: 'hello\n' });
  await strataOk(['build', '-q', '--apt-sources', sources, '-t', 'steps:1', ctx], { store });
  const file = path.join(ctx, 'Stratafile');
  fs.appendFileSync(file, 'ENV GREETING=hi\nRUN echo "$GREETING" > /etc/greeting\n');

  const r = await build(ctx, ['--json', '-t', 'steps:2']);
  expect(r.code).toBe(0);
  const doc = JSON.parse(r.stdout) as { steps: Step[]; layers: Array<{ digest: string }> };
  const at = (line: number) => ({ file, line, column: 1 });
  expect(doc.steps).toEqual([
    expect.objectContaining({
      stage: '#0',
      step: 1,
      instruction: 'COPY motd /etc/motd',
      ...at(2),
      status: 'cached',
    }),
    {
      stage: '#0',
      step: 2,
      instruction: 'ENV GREETING=hi',
      ...at(3),
      status: 'none',
      packagesAdded: [],
      packagesRemoved: [],
      seconds: expect.any(Number),
    },
    expect.objectContaining({ step: 3, ...at(4), status: 'run' }),
  ]);
  for (const s of doc.steps) expect(s.seconds).toBeGreaterThanOrEqual(0);

  // The layer steps are the lock's, in order, and the image's last layers.
  const lock = JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')) as {
    stages: Array<{
      steps: Array<{
        instruction: string;
        cacheKey: string;
        layer: string;
        packages: string[];
        removed: string[];
      }>;
    }>;
  };
  const layered = doc.steps.filter((s) => s.layer !== undefined);
  expect(
    layered.map((s) => ({
      instruction: s.instruction,
      cacheKey: s.cacheKey,
      layer: s.layer?.digest,
      packages: s.packagesAdded,
      removed: s.packagesRemoved,
    })),
  ).toEqual(lock.stages[0]?.steps);
  const inspected = JSON.parse(
    (await strataOk(['inspect', '--json', 'steps:2'], { store })).stdout,
  ) as {
    layers: Array<{ digest: string; size: number; createdBy: string }>;
  };
  expect(
    inspected.layers.slice(-2).map((l) => ({ digest: l.digest, size: l.size, by: l.createdBy })),
  ).toEqual(
    layered.map((s) => ({ digest: s.layer?.digest, size: s.layer?.size, by: s.instruction })),
  );

  // Writing the image and its SBOMs is a line of its own, after the last step's.
  const lines = r.stderr.split('\n');
  const last = lines.findIndex((l) => l.startsWith('[3/3] RUN '));
  expect(last).toBeGreaterThanOrEqual(0);
  expect(lines[last]).toMatch(/: layer [0-9a-f]{12} .* in [\d.]+s$/);
  expect(lines[last + 1]).toMatch(/^writing the image and its SBOMs: in [\d.]+s$/);
});

test('a failing build with --json prints one error object on stdout, at the failing line', async () => {
  const ctx = context('FROM base:v1\nCOPY motd /etc/motd\nRUN exit 3\n', { motd: 'x\n' });
  const r = await build(ctx, ['--json', '-t', 'fails:1']);
  expect(r.code).toBe(1);
  expect(strataLinesAreOneError(r.stderr)).toBe(true);
  const doc = JSON.parse(r.stdout) as ErrorJson;
  expect(doc).toEqual({
    error: {
      code: 'TOOL_FAILED',
      message: expect.stringMatching(/:3:1: RUN failed with exit code 3/),
      file: path.join(ctx, 'Stratafile'),
      line: 3,
      column: 1,
      exitCode: 1,
    },
  });
  // The same error as the line on stderr.
  expect(r.stderr).toContain(`strata: error: ${doc.error.message}`);
});

test("a FROM that fails keeps its cause's code in --json, at the FROM's line", async () => {
  // A script tells a tag that is gone (NOT_FOUND) from a step that failed (TOOL_FAILED).
  const ctx = context('FROM nothing-here:v1\nRUN true\n');
  const r = await build(ctx, ['--json', '-t', 'fails:1']);
  expect(r.code).toBe(1);
  expect((JSON.parse(r.stdout) as ErrorJson).error).toMatchObject({
    code: 'NOT_FOUND',
    message: expect.stringMatching(/:1:1: FROM nothing-here:v1/),
    file: path.join(ctx, 'Stratafile'),
    line: 1,
    column: 1,
    exitCode: 1,
  });
});

test('an interrupted build with --json: its error object, exit 130', async () => {
  const ctx = context('FROM base:v1\nRUN echo started; sleep 60\n');
  const run = startStrata([
    '--store',
    store,
    'build',
    '--json',
    '--apt-sources',
    sources,
    '-t',
    'stopped:1',
    ctx,
  ]);
  while (run.running() && !run.output().stderr.includes('started'))
    await new Promise((r) => setTimeout(r, 20));
  expect(run.running()).toBe(true);
  run.child.kill('SIGINT');
  expect(await run.exited).toEqual([130, null]);
  expect(JSON.parse(run.output().stdout)).toEqual({
    error: {
      code: 'INTERRUPTED',
      message: 'build interrupted; nothing was tagged',
      exitCode: 130,
    },
  });
  // The step the user stopped did not fail.
  expect(run.output().stderr).toMatch(/RUN echo started; sleep 60: interrupted after /);
  expect(run.output().stderr).not.toContain('failed');
});

test('a usage error with --json: the object too, exit 2', async () => {
  const ctx = context('FROM base:v1\n');
  const r = await build(ctx, ['--json', '--tga', 'x:1']);
  expect({ code: r.code, stderr: r.stderr }).toEqual({
    code: 2,
    stderr: 'strata: error: unknown option --tga; did you mean --tag?\n',
  });
  expect(JSON.parse(r.stdout)).toEqual({
    error: {
      code: 'INVALID_ARGUMENT',
      message: 'unknown option --tga; did you mean --tag?',
      exitCode: 2,
    },
  });
});
