import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Descriptor,
  Digest,
  ImageConfig,
  NotFoundError,
  StrataError,
  chainId,
  sha256,
} from '@strata/oci';
import { Store } from '@strata/store';
import { hostDebianArchitecture } from '@strata/tools';
import { makeSources } from '@strata/debian';
import { checkTemplate } from './check';
import {
  BuildStepError,
  StageKeys,
  StepScope,
  copyScope,
  envOfConfig,
  inheritScope,
  isLayerStep,
  stepArchitecture,
  startStage,
  stepEnv,
} from './stage-keys';
import { Instruction, Stage, parseStratafile } from './stratafile';

// No network and no dependence on the test files' owners: the apt index state and the context
// digest are stand-ins; everything else is the real key computation.
jest.mock('@strata/debian', () => ({
  ...jest.requireActual('@strata/debian'),
  indexState: jest.fn(async (s: { digest: string }) => ({
    digest: jest.requireActual('@strata/oci').sha256(`index:${s.digest}`),
    date: 1_700_000_000,
  })),
}));
jest.mock('./cache', () => ({
  ...jest.requireActual('./cache'),
  hashContextPaths: jest.fn((_context: string, rels: Array<string | { written: string }>) =>
    jest
      .requireActual('@strata/oci')
      .sha256(`ctx:${rels.map((r) => (typeof r === 'string' ? r : r.written)).join(',')}`),
  ),
}));

const TEXT = `ARG SUITE=bookworm
FROM scratch AS one
ARG SUITE
ARG X=1
BOOTSTRAP --variant=minbase $SUITE
ENV A=1 B="two words"
INSTALL curl
INSTALL curl=7.88.1-10
INSTALL ./debs/tool.deb
RUN echo hi
SOURCES my.list
UPGRADE
RUN echo after sources
COPY conf/app.conf /etc/app.conf
REMOVE tzdata
ENV A=3
ARG Y
LABEL foo=bar
RUN echo last

FROM one AS two
ARG Z=9
RUN echo two
INSTALL vim

FROM base:v1
ENV B=override
RUN echo three
UPGRADE
`;

/** ENV of the FROM template of the last stage. */
const BASE_ENV = ['PATH=/usr/bin:/bin', 'B=base', 'C=see'];
const BASE_DIFFS = [sha256('base0'), sha256('base1')];

/**
 * The keys `strata build` computed for TEXT before the key logic moved into stage-keys.ts (its
 * Builder, on layers with diffIDs sha256('layer<n>')). They must never change: they name
 * existing cache entries and are written to Stratafile.lock.
 */
const GOLDEN: Array<[stage: string, instruction: string, key: string]> = [
  [
    'one',
    'BOOTSTRAP --variant=minbase bookworm',
    'sha256:7a97a7c4a0468335310cd98cab84896b49d5ea1ea73d339ff5e7856ba3a41305',
  ],
  [
    'one',
    'INSTALL curl',
    'sha256:53a3ffb2dfe1282b79c690e9264eae9a6d3e92b6e4d7e2b25309905969bb68c5',
  ],
  [
    'one',
    'INSTALL curl=7.88.1-10',
    'sha256:76b386257c83295d7942a21c8d2bcf1c9a125b7ef6af2e7cf6a0fd915cc2d2d7',
  ],
  [
    'one',
    'INSTALL ./debs/tool.deb',
    'sha256:0af67d028a4ce87a53c0e939bdef764a0a7830a63c8f2335fa68c354d90675e8',
  ],
  ['one', 'RUN echo hi', 'sha256:b07c860ca445cbe16de5b07643c1445737d6e9081202f4a4e3247f59f72d52f9'],
  ['one', 'UPGRADE', 'sha256:350b30865bd600f4dfcd48094d1d111e86504aea0e01e74d7d88c631abc9a93d'],
  [
    'one',
    'RUN echo after sources',
    'sha256:745a0cbf6498c7a880017c29efc924c1a30d36c26d9280a956b3e4f0b8b350f0',
  ],
  [
    'one',
    'COPY conf/app.conf /etc/app.conf',
    'sha256:266c124c39dd4559fbb95a0a82d2fcaa7de996ef6723570592b152d6f8fe386d',
  ],
  [
    'one',
    'REMOVE tzdata',
    'sha256:480052d6427644050a6ea28fffeefa0c76811d7f648aec80818290e9a17b3305',
  ],
  [
    'one',
    'RUN echo last',
    'sha256:1142ce8f43b536edd56ef67429f09cbe0f41717b34187e7b7aef64da8b159632',
  ],
  [
    'two',
    'RUN echo two',
    'sha256:337db376926cec05a4b51e90a3daf2cd2a608a0c2c4f3ad39e2fb3b69933fdf8',
  ],
  ['two', 'INSTALL vim', 'sha256:d19adcf31d6f50d76ed10c205ed2b3b6e9bf3e8b22aa8edbb7f98fc8606b2b5e'],
  [
    '#2',
    'RUN echo three',
    'sha256:a4e3ce765329ea478e3a3b2e30e18bcf6d1110b6c38c6039ed098a395af4b74f',
  ],
  ['#2', 'UPGRADE', 'sha256:60c7ef9390d9797e0855775cb69f1d9fa4c40ad0262a3e5770bb99189d3aa359'],
];

let dir: string;
const file = () => path.join(dir, 'Stratafile');
const hostList = () => path.join(dir, 'host.list');

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-stage-keys-'));
  fs.writeFileSync(file(), TEXT);
  fs.writeFileSync(hostList(), 'deb http://deb.debian.org/debian bookworm main\n');
  fs.writeFileSync(path.join(dir, 'my.list'), 'deb [trusted=yes] http://127.0.0.1:8000/ ./\n');
  fs.mkdirSync(path.join(dir, 'conf'));
  fs.writeFileSync(path.join(dir, 'conf/app.conf'), 'x\n');
  fs.mkdirSync(path.join(dir, 'debs'));
  fs.writeFileSync(path.join(dir, 'debs/tool.deb'), 'not really a deb\n');
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const layerDiff = (n: number): Digest => sha256(`layer${n}`);

test('the keys of every step are the ones strata build has always made', async () => {
  const sf = parseStratafile(TEXT, file(), {});
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const scopes = new Map<string, { scope: StepScope; layers: Digest[] }>();
  const got: Array<[string, string, string]> = [];
  let n = 0;
  for (const stage of sf.stages) {
    const name = stage.name ?? `#${stage.index}`;
    const earlier = stage.from.refKind === 'stage' ? scopes.get(stage.from.ref) : undefined;
    let scope: StepScope;
    let layers: Digest[];
    if (earlier) {
      scope = inheritScope(earlier.scope);
      layers = [...earlier.layers];
    } else if (stage.from.refKind === 'scratch') {
      scope = { env: envOfConfig(undefined), args: new Map(), excludes: [] };
      layers = [];
    } else {
      scope = {
        env: envOfConfig({ config: { Env: BASE_ENV } } as ImageConfig),
        args: new Map(),
        excludes: [],
      };
      layers = [...BASE_DIFFS];
    }
    for (const ins of stage.steps) {
      if (await keys.apply(scope, ins)) continue;
      if (!isLayerStep(ins)) continue;
      const { key } = await keys.keyFor(scope, ins, chainId(layers));
      got.push([name, ins.text, key]);
      layers.push(layerDiff(n++));
    }
    scopes.set(name, { scope, layers });
  }
  expect(got).toEqual(GOLDEN);
});

test('scopes: ENV wins over ARG, a FROM stage passes on ENV and SOURCES but not ARGs', async () => {
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const sf = parseStratafile(TEXT, file(), {});
  const [one] = sf.stages as [Stage];
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  for (const ins of one.steps) await keys.apply(scope, ins);
  expect(stepEnv(scope)).toEqual([
    ['A', '3'],
    ['B', 'two words'],
    ['SUITE', 'bookworm'],
    ['X', '1'],
    ['Y', ''],
  ]);
  expect(scope.sources?.origin).toBe('my.list');
  const snap = copyScope(scope);
  scope.env.set('A', '4');
  expect(snap.env.get('A')).toBe('3');
  const child = inheritScope(scope);
  expect(child.args.size).toBe(0);
  expect(child.env.get('A')).toBe('4');
  expect(child.sources).toBe(scope.sources);
  expect((await keys.sourcesFor(child)).origin).toBe('my.list');
  expect((await keys.sourcesFor({ env: new Map(), args: new Map(), excludes: [] })).origin).toBe(
    hostList(),
  );
});

test('SOURCES outside the build context or missing from it is a located error', async () => {
  const keys = new StageKeys({ context: dir });
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  // The parser refuses a path that escapes the context; the engine checks again.
  const sources = (name: string): Instruction => ({
    kind: 'SOURCES',
    file: name,
    loc: { file: file(), line: 2, column: 1 },
    text: `SOURCES ${name}`,
  });
  await expect(keys.apply(scope, sources('../elsewhere.list'))).rejects.toThrow(
    /:2:1: SOURCES \.\.\/elsewhere\.list is outside the build context/,
  );
  await expect(keys.apply(scope, sources('nope.list'))).rejects.toBeInstanceOf(BuildStepError);
  expect(scope.sources).toBeUndefined();
});

test('SOURCES of a file that .strataignore leaves out is a located error', async () => {
  fs.writeFileSync(path.join(dir, 'left.list'), 'deb http://deb.debian.org/debian bookworm main\n');
  fs.writeFileSync(path.join(dir, '.strataignore'), '*.list\n');
  const keys = new StageKeys({ context: dir });
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  const ins: Instruction = {
    kind: 'SOURCES',
    file: 'left.list',
    loc: { file: file(), line: 2, column: 1 },
    text: 'SOURCES left.list',
  };
  await expect(keys.apply(scope, ins)).rejects.toThrow(
    /:2:1: SOURCES left\.list: not in the build context: \S*\.strataignore excludes it$/,
  );
  fs.rmSync(path.join(dir, '.strataignore'));
  await expect(new StageKeys({ context: dir }).apply(scope, ins)).resolves.toBe(true);
});

test('EXCLUDE changes the keys of the steps after it, and of those only', async () => {
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const loc = { file: file(), line: 1, column: 1 };
  const run: Instruction = { kind: 'RUN', command: 'true', loc, text: 'RUN true' } as Instruction;
  const exclude = (globs: string[]): Instruction =>
    ({ kind: 'EXCLUDE', globs, loc, text: `EXCLUDE ${globs.join(' ')}` }) as Instruction;
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  const before = (await keys.keyFor(scope, run, undefined)).key;
  expect(await keys.apply(scope, exclude(['usr/share/doc/**']))).toBe(true);
  const after = (await keys.keyFor(scope, run, undefined)).key;
  expect(after).not.toBe(before);
  const other: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  await keys.apply(other, exclude(['usr/share/man/**']));
  expect((await keys.keyFor(other, run, undefined)).key).not.toBe(after);
  // A later stage inherits the globs, so its keys carry them too.
  expect((await keys.keyFor(inheritScope(scope), run, undefined)).key).toBe(after);
});

test("COPY --from is keyed on its source stage's chain and its own text, not on the context", async () => {
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const sf = parseStratafile(
    'FROM base AS b\nRUN make\nFROM base\nCOPY --from=b /out /opt/\nCOPY --from=b /other /opt/\n',
    file(),
  );
  const [copy, other] = sf.stages[1]!.steps;
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  const one = sha256('chain one');
  const key = (ins: Instruction, chain?: Digest) => keys.keyFor(scope, ins, undefined, chain);
  const a = await key(copy!, one);
  expect(a.fromChain).toBe(one);
  expect(a.copy).toBeUndefined();
  expect((await key(copy!, one)).key).toBe(a.key);
  expect((await key(copy!, sha256('chain two'))).key).not.toBe(a.key);
  expect((await key(other!, one)).key).not.toBe(a.key);
  await expect(key(copy!)).rejects.toThrow(/:4:6: COPY --from=b: the stage has no layers/);
});

test('a COPY here-document is keyed on its lines and its substituted content, not on the context', async () => {
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const copyOf = (text: string) => {
    const ins = parseStratafile(`FROM base\n${text}`, file()).stages[0]!.steps.at(-1)!;
    if (ins.kind !== 'COPY') throw new Error('not a COPY');
    return ins;
  };
  const scope = (): StepScope => ({ env: new Map(), args: new Map([['N', 'a']]), excludes: [] });
  const hashed = jest.mocked(
    jest.requireMock<typeof import('./cache')>('./cache').hashContextPaths,
  );
  hashed.mockClear();
  const ins = copyOf('ARG N=a\nCOPY <<EOF /etc/x.conf\nn=$N\nEOF');
  const a = await keys.keyFor(scope(), ins, undefined);
  expect(a.copy).toEqual([]);
  expect(hashed).not.toHaveBeenCalled();
  expect(
    (await keys.keyFor(scope(), copyOf('ARG N=a\nCOPY <<EOF /etc/x.conf\nn=$N\nEOF'), undefined))
      .key,
  ).toBe(a.key);
  // A changed line, or another content for the same lines (an ARG that went into the file).
  expect(
    (await keys.keyFor(scope(), copyOf('ARG N=a\nCOPY <<EOF /etc/x.conf\nn=${N}\nEOF'), undefined))
      .key,
  ).not.toBe(a.key);
  const other = { ...ins, heredocs: [{ ...ins.heredocs![0]!, content: 'n=b\n' }] };
  expect((await keys.keyFor(scope(), other, undefined)).key).not.toBe(a.key);
  // Mixed with a context source, both are in the key.
  const mixed = copyOf('COPY <<EOF conf/app.conf /etc/\nx\nEOF');
  const m = await keys.keyFor(scope(), mixed, undefined);
  expect(m.copy?.map((c) => c.written)).toEqual(['conf/app.conf']);
  expect(hashed).toHaveBeenCalledTimes(1);
  const changed = { ...mixed, heredocs: [{ ...mixed.heredocs![0]!, content: 'y\n' }] };
  expect((await keys.keyFor(scope(), changed, undefined)).key).not.toBe(m.key);
});

test("a stage's EXCLUDE holds from its first step, wherever it stands in the stage", async () => {
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const sf = parseStratafile(
    'FROM base\nRUN true\nEXCLUDE usr/share/doc/**\nRUN false\nEXCLUDE usr/share/doc/** opt/x\n',
    file(),
    {},
  );
  const steps = (sf.stages[0] as Stage).steps;
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  startStage(scope, steps);
  expect(scope.excludes).toEqual(['usr/share/doc/**', 'opt/x']);
  // The EXCLUDE lines themselves then change nothing: every step of the stage has one key scope.
  const first = (await keys.keyFor(scope, steps[0] as Instruction, undefined)).key;
  for (const ins of steps) await keys.apply(scope, ins);
  expect(scope.excludes).toEqual(['usr/share/doc/**', 'opt/x']);
  expect((await keys.keyFor(scope, steps[0] as Instruction, undefined)).key).toBe(first);
});

/** The keys of TEXT's stage `two` (BOOTSTRAP aside), in a scope of Debian architecture `arch`. */
async function keysOfTwo(arch: string | undefined): Promise<Array<[string, string, string]>> {
  const sf = parseStratafile(TEXT, file(), {});
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const scope: StepScope = {
    env: new Map(),
    args: new Map(),
    excludes: [],
    ...(arch !== undefined ? { debArch: arch } : {}),
  };
  const got: Array<[string, string, string]> = [];
  const layers: Digest[] = [];
  for (const stage of sf.stages.slice(0, 2)) {
    for (const ins of stage.steps) {
      if (await keys.apply(scope, ins)) continue;
      if (!isLayerStep(ins)) continue;
      got.push([
        stage.name as string,
        ins.text,
        (await keys.keyFor(scope, ins, chainId(layers))).key,
      ]);
      layers.push(layerDiff(layers.length));
    }
    Object.assign(scope, inheritScope(scope));
  }
  return got;
}

test('the same steps on the same parent layers never share a key across architectures', async () => {
  const amd64 = await keysOfTwo('amd64');
  const arm64 = await keysOfTwo('arm64');
  const armhf = await keysOfTwo('armhf');
  // Every kind of layer step: BOOTSTRAP, INSTALL (by name, pinned, local .deb), RUN, UPGRADE,
  // COPY, REMOVE.
  expect(new Set(amd64.map(([, t]) => t.split(' ')[0]))).toEqual(
    new Set(['BOOTSTRAP', 'INSTALL', 'RUN', 'UPGRADE', 'COPY', 'REMOVE']),
  );
  const all = [...amd64, ...arm64, ...armhf].map(([, , k]) => k);
  expect(new Set(all).size).toBe(all.length);
  // A template that records no architecture is amd64, as its image config says; and amd64 keys
  // are those strata build made before it built for other architectures.
  expect(await keysOfTwo(undefined)).toEqual(amd64);
  const golden = GOLDEN.filter(([s]) => s === 'one' || s === 'two');
  expect(amd64.slice(1)).toEqual(golden.slice(1));
});

test('BOOTSTRAP builds for its --architecture, else the stage architecture, else the host one', () => {
  const loc = { file: file(), line: 1, column: 1 };
  const boot = (architecture?: string): Instruction =>
    ({
      kind: 'BOOTSTRAP',
      suite: 'bookworm',
      include: [],
      components: [],
      ...(architecture ? { architecture } : {}),
      loc,
      text: 'BOOTSTRAP bookworm',
    }) as Instruction;
  const run = { kind: 'RUN', command: 'true', loc, text: 'RUN true' } as Instruction;
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  const host = { x64: 'amd64', arm64: 'arm64' }[process.arch as string];
  expect(stepArchitecture(scope, boot('arm64'))).toBe('arm64');
  expect(stepArchitecture(scope, boot('armhf,arm64'))).toBe('armhf');
  expect(stepArchitecture(scope, boot())).toBe(host ?? process.arch);
  expect(stepArchitecture({ ...scope, debArch: 'armhf' }, boot())).toBe('armhf');
  expect(stepArchitecture({ ...scope, debArch: 'arm64' }, run)).toBe('arm64');
  expect(stepArchitecture(scope, run)).toBe('amd64');
});

/** A store holding just what checkTemplate reads: three templates built from TEXT. */
function fakeStore(
  golden: Array<[string, string, string]>,
  arch = 'amd64',
): {
  store: Store;
  configs: Map<string, ImageConfig>;
  two: Descriptor;
  refs: Map<string, Descriptor>;
} {
  const configs = new Map<string, ImageConfig>();
  const image = (
    name: string,
    diffIds: Digest[],
    keyed: Array<[string, string, string] | undefined>,
    env: string[],
    baseChain: Array<{ name: string; ref: string; digest: Digest }>,
  ): Descriptor => {
    const digest = sha256(`image:${name}`);
    configs.set(digest, {
      architecture: arch,
      os: 'linux',
      config: { Env: env },
      rootfs: { type: 'layers', diff_ids: diffIds },
      strata: {
        layers: diffIds.map((diffId, i) => {
          const k = keyed[i];
          return k ? { diffId, createdBy: k[1], cacheKey: k[2] } : { diffId, createdBy: 'base' };
        }),
        baseChain,
        packages: [],
        architecture: arch,
      },
    } as unknown as ImageConfig);
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1 };
  };
  const ofStages = (names: string[]) => golden.filter(([s]) => names.includes(s));
  const twoSteps = ofStages(['one', 'two']);
  const two = image(
    'two',
    twoSteps.map((_, i) => layerDiff(i)),
    twoSteps,
    [],
    [],
  );
  const base = image('base', BASE_DIFFS, [], BASE_ENV, []);
  const last = image(
    'last',
    [...BASE_DIFFS, layerDiff(12), layerDiff(13)],
    [undefined, undefined, ...ofStages(['#2'])],
    [],
    [{ name: 'base', ref: 'base:v1', digest: base.digest }],
  );
  const refs = new Map<string, Descriptor>([
    ['two:v1', two],
    ['base:v1', base],
    ['last:v1', last],
  ]);
  for (const d of [two, base, last]) refs.set(d.digest, d);
  const store = {
    root: dir,
    resolve: async (ref: string) => {
      const d = refs.get(ref);
      if (!d) throw new NotFoundError(`no ${ref}`);
      return d;
    },
    selectImage: async (d: Descriptor) => ({ descriptor: d }),
    readManifest: async (d: Descriptor) => ({ config: d.digest }),
    readConfig: async (digest: Digest) => configs.get(digest),
  } as unknown as Store;
  return { store, configs, two, refs };
}

test('strata check recomputes the keys strata build made', async () => {
  const { store, configs, two } = fakeStore(GOLDEN);
  const opts = { file: file(), aptSources: hostList(), noPackages: true };
  const rTwo = await checkTemplate(store, 'two:v1', { ...opts, target: 'two' });
  expect(rTwo.reasons).toEqual([]);
  expect(rTwo.upToDate).toBe(true);
  const rLast = await checkTemplate(store, 'last:v1', opts);
  expect(rLast.reasons).toEqual([]);

  // A key that differs is reported, with why.
  const meta = (configs.get(two.digest) as ImageConfig).strata as NonNullable<
    ImageConfig['strata']
  >;
  for (const i of [1, 4, 7]) {
    meta.layers[i] = { ...meta.layers[i], cacheKey: sha256('other') } as (typeof meta.layers)[0];
  }
  const stale = await checkTemplate(store, 'two:v1', { ...opts, target: 'two' });
  expect(stale.reasons.map((r) => r.message)).toEqual([
    'INSTALL curl: changed: the apt indices changed since the build (or an ARG/ENV value did)',
    'RUN echo hi: changed: an ARG/ENV value or the apt sources changed',
    'COPY conf/app.conf /etc/app.conf: changed: its sources in the build context or an ARG/ENV value changed',
  ]);

  // A template that records its apt sources says when the check's are not those (a check run
  // without the build's --apt-sources), rather than blaming the indices.
  meta.aptSources = ['deb http://snapshot.example/debian bookworm main'];
  const elsewhere = await checkTemplate(store, 'two:v1', { ...opts, target: 'two' });
  const notTheBuilds = `changed: its apt sources are not the build's: ${hostList()} has "deb http://deb.debian.org/debian bookworm main", which the template did not use (give check the build's --apt-sources)`;
  expect(elsewhere.reasons.map((r) => r.message)).toEqual([
    `INSTALL curl: ${notTheBuilds}`,
    `RUN echo hi: ${notTheBuilds}`,
    'COPY conf/app.conf /etc/app.conf: changed: its sources in the build context or an ARG/ENV value changed',
  ]);
  meta.aptSources = ['deb http://deb.debian.org/debian bookworm main'];
  const same = await checkTemplate(store, 'two:v1', { ...opts, target: 'two' });
  expect(same.reasons.map((r) => r.message)).toEqual(stale.reasons.map((r) => r.message));
});

test('strata check on a template whose base is gone says only that, not that every step changed', async () => {
  const { store, refs } = fakeStore(GOLDEN);
  const opts = { file: file(), aptSources: hostList(), noPackages: true };
  const base = refs.get('base:v1') as Descriptor;
  refs.delete('base:v1');
  refs.delete(base.digest);
  const r = await checkTemplate(store, 'last:v1', opts);
  // Without the base's ENV, RUN echo three and UPGRADE would be "changed" too.
  expect(r.reasons.map((x) => x.message)).toEqual([
    'FROM base:v1 no longer resolves: no base:v1; its steps were not compared (their keys hold the base ENV)',
  ]);
  expect(r.upToDate).toBe(false);
  // The base digest the template was built on, still in the store, gives the steps their ENV.
  refs.set(base.digest, base);
  const kept = await checkTemplate(store, 'last:v1', opts);
  expect(kept.reasons.map((x) => x.message)).toEqual([
    'FROM base:v1 no longer resolves: no base:v1',
  ]);
});

test('a BOOTSTRAP without --architecture is keyed by the platform being built, and only then', async () => {
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const sf = parseStratafile(
    'FROM scratch\nBOOTSTRAP --variant=minbase bookworm\nFROM scratch\nBOOTSTRAP --architecture=arm64 bookworm\n',
    file(),
    {},
  );
  const [plain, explicit] = sf.stages.map((s) => s.steps[0] as Instruction);
  const key = async (ins: Instruction, debArch?: string) =>
    (
      await keys.keyFor(
        { env: new Map(), args: new Map(), excludes: [], ...(debArch ? { debArch } : {}) },
        ins,
        undefined,
      )
    ).key;
  // Without a platform asked for, BOOTSTRAP builds the host's architecture: asking for that one
  // gives the key it had. Another architecture is another root.
  const none = await key(plain as Instruction);
  const host = await key(plain as Instruction, hostDebianArchitecture());
  const arm = await key(plain as Instruction, 'arm64');
  const i386 = await key(plain as Instruction, 'i386');
  expect(host).toBe(none);
  expect(new Set([host, arm, i386]).size).toBe(3);
  expect(await key(plain as Instruction, 'arm64')).toBe(arm);
  // --architecture is in the instruction's text already.
  expect(await key(explicit as Instruction, 'arm64')).toBe(await key(explicit as Instruction));
  // copyScope keeps it, as a step's scope is copied.
  expect(
    copyScope({ env: new Map(), args: new Map(), excludes: [], debArch: 'arm64' }).debArch,
  ).toBe('arm64');
});

test('strata check recomputes the keys of an arm64 build, and tells them from amd64 ones', async () => {
  const arm64 = await keysOfTwo('arm64');
  const opts = { file: file(), aptSources: hostList(), noPackages: true, target: 'two' };
  // The template records arm64: check recomputes every step as arm64, BOOTSTRAP included (it
  // has no --architecture, and made what the template records).
  const { store } = fakeStore(arm64, 'arm64');
  const r = await checkTemplate(store, 'two:v1', opts);
  expect(r.reasons).toEqual([]);
  expect(r.upToDate).toBe(true);
  // The same keys on a template that says amd64 are all stale.
  const { store: amd } = fakeStore(arm64, 'amd64');
  const stale = await checkTemplate(amd, 'two:v1', opts);
  expect(stale.reasons).toHaveLength(arm64.length);
});

test("an INSTALL's local .debs are read as COPY's sources: globs expanded, symlinks followed inside the context and refused out of it", async () => {
  const keys = new StageKeys({ context: dir, aptSources: hostList() });
  const scope: StepScope = { env: new Map(), args: new Map(), excludes: [] };
  fs.mkdirSync(path.join(dir, 'pool'));
  fs.writeFileSync(path.join(dir, 'pool/agent_2.0_all.deb'), 'agent\n');
  fs.symlinkSync('../pool/agent_2.0_all.deb', path.join(dir, 'debs/agent.deb'));
  const install = (line: string): Instruction =>
    parseStratafile(`FROM base:v1\n${line}\n`, file(), {}).stages[0]!.steps[0]!;
  const copyOf = async (line: string) =>
    (await keys.keyFor(scope, install(line), undefined)).copy?.map((c) => c.path);
  // apt reads the file the link leads to: a link with an absolute target would not resolve in
  // the chroot, and the key must hash the file, not the link's text.
  expect(await copyOf('INSTALL curl ./debs/agent.deb')).toEqual(['pool/agent_2.0_all.deb']);
  expect(await copyOf('INSTALL ./debs/*.deb')).toEqual(['pool/agent_2.0_all.deb', 'debs/tool.deb']);
  expect(await copyOf('INSTALL curl')).toBeUndefined();
  fs.writeFileSync(path.join(os.tmpdir(), 'strata-outside.deb'), 'x');
  fs.symlinkSync(path.join(os.tmpdir(), 'strata-outside.deb'), path.join(dir, 'debs/evil.deb'));
  await expect(
    keys.keyFor(scope, install('INSTALL curl ./debs/evil.deb'), undefined),
  ).rejects.toThrow(/:2:14: \.\/debs\/evil\.deb escapes the build context/);
  await expect(keys.keyFor(scope, install('INSTALL ./debs/none-*.deb'), undefined)).rejects.toThrow(
    /:2:9: \.\/debs\/none-\*\.deb matches nothing in the build context/,
  );
});

describe('BuildStepError', () => {
  const loc = { file: '/ctx/Stratafile', line: 1, column: 1 };

  test('keeps the code of the error it wraps, so that --json tells a missing tag from a failed step', () => {
    for (const code of ['NOT_FOUND', 'UNAVAILABLE', 'UNAUTHORIZED', 'NO_SPACE'] as const) {
      const e = new BuildStepError(loc, 'FROM x: y', { cause: new StrataError(code, 'y') });
      expect([e.code, e.message, e.loc]).toEqual([code, '/ctx/Stratafile:1:1: FROM x: y', loc]);
    }
  });

  test('is TOOL_FAILED for a step that failed on its own, or a bad value in the Stratafile', () => {
    expect(new BuildStepError(loc, 'RUN failed with exit code 3').code).toBe('TOOL_FAILED');
    expect(new BuildStepError(loc, 'x', { cause: new Error('x') }).code).toBe('TOOL_FAILED');
    const bad = new BuildStepError(loc, 'x', { cause: new StrataError('INVALID_ARGUMENT', 'x') });
    expect(bad.code).toBe('TOOL_FAILED');
  });
});

test("apt sources given as read are the keys' own: the file changing after it was read changes no key", async () => {
  const scope: StepScope = { env: envOfConfig(undefined), args: new Map(), excludes: [] };
  const run = parseStratafile('FROM base:v1\nRUN echo hi\n', file(), {}).stages[0]?.steps[0];
  if (!run) throw new Error('no RUN');
  const before = await new StageKeys({ context: dir, aptSources: hostList() }).keyFor(
    scope,
    run,
    undefined,
  );
  const read = makeSources(fs.readFileSync(hostList(), 'utf8'), hostList());
  fs.writeFileSync(hostList(), 'deb http://deb.debian.org/debian trixie main\n');
  const keys = new StageKeys({ context: dir, aptSources: read });
  expect((await keys.keyFor(scope, run, undefined)).key).toBe(before.key);
  expect(await keys.sourcesFor(scope)).toBe(read);
});
