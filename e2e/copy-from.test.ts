/**
 * `COPY --from=<stage>`: a builder stage's output lands in a clean final stage, without the
 * builder's other files or layers; the copy is cached on the builder's result, and a stage only
 * copied from is built while one nothing needs is not.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  buildContext,
  cleanupTmp,
  foreignMinbaseTar,
  minbaseRootfs,
  runOk,
  show,
  strata,
  strataOk,
  tmpDir,
} from './helpers';
import { DEBIAN_SOURCES } from './fixtures/build/harness';

jest.setTimeout(SLOW);

let work: string;
let store: string;
let sources: string;

interface Step {
  stage: string;
  instruction: string;
  status: string;
  copiedFrom?: { stage: string; chain: string };
}
interface Built {
  digest: string;
  steps: Step[];
}

beforeAll(async () => {
  work = tmpDir('strata-copy-from-');
  store = path.join(work, 'store');
  sources = path.join(work, 'sources.list');
  fs.writeFileSync(sources, DEBIAN_SOURCES);
  const { minbaseTar } = await minbaseRootfs();
  await strataOk(['template', 'create', minbaseTar, '-t', 'base:1', '--name', 'base'], { store });
});

afterAll(() => cleanupTmp());

async function build(ctx: string, tag: string): Promise<Built> {
  const r = await strata(['build', '-q', '--json', '--apt-sources', sources, '-t', tag, ctx], {
    store,
  });
  if (r.code !== 0) throw new Error(show(r));
  return JSON.parse(r.stdout) as Built;
}

/** The flattened rootfs of `ref`: its entries, and a reader of one file. */
async function flat(
  ref: string,
): Promise<{ tar: string; entries: string[]; read: (p: string) => Promise<string> }> {
  const tar = path.join(work, `${ref.replace(/[:/]/g, '_')}-${Date.now()}.tar`);
  await strataOk(['flatten', ref, '--rootfs', tar], { store });
  const list = await runOk('tar', ['-tf', tar]);
  const entries = list.stdout
    .split('\n')
    .filter(Boolean)
    .map((e) => e.replace(/^\.\//, '').replace(/\/$/, ''));
  return {
    tar,
    entries,
    read: async (p) => (await runOk('tar', ['-xOf', tar, p])).stdout,
  };
}

const STRATAFILE = [
  'FROM base:1 AS unused',
  'RUN false',
  'FROM base:1 AS builder',
  'COPY hello.c /src/',
  // The "compiler": its output, a scratch file beside it, and a link by the stage's own absolute
  // path, which must resolve in the builder's tree (the host has no /opt/out).
  'RUN mkdir -p /opt/out && printf "built from %s" "$(cat /src/hello.c)" > /opt/out/hello && chmod 755 /opt/out/hello && echo junk > /opt/out.o && ln -s /opt/out/hello /src/hello-link',
  'FROM base:1',
  'COPY --from=builder /opt/out/hello /usr/local/bin/hello',
  'COPY --from=1 --chmod=0644 /src/hello-link /etc/hello.txt',
  '',
].join('\n');

describe('COPY --from a builder stage', () => {
  let ctx: string;
  let first: Built;

  beforeAll(async () => {
    ctx = buildContext(work, STRATAFILE, { 'hello.c': 'v1' });
    first = await build(ctx, 'final:1');
  });

  test("the file a RUN made in the builder lands in the final image; the builder's other files do not", async () => {
    const { tar, entries, read } = await flat('final:1');
    expect(await read('usr/local/bin/hello')).toBe('built from v1');
    expect(await read('etc/hello.txt')).toBe('built from v1');
    for (const gone of ['src/hello.c', 'src/hello-link', 'opt/out.o', 'opt/out/hello', 'opt/out'])
      expect(entries).not.toContain(gone);
    const r = await runOk('tar', ['-tvf', tar]);
    expect(r.stdout).toMatch(/^-rwxr-xr-x \S+ .*usr\/local\/bin\/hello$/m);
    expect(r.stdout).toMatch(/^-rw-r--r-- \S+ .*etc\/hello\.txt$/m);
  });

  test('the final image has its base and its two copies, none of the builder layers', async () => {
    const base = JSON.parse(
      (await strataOk(['inspect', 'base:1', '--json'], { store })).stdout,
    ) as { layers: unknown[] };
    const final = JSON.parse(
      (await strataOk(['inspect', 'final:1', '--json'], { store })).stdout,
    ) as { layers: unknown[] };
    expect(final.layers.length).toBe(base.layers.length + 2);
  });

  test('the stage only copied from is built, the one nothing needs is not; --json says where each copy came from', () => {
    expect(first.steps.map((s) => [s.stage, s.status])).toEqual([
      ['builder', 'run'],
      ['builder', 'run'],
      ['#2', 'run'],
      ['#2', 'run'],
    ]);
    const copies = first.steps.filter((s) => s.stage === '#2');
    const builderChain = copies[0]?.copiedFrom?.chain;
    expect(builderChain).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const c of copies) expect(c.copiedFrom).toEqual({ stage: 'builder', chain: builderChain });
  });

  test('an unchanged builder is a cache hit; a builder whose output changed reruns the copy', async () => {
    const again = await build(ctx, 'final:1');
    expect(again.steps.map((s) => s.status)).toEqual(['cached', 'cached', 'cached', 'cached']);
    expect(again.digest).toBe(first.digest);

    fs.writeFileSync(path.join(ctx, 'hello.c'), 'v2');
    const changed = await build(ctx, 'final:2');
    expect(changed.steps.map((s) => s.status)).toEqual(['run', 'run', 'run', 'run']);
    expect(changed.steps[2]?.copiedFrom?.chain).not.toBe(first.steps[2]?.copiedFrom?.chain);
    const { read } = await flat('final:2');
    expect(await read('usr/local/bin/hello')).toBe('built from v2');
  });
});

describe('COPY --from in the metadata and in strata check', () => {
  let ctx: string;
  let built: Built;

  beforeAll(async () => {
    ctx = buildContext(work, STRATAFILE, { 'hello.c': 'v3' });
    built = await build(ctx, 'final:3');
  });

  test("the layer's record names the stage and the chain of its result", async () => {
    const info = JSON.parse(
      (await strataOk(['inspect', 'final:3', '--json'], { store })).stdout,
    ) as {
      layers: Array<{ createdBy: string; copiedFrom?: { stage: string; chain: string } }>;
    };
    const copies = info.layers.filter((l) => /^COPY .*--from=/.test(l.createdBy));
    expect(copies.map((l) => l.copiedFrom)).toEqual([
      built.steps[2]?.copiedFrom,
      built.steps[3]?.copiedFrom,
    ]);
    expect(copies[0]?.copiedFrom?.stage).toBe('builder');
  });

  test('check compares the copy on the recorded result, and the builder stage on the build cache', async () => {
    const args = ['check', '-f', path.join(ctx, 'Stratafile'), '--apt-sources', sources];
    const r = await strata([...args, '--no-packages', '--json', 'final:3'], { store });
    expect([r.code, show(r)]).toEqual([0, show(r)]);
    const res = JSON.parse(r.stdout) as { upToDate: boolean; notes: string[] };
    expect(res.upToDate).toBe(true);
    expect(res.notes).toEqual([]);
    // A changed copy line is a changed step.
    fs.writeFileSync(
      path.join(ctx, 'Stratafile'),
      STRATAFILE.replace('/usr/local/bin/hello', '/usr/bin/hello'),
    );
    const stale = await strata([...args, '--no-packages', '--json', 'final:3'], { store });
    const staleRes = JSON.parse(stale.stdout) as {
      upToDate: boolean;
      reasons: Array<{ message: string; loc?: { line: number } }>;
    };
    expect(staleRes.upToDate).toBe(false);
    expect(staleRes.reasons[0]?.loc?.line).toBe(7);
    expect(staleRes.reasons[0]?.message).toContain(
      'COPY --from=builder /opt/out/hello /usr/bin/hello',
    );
  });
});

describe('COPY --from and Stratafile.lock', () => {
  test('the lock holds the stage only copied from, and --frozen holds the build to it', async () => {
    const ctx = buildContext(work, STRATAFILE, { 'hello.c': 'v1' });
    await build(ctx, 'locked:1');
    const lock = JSON.parse(fs.readFileSync(path.join(ctx, 'Stratafile.lock'), 'utf8')) as {
      stages: Array<{ name: string; steps: Array<{ instruction: string }> }>;
    };
    expect(lock.stages.map((st) => [st.name, st.steps.length])).toEqual([
      ['unused', 0],
      ['builder', 2],
      ['#2', 2],
    ]);
    const frozen = ['build', '-q', '--frozen', '--apt-sources', sources, ctx];
    const ok = await strata(frozen, { store });
    expect([ok.code, show(ok)]).toEqual([0, show(ok)]);
    // An edit of the builder stage, which only a COPY --from reads, is an edit --frozen refuses.
    fs.writeFileSync(
      path.join(ctx, 'Stratafile'),
      STRATAFILE.replace('echo junk', 'echo other junk'),
    );
    const r = await strata(frozen, { store });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${path.join(ctx, 'Stratafile')}:5:1: --frozen: RUN mkdir`);
    expect(r.stderr).toContain('is not in Stratafile.lock');
  });
});

test('in a multi-platform build, each platform copies from its own build of the stage', async () => {
  await strataOk(
    ['template', 'create', await foreignMinbaseTar('arm64'), '-t', 'base:arm64', '--name', 'base'],
    { store },
  );
  await strataOk(['tag', 'base:1', 'base:amd64'], { store });
  const ctx = buildContext(
    work,
    [
      'ARG TARGETARCH',
      'FROM base:${TARGETARCH} AS builder',
      'RUN dpkg --print-architecture > /opt/arch',
      'FROM base:${TARGETARCH}',
      'COPY --from=builder /opt/arch /etc/built-for',
      '',
    ].join('\n'),
  );
  const r = await strata(
    [
      'build',
      '-q',
      '--platform',
      'linux/amd64,linux/arm64',
      '--apt-sources',
      sources,
      '-t',
      'mp:1',
      ctx,
    ],
    { store },
  );
  expect([r.code, show(r)]).toEqual([0, show(r)]);
  for (const arch of ['amd64', 'arm64']) {
    const tar = path.join(work, `mp-${arch}.tar`);
    await strataOk(['flatten', 'mp:1', '--platform', `linux/${arch}`, '--rootfs', tar], { store });
    expect((await runOk('tar', ['-xOf', tar, 'etc/built-for'])).stdout).toBe(`${arch}\n`);
  }
});

describe('COPY --from errors name their place in the Stratafile', () => {
  test('a source the stage does not have', async () => {
    const ctx = buildContext(
      work,
      'FROM base:1 AS builder\nRUN mkdir -p /src\nFROM base:1\nCOPY --from=builder /src/nope /x\n',
    );
    const r = await strata(['build', '-q', '--apt-sources', sources, ctx], { store });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `${path.join(ctx, 'Stratafile')}:4:21: COPY --from=builder /src/nope: no such file in stage builder`,
    );
  });

  test('a stage that is defined later, and one that does not exist', async () => {
    const later = buildContext(
      work,
      'FROM base:1\nCOPY --from=builder /a /a\nFROM base:1 AS builder\nRUN true\n',
    );
    const r = await strata(['build', '-q', '--apt-sources', sources, later], { store });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `${path.join(later, 'Stratafile')}:2:6: COPY --from=builder refers to stage "builder", which is defined later (line 3)`,
    );
    const unknown = buildContext(work, 'FROM base:1\nCOPY --from=base:1 /etc/hostname /a\n');
    const u = await strata(['build', '-q', '--apt-sources', sources, unknown], { store });
    expect(u.code).not.toBe(0);
    expect(u.stderr).toContain(':2:6: COPY --from=base:1: no stage named "base:1"');
  });
});

describe('strata check looks into the stage a COPY --from reads', () => {
  let ctx: string;
  let args: string[];

  interface Checked {
    upToDate: boolean;
    reasons: Array<{ kind: string; message: string; loc?: { line: number } }>;
  }
  async function check(ref: string): Promise<{ code: number | null; res: Checked }> {
    const r = await strata([...args, '--no-packages', '--json', ref], { store });
    return { code: r.code, res: JSON.parse(r.stdout) as Checked };
  }

  beforeAll(async () => {
    ctx = buildContext(work, STRATAFILE, { 'hello.c': 'v5' });
    args = ['check', '-f', path.join(ctx, 'Stratafile'), '--apt-sources', sources];
    await build(ctx, 'final:5');
  });

  test('a changed file the builder copies makes the copies stale, at the builder step that reads it', async () => {
    expect((await check('final:5')).code).toBe(0);
    fs.writeFileSync(path.join(ctx, 'hello.c'), 'v6');
    const { code, res } = await check('final:5');
    expect(code).toBe(1);
    expect(res.upToDate).toBe(false);
    // Both copies read the builder; each is stale, at its own line, naming the builder's step.
    expect(res.reasons.map((r) => [r.kind, r.loc?.line])).toEqual([
      ['step', 7],
      ['step', 8],
    ]);
    for (const r of res.reasons) {
      expect(r.message).toContain('stage builder changed');
      expect(r.message).toContain(`${path.join(ctx, 'Stratafile')}:4:1: COPY hello.c /src/`);
      expect(r.message).toContain('is not in the build cache');
    }
    // The plain output says the same, one line each, and exits as stale.
    const plain = await strata([...args, '--no-packages', 'final:5'], { store });
    expect(plain.code).toBe(1);
    expect(plain.stdout).toContain('final:5 is stale');
    expect(plain.stdout).toContain(`${path.join(ctx, 'Stratafile')}:7:1: COPY --from=builder`);
  });

  test('a builder change a later build took is still a change for the older template', async () => {
    await build(ctx, 'final:6');
    expect((await check('final:6')).res.upToDate).toBe(true);
    const { code, res } = await check('final:5');
    expect(code).toBe(1);
    expect(res.reasons[0]?.loc?.line).toBe(7);
    expect(res.reasons[0]?.message).toMatch(
      /stage builder changed: it now gives sha256:[0-9a-f]{64}, the template copied sha256:[0-9a-f]{64}/,
    );
    // Back to what final:5 was built from: up to date again.
    fs.writeFileSync(path.join(ctx, 'hello.c'), 'v5');
    const back = await check('final:5');
    expect([back.code, back.res.reasons]).toEqual([0, []]);
  });

  test('without the build cache, check says it cannot tell rather than up to date', async () => {
    fs.writeFileSync(path.join(ctx, 'hello.c'), 'v6');
    expect((await check('final:6')).code).toBe(0);
    await strataOk(['gc', '--build-cache', '--all'], { store });
    const { code, res } = await check('final:6');
    expect(code).toBe(1);
    expect(res.upToDate).toBe(false);
    expect(res.reasons[0]?.message).toContain('cannot tell whether stage builder changed');
    expect(res.reasons[0]?.message).toContain(`${path.join(ctx, 'Stratafile')}:4:1: COPY hello.c`);
  });
});
