import type { Digest } from '@strata/oci';
import {
  checkFrozenHeads,
  checkFrozenPackages,
  checkFrozenSteps,
  lockedArgs,
  skippedStageLock,
  stagesNeeded,
} from './frozen';
import type { LockFile } from './lockfile';
import { BuildStepError } from './stage-keys';
import { parseStratafile } from './stratafile';

const FILE = '/ctx/Stratafile';
const LOCK = '/ctx/Stratafile.lock';
const digest = `sha256:${'a'.repeat(64)}` as Digest;

/** The lock a build of `lines` writes: each stage's name, FROM, ARG values and layer steps. */
function lockOf(lines: string[], buildArgs: Record<string, string> = {}): LockFile {
  return {
    lockfileVersion: 1,
    stages: parseStratafile(lines.join('\n'), FILE, buildArgs).stages.map((s) => ({
      name: s.name ?? `#${s.index}`,
      from: { ref: s.from.ref },
      ...(lockedArgs(s) ? { args: lockedArgs(s) } : {}),
      steps: s.steps
        .filter((i) =>
          ['BOOTSTRAP', 'INSTALL', 'REMOVE', 'UPGRADE', 'RUN', 'COPY'].includes(i.kind),
        )
        .map((i) => ({
          instruction: i.text,
          cacheKey: digest,
          layer: digest,
          packages: [],
          removed: [],
        })),
    })),
  };
}

/** What --frozen says of `lines` against the lock of `locked` (undefined: they agree). */
function frozen(
  locked: string[],
  lines: string[],
  opts: {
    target?: number;
    lockFile?: string;
    args?: Record<string, string>;
    lockedArgs?: Record<string, string>;
  } = {},
): string | undefined {
  const sf = parseStratafile(lines.join('\n'), FILE, opts.args);
  const built = sf.stages.slice(0, (opts.target ?? sf.stages.length - 1) + 1);
  try {
    const lock = lockOf(locked, opts.lockedArgs);
    checkFrozenHeads(built, lock, opts.lockFile ?? LOCK, built.length === sf.stages.length);
    checkFrozenSteps(built, lock, opts.lockFile ?? LOCK);
    return undefined;
  } catch (e) {
    if (!(e instanceof BuildStepError)) throw e;
    expect(e.hint).toBe('rebuild without --frozen to update Stratafile.lock');
    return e.message;
  }
}

const base = [
  'FROM base:v1 AS common',
  'ENV A=1',
  'COPY hello /etc/hello',
  'RUN echo a > /etc/a',
  'LABEL x=y',
  '',
  'FROM common',
  'INSTALL curl',
];

test('the Stratafile the lock was written from passes', () => {
  expect(frozen(base, base)).toBeUndefined();
});

test('instructions that make no layer are not in the lock, and may change', () => {
  const edited = base.map((l) => l.replace('ENV A=1', 'ENV A=2').replace('LABEL x=y', 'LABEL x=z'));
  expect(frozen(base, edited)).toBeUndefined();
});

test('an edited RUN line fails at that line, naming both texts', () => {
  const edited = base.map((l) => l.replace('echo a', 'echo b'));
  expect(frozen(base, edited)).toBe(
    `${FILE}:4:1: --frozen: RUN echo b > /etc/a is not in Stratafile.lock (it has RUN echo a > /etc/a here)`,
  );
});

test('an edited INSTALL line fails at that line', () => {
  const edited = base.map((l) => l.replace('INSTALL curl', 'INSTALL curl wget'));
  expect(frozen(base, edited)).toBe(
    `${FILE}:8:1: --frozen: INSTALL curl wget is not in Stratafile.lock (it has INSTALL curl here)`,
  );
});

test('a step the lock lacks: at the end of a stage, or inserted before one it has', () => {
  const appended = [...base, 'RUN true'];
  expect(frozen(base, appended)).toBe(
    `${FILE}:9:1: --frozen: RUN true is not in Stratafile.lock (it has no more steps in stage #1)`,
  );
  const inserted = [...base.slice(0, 3), 'RUN true', ...base.slice(3)];
  expect(frozen(base, inserted)).toBe(
    `${FILE}:4:1: --frozen: RUN true is not in Stratafile.lock (it has RUN echo a > /etc/a here, the Stratafile's next step)`,
  );
});

test("a step the lock has and the Stratafile no longer does: at the stage's last line", () => {
  const dropped = base.filter((l) => !l.startsWith('RUN'));
  expect(frozen(base, dropped)).toBe(
    `${FILE}:4:1: --frozen: Stratafile.lock has RUN echo a > /etc/a at the end of stage common, which the Stratafile no longer has`,
  );
  const droppedFirst = base.filter((l) => !l.startsWith('COPY'));
  expect(frozen(base, droppedFirst)).toBe(
    `${FILE}:3:1: --frozen: Stratafile.lock has COPY hello /etc/hello before RUN echo a > /etc/a, which the Stratafile no longer has`,
  );
  const emptied = base.filter((l) => !l.startsWith('INSTALL'));
  expect(frozen(base, emptied)).toBe(
    `${FILE}:7:1: --frozen: Stratafile.lock has INSTALL curl in stage #1, which the Stratafile no longer has`,
  );
});

test('a renamed stage, another FROM, an added stage and a dropped one fail at the FROM line', () => {
  expect(
    frozen(
      base,
      base.map((l) => l.replace('AS common', 'AS shared').replace('FROM common', 'FROM shared')),
    ),
  ).toBe(
    `${FILE}:1:1: --frozen: stage shared is not in Stratafile.lock (it has stage common here)`,
  );
  expect(
    frozen(
      base,
      base.map((l) => l.replace('base:v1', 'base:v2')),
    ),
  ).toBe(
    `${FILE}:1:1: --frozen: FROM base:v2 is not in Stratafile.lock (it has FROM base:v1 here)`,
  );
  expect(frozen(base, [...base, 'FROM common', 'RUN true'])).toBe(
    `${FILE}:9:1: --frozen: stage #2 is not in Stratafile.lock`,
  );
  expect(frozen(base, base.slice(0, 5))).toBe(
    `${FILE}:1:1: --frozen: Stratafile.lock has a stage #1 after this one, which the Stratafile no longer has`,
  );
});

test('a --target build holds only the stages up to the target to the lock', () => {
  const later = base.map((l) => l.replace('INSTALL curl', 'INSTALL wget'));
  expect(frozen(base, later, { target: 0 })).toBeUndefined();
  expect(
    frozen(
      base,
      base.map((l) => l.replace('echo a', 'echo b')),
      { target: 0 },
    ),
  ).toMatch(/:4:1: --frozen: RUN echo b/);
});

test('a stage ARG is held to the value the lock has: another --build-arg, an edited default, an ARG added or dropped', () => {
  const withArg = [
    'FROM base:v1',
    'ARG RELEASE=1.0',
    'ARG EXTRA',
    'RUN echo "$RELEASE" > /etc/release',
  ];
  expect(frozen(withArg, withArg)).toBeUndefined();
  expect(
    frozen(withArg, withArg, { args: { RELEASE: '2.0' }, lockedArgs: { RELEASE: '2.0' } }),
  ).toBeUndefined();
  expect(frozen(withArg, withArg, { args: { RELEASE: '2.0' } })).toBe(
    `${FILE}:2:1: --frozen: ARG RELEASE is "2.0", but Stratafile.lock has "1.0" (another --build-arg?)`,
  );
  expect(frozen(withArg, withArg, { lockedArgs: { EXTRA: 'x' } })).toBe(
    `${FILE}:3:1: --frozen: ARG EXTRA is unset, but Stratafile.lock has "x" (another --build-arg?)`,
  );
  expect(
    frozen(
      withArg,
      withArg.map((l) => l.replace('=1.0', '=1.1')),
    ),
  ).toMatch(/:2:1: --frozen: ARG RELEASE is "1\.1", but Stratafile\.lock has "1\.0"/);
  const added = [...withArg.slice(0, 3), 'ARG MORE=1', withArg[3] as string];
  expect(frozen(withArg, added)).toBe(
    `${FILE}:4:1: --frozen: ARG MORE is not in Stratafile.lock (its value there is not recorded)`,
  );
  expect(
    frozen(
      withArg,
      withArg.filter((l) => !l.startsWith('ARG EXTRA')),
    ),
  ).toBe(
    `${FILE}:1:1: --frozen: Stratafile.lock has ARG EXTRA in stage #0, which the Stratafile no longer declares`,
  );
  // A lock from a Stratafile without ARGs records none, and such a Stratafile passes.
  expect(lockOf(base).stages.every((s) => s.args === undefined)).toBe(true);
});

test("one platform's lock of a multi-platform build is named as itself", () => {
  const edited = base.map((l) => l.replace('echo a', 'echo b'));
  expect(frozen(base, edited, { lockFile: '/ctx/Stratafile.arm64.lock' })).toMatch(
    /is not in Stratafile\.arm64\.lock \(it has RUN echo a > \/etc\/a here\)$/,
  );
});

test('a step the mirror moved passes only with the packages of the lock, and the error says what differs', () => {
  const [ins] = parseStratafile('FROM base:1\nINSTALL curl\n', FILE).stages[0]?.steps ?? [];
  const check =
    (now: string[], locked: string[], lock = LOCK) =>
    () =>
      checkFrozenPackages(ins!, now, locked, lock);
  expect(check(['curl=8.0', 'libcurl4=8.0'], ['curl=8.0', 'libcurl4=8.0'])).not.toThrow();
  expect(check(['curl=8.1'], ['curl=8.0'])).toThrow(
    `${FILE}:2:1: --frozen: INSTALL curl would now install curl=8.1 where Stratafile.lock has curl=8.0`,
  );
  expect(check(['curl=8.0', 'libnew=1'], ['curl=8.0'], '/ctx/Stratafile.arm64.lock')).toThrow(
    'INSTALL curl would now also install libnew=1, which Stratafile.arm64.lock does not have',
  );
  expect(check(['curl=8.0'], ['curl=8.0', 'libgone=1'])).toThrow(
    'INSTALL curl would no longer install libgone=1, which Stratafile.lock has',
  );
  expect(check(['curl=8.1'], ['curl=8.0'])).toThrow(BuildStepError);
});

describe('stages a target needs', () => {
  const sf = parseStratafile(
    [
      'FROM base:v1 AS tools',
      'RUN false',
      'FROM base:v1 AS bc',
      'INSTALL build-essential',
      'FROM bc AS bc2',
      'RUN true',
      'FROM base:v1 AS app',
      'BUILDCHROOT bc2',
      'RUN true',
      'FROM app AS final',
      'RUN true',
    ].join('\n'),
    FILE,
  );
  test("the target, its FROM stages and its BUILDCHROOT's, and theirs; no other", () => {
    expect([...stagesNeeded(sf.stages, 4)].sort()).toEqual([1, 2, 3, 4]);
    expect([...stagesNeeded(sf.stages, 2)].sort()).toEqual([1, 2]);
    expect([...stagesNeeded(sf.stages, 0)]).toEqual([0]);
  });
  test('a stage that a needed COPY --from reads is needed, by name or by index, and what it needs', () => {
    const file = parseStratafile(
      [
        'FROM base:v1 AS unused',
        'RUN true',
        'FROM base:v1 AS tools',
        'RUN true',
        'FROM tools AS builder',
        'RUN make',
        'FROM base:v1 AS other',
        'RUN true',
        'FROM base:v1',
        'COPY --from=builder /out /opt/',
        'COPY --from=3 /x /opt/',
      ].join('\n'),
      FILE,
    );
    expect([...stagesNeeded(file.stages, 4)].sort()).toEqual([1, 2, 3, 4]);
    expect([...stagesNeeded(file.stages, 3)]).toEqual([3]);
  });
  test("a skipped stage keeps the lock's entry when it is that stage's, else gets one without steps", () => {
    const lock = lockOf(['FROM base:v1 AS tools', 'RUN false', 'FROM base:v1 AS app', 'RUN true']);
    const tools = sf.stages[0]!;
    expect(skippedStageLock(tools, lock)).toBe(lock.stages[0]);
    expect(skippedStageLock(sf.stages[1]!, lock)).toEqual({
      name: 'bc',
      from: { ref: 'base:v1' },
      steps: [],
    });
    expect(skippedStageLock(tools, undefined)).toEqual({
      name: 'tools',
      from: { ref: 'base:v1' },
      steps: [],
    });
  });
  test('--frozen checks only the stages built, each at its place in the file', () => {
    const lines = ['FROM base:v1 AS tools', 'RUN false', 'FROM base:v1 AS app', 'RUN true'];
    const lock = lockOf(lines);
    lock.stages[0] = { name: 'tools', from: { ref: 'base:v1' }, steps: [] };
    const file = parseStratafile(lines.join('\n'), FILE);
    const built = file.stages.filter((st) => stagesNeeded(file.stages, 1).has(st.index));
    expect(() => checkFrozenHeads(built, lock, LOCK, true)).not.toThrow();
    expect(() => checkFrozenSteps(built, lock, LOCK)).not.toThrow();
    expect(() => checkFrozenSteps(file.stages, lock, LOCK)).toThrow(/RUN false/);
  });
});
