import { ParseError } from '@strata/oci';
import { Instruction, parseStratafile, quoteWord, Stratafile } from './stratafile';

const F = 'Stratafile';

function parse(src: string, args?: Record<string, string>): Stratafile {
  return parseStratafile(src, F, args);
}

/** Steps of the only (or given) stage. */
function steps(src: string, args?: Record<string, string>, stage = 0): Instruction[] {
  const s = parse(src, args).stages[stage];
  if (!s) throw new Error(`no stage ${stage}`);
  return s.steps;
}

function step<K extends Instruction['kind']>(
  src: string,
  kind: K,
  args?: Record<string, string>,
): Extract<Instruction, { kind: K }> {
  const found = steps(src, args)
    .reverse()
    .find((s) => s.kind === kind);
  if (!found) throw new Error(`no ${kind}`);
  return found as Extract<Instruction, { kind: K }>;
}

function parseError(src: string, args?: Record<string, string>): ParseError {
  try {
    parse(src, args);
  } catch (e) {
    if (e instanceof ParseError) return e;
    throw e;
  }
  throw new Error('expected a ParseError');
}

/** Assert the error is at line:column and its message contains `text`. */
function expectError(
  src: string,
  line: number,
  column: number,
  text: string,
  args?: Record<string, string>,
): void {
  const e = parseError(src, args);
  expect(e.message).toMatch(new RegExp(`^${F}:${line}:${column}: `));
  expect(e.message).toContain(text);
  expect(e.code).toBe('PARSE_ERROR');
  expect([e.file, e.line, e.column]).toEqual([F, line, column]);
}

const BASE = 'FROM base\n';

describe('instructions', () => {
  test('FROM with every kind of reference', () => {
    const sf = parse(
      [
        'FROM scratch AS boot',
        'BOOTSTRAP bookworm',
        'FROM ./base.tmpl.img AS file1',
        'FROM ../up/base.tar',
        'FROM /abs/base.tmpl.img',
        'FROM base:1.0',
        'FROM registry.example.com:5000/team/base:2@sha256:' + 'a'.repeat(64),
        'FROM boot AS derived',
      ].join('\n'),
    );
    expect(sf.stages.map((s) => [s.index, s.name, s.from.ref, s.from.refKind])).toEqual([
      [0, 'boot', 'scratch', 'scratch'],
      [1, 'file1', './base.tmpl.img', 'file'],
      [2, undefined, '../up/base.tar', 'file'],
      [3, undefined, '/abs/base.tmpl.img', 'file'],
      [4, undefined, 'base:1.0', 'local'],
      [5, undefined, `registry.example.com:5000/team/base:2@sha256:${'a'.repeat(64)}`, 'registry'],
      [6, 'derived', 'boot', 'stage'],
    ]);
    expect(sf.stages[0]?.from).toEqual({
      kind: 'FROM',
      ref: 'scratch',
      refKind: 'scratch',
      stage: 'boot',
      loc: { file: F, line: 1, column: 1 },
      text: 'FROM scratch AS boot',
    });
    expect(sf.stages[4]?.from.text).toBe('FROM base:1.0');
    expect(sf.stages[4]?.from.stage).toBeUndefined();
  });

  test('keywords are case-insensitive, AS too; text is upper-case', () => {
    const sf = parse('from base as app\ninstall curl\nRun echo hi');
    expect(sf.stages[0]?.from.text).toBe('FROM base AS app');
    expect(sf.stages[0]?.steps.map((s) => s.text)).toEqual(['INSTALL curl', 'RUN echo hi']);
  });

  test('BOOTSTRAP with all flags, text sorts flags', () => {
    const b = step(
      'FROM scratch\nBOOTSTRAP --variant=minbase --mirror=http://deb.debian.org/debian --include=curl,ca-certificates --components=main,contrib --architecture=arm64 bookworm',
      'BOOTSTRAP',
    );
    expect(b).toEqual({
      kind: 'BOOTSTRAP',
      suite: 'bookworm',
      variant: 'minbase',
      include: ['curl', 'ca-certificates'],
      components: ['main', 'contrib'],
      mirror: 'http://deb.debian.org/debian',
      architecture: 'arm64',
      loc: { file: F, line: 2, column: 1 },
      text: 'BOOTSTRAP --architecture=arm64 --components=main,contrib --include=curl,ca-certificates --mirror=http://deb.debian.org/debian --variant=minbase bookworm',
    });
    const plain = step('FROM scratch\nBOOTSTRAP bookworm', 'BOOTSTRAP');
    expect(plain).toMatchObject({
      suite: 'bookworm',
      include: [],
      components: [],
      text: 'BOOTSTRAP bookworm',
    });
    expect(plain.variant).toBeUndefined();
  });

  test('BOOTSTRAP may follow ARGs in a scratch stage', () => {
    const sf = parse('ARG SUITE=bookworm\nFROM scratch\nARG SUITE\nBOOTSTRAP $SUITE\nINSTALL curl');
    expect(sf.stages[0]?.steps.map((s) => s.text)).toEqual([
      'ARG SUITE',
      'BOOTSTRAP bookworm',
      'INSTALL curl',
    ]);
  });

  test('INSTALL packages, versions, local debs, --recommends', () => {
    const i = step(
      BASE +
        'INSTALL --recommends curl openssh-server=1:9.2p1-2+deb12u3 libc6:armhf ./debs/../debs/app_1.0_all.deb tool.deb',
      'INSTALL',
    );
    expect(i.packages).toEqual([
      { name: 'curl' },
      { name: 'openssh-server', version: '1:9.2p1-2+deb12u3' },
      { name: 'libc6:armhf' },
    ]);
    expect(i.debs).toEqual(['./debs/app_1.0_all.deb', './tool.deb']);
    expect(i.recommends).toBe(true);
    expect(i.text).toBe(
      'INSTALL --recommends curl openssh-server=1:9.2p1-2+deb12u3 libc6:armhf ./debs/app_1.0_all.deb ./tool.deb',
    );
    expect(step(BASE + 'INSTALL curl', 'INSTALL')).toMatchObject({
      recommends: false,
      debs: [],
      text: 'INSTALL curl',
    });
  });

  test('REMOVE and UPGRADE', () => {
    expect(step(BASE + 'REMOVE --strict-remove nano vim-tiny', 'REMOVE')).toMatchObject({
      packages: ['nano', 'vim-tiny'],
      strict: true,
      text: 'REMOVE --strict-remove nano vim-tiny',
    });
    expect(step(BASE + 'REMOVE nano', 'REMOVE').strict).toBe(false);
    expect(step(BASE + 'UPGRADE', 'UPGRADE')).toMatchObject({ packages: [], text: 'UPGRADE' });
    expect(step(BASE + 'UPGRADE openssl libssl3', 'UPGRADE').packages).toEqual([
      'openssl',
      'libssl3',
    ]);
  });

  test('RUN shell form is verbatim, without substitution', () => {
    const r = step(BASE + 'ENV X=1\nRUN echo "$X  ${Y:-z}" \'a   b\'  ', 'RUN');
    expect(r.command).toBe('echo "$X  ${Y:-z}" \'a   b\'');
    expect(r.text).toBe('RUN echo "$X  ${Y:-z}" \'a   b\'');
  });

  test('RUN exec form', () => {
    const r = step(BASE + 'RUN [ "/bin/sh", "-c", "echo $HOME \\"q\\"" ]', 'RUN');
    expect(r.command).toEqual(['/bin/sh', '-c', 'echo $HOME "q"']);
    expect(r.text).toBe('RUN ["/bin/sh","-c","echo $HOME \\"q\\""]');
    // Not valid JSON: shell form, as in Docker (a shell test command starts with "[").
    expect(step(BASE + 'RUN [ -f /etc/x ] && echo y', 'RUN').command).toBe(
      '[ -f /etc/x ] && echo y',
    );
    expect(step(BASE + "RUN ['a']", 'RUN').command).toBe("['a']");
  });

  test('COPY with flags, several sources, relative dest', () => {
    const c = step(BASE + 'COPY --chmod=755 --chown=app:staff bin/a ./bin/b opt/app/', 'COPY');
    expect(c).toMatchObject({
      sources: ['bin/a', './bin/b'],
      dest: '/opt/app/',
      chown: 'app:staff',
      chmod: 0o755,
    });
    expect(c.text).toBe('COPY --chmod=0755 --chown=app:staff bin/a ./bin/b /opt/app/');
    const one = step(BASE + 'COPY conf/app.conf /etc/app/../app.conf', 'COPY');
    expect(one).toMatchObject({
      sources: ['conf/app.conf'],
      dest: '/etc/app.conf',
      text: 'COPY conf/app.conf /etc/app.conf',
    });
    expect(one.chown).toBeUndefined();
    expect(one.chmod).toBeUndefined();
    expect(step(BASE + 'COPY --chown=1000 a /a', 'COPY').chown).toBe('1000');
  });

  test('COPY JSON form, with substitution in elements', () => {
    const c = step(BASE + 'ENV D=/srv\nCOPY --chmod=0644 ["my file", "b", "$D/"]', 'COPY');
    expect(c).toMatchObject({ sources: ['my file', 'b'], dest: '/srv/', chmod: 0o644 });
    expect(c.text).toBe("COPY --chmod=0644 'my file' b /srv/");
  });

  test('ENV: key=value pairs, quoting, legacy form', () => {
    expect(step(BASE + 'ENV A=1 B="two words" C=\'$lit\' D=', 'ENV')).toMatchObject({
      vars: [
        ['A', '1'],
        ['B', 'two words'],
        ['C', '$lit'],
        ['D', ''],
      ],
      text: "ENV A=1 B='two words' C='$lit' D=''",
    });
    expect(step(BASE + 'ENV GREETING hello   big "world"  ', 'ENV')).toMatchObject({
      vars: [['GREETING', 'hello   big world']],
      text: "ENV GREETING='hello   big world'",
    });
  });

  test('ENV values within one instruction see the environment before it (as in Docker)', () => {
    const s = steps(BASE + 'ENV A=old\nENV A=new B=$A');
    expect(s[1]).toMatchObject({
      vars: [
        ['A', 'new'],
        ['B', 'old'],
      ],
    });
  });

  test('ARG with and without default, build args override', () => {
    const sf = parse(BASE + 'ARG A\nARG B=dflt\nARG C=x\nRUN echo', { C: 'given' });
    expect(sf.stages[0]?.steps.slice(0, 3)).toEqual([
      { kind: 'ARG', name: 'A', loc: { file: F, line: 2, column: 1 }, text: 'ARG A' },
      {
        kind: 'ARG',
        name: 'B',
        default: 'dflt',
        value: 'dflt',
        loc: { file: F, line: 3, column: 1 },
        text: 'ARG B=dflt',
      },
      {
        kind: 'ARG',
        name: 'C',
        default: 'x',
        value: 'given',
        loc: { file: F, line: 4, column: 1 },
        text: 'ARG C=x',
      },
    ]);
  });

  test('LABEL with quoted keys and values', () => {
    expect(
      step(BASE + 'LABEL org.opencontainers.image.title="My image" "with space"=1 empty=', 'LABEL'),
    ).toMatchObject({
      labels: [
        ['org.opencontainers.image.title', 'My image'],
        ['with space', '1'],
        ['empty', ''],
      ],
      text: "LABEL org.opencontainers.image.title='My image' 'with space'=1 empty=''",
    });
  });

  test('FEATURE, EXCLUDE, SOURCES, BUILDCHROOT', () => {
    const s = steps(
      'FROM base AS bc\nFROM base\nFEATURE ssh wifi\nEXCLUDE /opt/secret/** usr/share/doc/*\nSOURCES apt/product.sources\nBUILDCHROOT bc',
      undefined,
      1,
    );
    expect(s).toEqual([
      {
        kind: 'FEATURE',
        features: ['ssh', 'wifi'],
        loc: { file: F, line: 3, column: 1 },
        text: 'FEATURE ssh wifi',
      },
      {
        kind: 'EXCLUDE',
        globs: ['/opt/secret/**', 'usr/share/doc/*'],
        loc: { file: F, line: 4, column: 1 },
        text: 'EXCLUDE /opt/secret/** usr/share/doc/*',
      },
      {
        kind: 'SOURCES',
        file: 'apt/product.sources',
        loc: { file: F, line: 5, column: 1 },
        text: 'SOURCES apt/product.sources',
      },
      {
        kind: 'BUILDCHROOT',
        stage: 'bc',
        loc: { file: F, line: 6, column: 1 },
        text: 'BUILDCHROOT bc',
      },
    ]);
  });

  test('canonical text re-parses to itself', () => {
    const src = [
      'FROM scratch AS s',
      'BOOTSTRAP --variant=minbase --include=a1,b2 bookworm',
      'ENV P="a b" Q=$$ R=\\$x',
      'INSTALL --recommends   curl   ./x.deb',
      'COPY --chown=a:b ["x y", "/o p/"]',
      'LABEL "k k"="v \'q\'"',
      'EXCLUDE a/*',
      'RUN echo  "$P"',
    ].join('\n');
    const first = parse(src);
    const texts = [
      first.stages[0]?.from.text,
      ...(first.stages[0]?.steps ?? []).map((s) => s.text),
    ];
    const again = parse(texts.join('\n'));
    expect([
      again.stages[0]?.from.text,
      ...(again.stages[0]?.steps ?? []).map((s) => s.text),
    ]).toEqual(texts);
    expect(texts).toContain("ENV P='a b' Q='$$' R='$x'");
  });
});

describe('lines, comments, continuations', () => {
  test('comments and blank lines are skipped; # mid-line is not a comment', () => {
    const sf = parse(
      '# header\n\n   # indented comment\nFROM base\n\n  INSTALL curl\nRUN echo # not a comment\n',
    );
    expect(sf.stages[0]?.steps.map((s) => [s.text, s.loc.line, s.loc.column])).toEqual([
      ['INSTALL curl', 6, 3],
      ['RUN echo # not a comment', 7, 1],
    ]);
  });

  test('continuations join lines, skipping comment and blank lines', () => {
    const src = [
      'FROM base',
      'INSTALL \\',
      '    curl \\',
      '# a comment inside',
      '',
      '    openssh-server \\  ',
      '    python3',
      'RUN apt-get update && \\',
      '    true',
    ].join('\n');
    const s = steps(src);
    expect(s[0]).toMatchObject({
      text: 'INSTALL curl openssh-server python3',
      loc: { line: 2, column: 1 },
    });
    expect(s[1]).toMatchObject({ command: 'apt-get update &&     true' });
  });

  test('CRLF line endings and a BOM', () => {
    const s = steps('\uFEFFFROM base\r\nINSTALL a1 \\\r\n  b2\r\n');
    expect(s[0]?.text).toBe('INSTALL a1   b2'.replace(/ +/g, ' '));
  });

  test('a trailing continuation at the end of the file ends the instruction', () => {
    expect(steps('FROM base\nINSTALL curl \\')[0]?.text).toBe('INSTALL curl');
  });

  test('errors on continuation lines point at the physical line', () => {
    expectError(
      'FROM base\nINSTALL curl \\\n  # c\n   Bad_Name',
      4,
      4,
      'invalid package name "Bad_Name"',
    );
    expectError(
      'FROM base\nCOPY a \\\n\tb \\\n  /abs c/',
      4,
      3,
      'COPY source "/abs" must be relative',
    );
  });

  test('columns count code points', () => {
    expectError('FROM base\nLABEL a="😀" b', 2, 13, 'LABEL expects <key>=<value>');
  });
});

describe('substitution', () => {
  test('$VAR, ${VAR}, defaults and alternatives, escapes', () => {
    const e = step(
      BASE +
        'ARG V=1.2\nENV E=e\nENV A=$V B=${V}x C=${UNSET:-d} D=${E:-no} F=${UNSET-d2} G=${E:+alt} H=${UNSET:+alt} I=\\$V J="\\$V" K=\'$V\' L=$ M=${UNSET:-"q $E"}',
      'ENV',
    );
    expect(Object.fromEntries(e.vars)).toEqual({
      A: '1.2',
      B: '1.2x',
      C: 'd',
      D: 'e',
      F: 'd2',
      G: 'alt',
      H: '',
      I: '$V',
      J: '$V',
      K: '$V',
      L: '$',
      M: 'q e',
    });
  });

  test('":-" treats empty as unset, "-" does not', () => {
    const e = step(BASE + 'ENV EMPTY=\nENV A=${EMPTY:-d} B=${EMPTY-d}', 'ENV');
    expect(e.vars).toEqual([
      ['A', 'd'],
      ['B', ''],
    ]);
  });

  test('global ARGs are seen by FROM only; a stage redeclares them', () => {
    const sf = parse(
      'ARG BASE=base\nARG TAG=1\nFROM $BASE:${TAG}\nENV A=$TAG\nARG TAG\nENV B=$TAG',
      { TAG: '2' },
    );
    expect(sf.globalArgs.map((a) => [a.name, a.default, a.value])).toEqual([
      ['BASE', 'base', 'base'],
      ['TAG', '1', '2'],
    ]);
    expect(sf.stages[0]?.from.ref).toBe('base:2');
    const env = sf.stages[0]?.steps.filter((s) => s.kind === 'ENV').map((s) => s.text);
    expect(env).toEqual(["ENV A=''", 'ENV B=2']);
    const arg = sf.stages[0]?.steps.find((s) => s.kind === 'ARG');
    expect(arg).toMatchObject({ name: 'TAG', value: '2' });
    expect(sf.unusedBuildArgs).toEqual([]);
  });

  test('ARG defaults are substituted', () => {
    const sf = parse('ARG A=x\nARG B=${A}-y\nFROM base:$B');
    expect(sf.globalArgs[1]).toMatchObject({ default: 'x-y', value: 'x-y', text: 'ARG B=x-y' });
    expect(sf.stages[0]?.from.ref).toBe('base:x-y');
  });

  test('a stage ARG without default inherits the global value', () => {
    const sf = parse('ARG SUITE=bookworm\nFROM base\nARG SUITE\nENV S=$SUITE');
    expect(sf.stages[0]?.steps[0]).toMatchObject({ name: 'SUITE', value: 'bookworm' });
    expect(sf.stages[0]?.steps[1]).toMatchObject({ vars: [['S', 'bookworm']] });
  });

  test('ENV beats ARG of the same name; unused build args are reported', () => {
    const sf = parse(BASE + 'ARG X=arg\nENV X=env\nARG X=again\nLABEL x=$X', { NOPE: '1', X: 'b' });
    expect(sf.stages[0]?.steps[3]).toMatchObject({ labels: [['x', 'env']] });
    expect(sf.unusedBuildArgs).toEqual(['NOPE']);
  });

  test('ENV is inherited from an earlier stage, ARG is not', () => {
    const sf = parse('FROM base AS one\nARG A=a\nENV E=e\nFROM one\nLABEL e=$E a=$A');
    expect(sf.stages[1]?.steps[0]).toMatchObject({
      labels: [
        ['e', 'e'],
        ['a', ''],
      ],
    });
  });

  test('list instructions split unquoted substitutions into words', () => {
    const src = BASE + 'ARG PKGS="curl  wget"\nARG NONE\nINSTALL $PKGS $NONE vim\n';
    expect(step(src, 'INSTALL').packages.map((p) => p.name)).toEqual(['curl', 'wget', 'vim']);
    expect(step(src + 'FEATURE $PKGS', 'FEATURE').features).toEqual(['curl', 'wget']);
    // Quoted: one word, so an invalid feature name.
    expectError(src + 'FEATURE "$PKGS"', 5, 9, 'invalid feature name "curl  wget"');
  });

  test('other instructions never split a substitution', () => {
    const c = step(BASE + 'ARG SRC="a b"\nCOPY $SRC /x', 'COPY');
    expect(c.sources).toEqual(['a b']);
  });

  test('substitution in BOOTSTRAP, COPY flags, EXCLUDE, SOURCES, REMOVE, UPGRADE', () => {
    const sf = parse(
      'ARG ARCH=arm64\nFROM scratch\nARG ARCH\nARG V=minbase\nBOOTSTRAP --architecture=$ARCH --variant=${V} bookworm\n' +
        'ARG U=app\nCOPY --chown=$U:$U a /a\nEXCLUDE /opt/$U/*\nSOURCES apt/$ARCH.list\nARG P=nano\nREMOVE $P\nUPGRADE $P',
    );
    const texts = sf.stages[0]?.steps.filter((s) => s.kind !== 'ARG').map((s) => s.text);
    expect(texts).toEqual([
      'BOOTSTRAP --architecture=arm64 --variant=minbase bookworm',
      'COPY --chown=app:app a /a',
      'EXCLUDE /opt/app/*',
      'SOURCES apt/arm64.list',
      'REMOVE nano',
      'UPGRADE nano',
    ]);
  });

  test('bad substitutions', () => {
    expectError(BASE + 'ENV A=${', 2, 7, 'bad substitution');
    expectError(BASE + 'ENV A=x${B:?no}', 2, 8, 'bad substitution ${B:');
    expectError(BASE + 'ENV A=${B:-oops', 2, 7, 'missing "}"');
    expectError(BASE + 'ENV A="unterminated', 2, 7, 'unterminated double quote');
    expectError(BASE + "LABEL a='x", 2, 9, 'unterminated single quote');
  });
});

describe('multi-stage', () => {
  test('stages, stage refs and buildchroot', () => {
    const sf = parse(
      [
        'ARG SUITE=bookworm',
        'FROM scratch AS base',
        'ARG SUITE',
        'BOOTSTRAP --variant=minbase $SUITE',
        '',
        'FROM base AS buildchroot',
        'INSTALL build-essential',
        '',
        'FROM base',
        'BUILDCHROOT buildchroot',
        'INSTALL curl',
      ].join('\n'),
    );
    expect(
      sf.stages.map((s) => [s.index, s.name, s.from.refKind, s.steps.map((x) => x.kind)]),
    ).toEqual([
      [0, 'base', 'scratch', ['ARG', 'BOOTSTRAP']],
      [1, 'buildchroot', 'stage', ['INSTALL']],
      [2, undefined, 'stage', ['BUILDCHROOT', 'INSTALL']],
    ]);
    expect(sf.stages[0]?.steps[1]?.text).toBe('BOOTSTRAP --variant=minbase bookworm');
  });
});

describe('errors', () => {
  const cases: Array<[string, string, number, number, string]> = [
    ['unknown instruction', 'FROM base\n  WORKDIR /x', 2, 3, 'unknown instruction "WORKDIR"'],
    ['ADD is not supported', 'FROM base\nADD a /a', 2, 1, 'unknown instruction "ADD"'],
    [
      'instruction before FROM',
      '# c\nARG A\n INSTALL curl\nFROM base',
      3,
      2,
      'INSTALL before the first FROM',
    ],
    ['no FROM at all', 'ARG A=1\n', 1, 1, 'no FROM instruction'],
    ['empty file', '', 1, 1, 'no FROM instruction'],
    ['FROM without ref', 'FROM', 1, 1, 'FROM requires a template reference'],
    ['FROM empty after substitution', 'FROM $NOPE', 1, 6, 'FROM reference is empty'],
    ['FROM with two words', 'FROM base app', 1, 11, 'expected "AS <stage>"'],
    ['FROM AS without name', 'FROM base AS', 1, 11, 'AS needs a stage name'],
    ['FROM extra argument', 'FROM base AS a b', 1, 16, 'unexpected argument b'],
    [
      'FROM unknown flag',
      'FROM --platform=linux/arm64 base',
      1,
      6,
      'unknown flag --platform for FROM',
    ],
    ['FROM bad file', 'FROM ./base.img', 1, 6, 'must end in .tmpl.img or .tar'],
    ['FROM bad reference', 'FROM Base:1', 1, 6, 'invalid image reference "Base:1"'],
    ['upper-case stage name', 'FROM base AS Build', 1, 14, 'stage name "Build" must be lowercase'],
    ['invalid stage name', 'FROM base AS 1st', 1, 14, 'invalid stage name "1st"'],
    ['reserved stage name', 'FROM base AS scratch', 1, 14, '"scratch" is reserved'],
    [
      'duplicate stage',
      'FROM base AS a\nFROM base AS b\nFROM base AS a',
      3,
      14,
      'duplicate stage name "a" (first defined at line 1)',
    ],
    [
      'FROM a later stage',
      'FROM base\nFROM later\nFROM base AS later',
      2,
      6,
      'defined later (line 3)',
    ],
    ['FROM itself', 'FROM self AS self', 1, 6, 'cannot start FROM itself'],
    [
      'BOOTSTRAP not after scratch',
      'FROM base\nBOOTSTRAP bookworm',
      2,
      1,
      'BOOTSTRAP is only allowed directly after FROM scratch',
    ],
    [
      'second BOOTSTRAP',
      'FROM scratch\nBOOTSTRAP a1\nBOOTSTRAP b2',
      3,
      1,
      'only allowed directly after FROM scratch',
    ],
    [
      'BOOTSTRAP before FROM',
      'BOOTSTRAP bookworm\nFROM scratch',
      1,
      1,
      'BOOTSTRAP before the first FROM',
    ],
    [
      'scratch stage not starting with BOOTSTRAP',
      'FROM scratch\nARG A\n INSTALL curl',
      3,
      2,
      'a FROM scratch stage must start with BOOTSTRAP (FROM scratch at line 1)',
    ],
    [
      'scratch stage without BOOTSTRAP at EOF',
      'FROM base\nFROM  scratch',
      2,
      7,
      'FROM scratch must be followed by BOOTSTRAP',
    ],
    [
      'scratch stage without BOOTSTRAP before next FROM',
      'FROM scratch\nFROM base',
      1,
      6,
      'FROM scratch must be followed by BOOTSTRAP',
    ],
    [
      'BOOTSTRAP without suite',
      'FROM scratch\nBOOTSTRAP --variant=minbase',
      2,
      1,
      'BOOTSTRAP requires a suite',
    ],
    ['BOOTSTRAP two suites', 'FROM scratch\nBOOTSTRAP a1 b2', 2, 14, 'unexpected argument b2'],
    [
      'BOOTSTRAP bad variant',
      'FROM scratch\nBOOTSTRAP --variant=tiny bookworm',
      2,
      11,
      'unknown mmdebstrap variant "tiny"',
    ],
    [
      'BOOTSTRAP bad include',
      'FROM scratch\nBOOTSTRAP --include=curl,,x1 bookworm',
      2,
      11,
      'invalid item "" in --include',
    ],
    [
      'BOOTSTRAP bad component',
      'FROM scratch\nBOOTSTRAP --components=main,no/pe bookworm',
      2,
      11,
      'invalid item "no/pe" in --components',
    ],
    [
      'BOOTSTRAP bad mirror',
      'FROM scratch\nBOOTSTRAP --mirror=deb.debian.org bookworm',
      2,
      11,
      '--mirror must be a URL',
    ],
    [
      'BOOTSTRAP bad architecture',
      'FROM scratch\nBOOTSTRAP --architecture=ARM bookworm',
      2,
      11,
      'invalid architecture "ARM"',
    ],
    ['BOOTSTRAP bad suite', 'FROM scratch\nBOOTSTRAP "book worm"', 2, 11, 'invalid suite'],
    [
      'flag without value',
      'FROM scratch\nBOOTSTRAP --variant bookworm',
      2,
      11,
      'flag --variant needs a value: --variant=<value>',
    ],
    ['flag with empty value', 'FROM base\nCOPY --chown= a /a', 2, 6, 'flag --chown needs a value'],
    [
      'boolean flag with value',
      'FROM base\nINSTALL --recommends=yes curl',
      2,
      9,
      'flag --recommends takes no value',
    ],
    [
      'unknown flag',
      'FROM base\nINSTALL --no-install-recommends curl',
      2,
      9,
      'unknown flag --no-install-recommends for INSTALL',
    ],
    [
      'flag of another instruction',
      'FROM base\nINSTALL --chown=a curl',
      2,
      9,
      'flag --chown is not valid for INSTALL (it belongs to COPY)',
    ],
    [
      'flag of another instruction on RUN',
      'FROM base\nRUN --strict-remove true',
      2,
      5,
      'not valid for RUN (it belongs to REMOVE)',
    ],
    [
      'RUN --mount',
      'FROM base\nRUN --mount=type=cache,target=/x true',
      2,
      5,
      'unknown flag --mount for RUN',
    ],
    [
      'duplicate flag',
      'FROM base\nCOPY --chmod=644 --chmod=600 a /a',
      2,
      18,
      'duplicate flag --chmod',
    ],
    [
      'flag after arguments',
      'FROM base\nINSTALL curl --recommends',
      2,
      14,
      'flag --recommends must come before the arguments',
    ],
    ['INSTALL nothing', 'FROM base\nINSTALL   ', 2, 1, 'INSTALL requires at least one package'],
    [
      'INSTALL nothing after flags',
      'FROM base\nINSTALL --recommends',
      2,
      1,
      'INSTALL requires at least one package',
    ],
    ['INSTALL bad name', 'FROM base\nINSTALL curl Vim', 2, 14, 'invalid package name "Vim"'],
    ['INSTALL one-letter name', 'FROM base\nINSTALL c', 2, 9, 'invalid package name "c"'],
    [
      'INSTALL bad version',
      'FROM base\nINSTALL curl=7.8_1',
      2,
      9,
      'invalid version "7.8_1" for package curl',
    ],
    [
      'INSTALL empty version',
      'FROM base\nINSTALL curl=',
      2,
      9,
      'invalid version "" for package curl',
    ],
    [
      'INSTALL absolute deb',
      'FROM base\nINSTALL /tmp/x.deb',
      2,
      9,
      'must be relative to the build context',
    ],
    [
      'INSTALL deb escaping context',
      'FROM base\nINSTALL ./a/../../x.deb',
      2,
      9,
      'escapes the build context',
    ],
    [
      'INSTALL path that is not a deb',
      'FROM base\nINSTALL ./pkgs/x.rpm',
      2,
      9,
      'must be a .deb file',
    ],
    [
      'REMOVE nothing',
      'FROM base\nREMOVE --strict-remove',
      2,
      1,
      'REMOVE requires at least one package',
    ],
    [
      'REMOVE with version',
      'FROM base\nREMOVE nano=1.0',
      2,
      8,
      'REMOVE takes package names without versions',
    ],
    ['REMOVE bad name', 'FROM base\nREMOVE ./x.deb', 2, 8, 'invalid package name'],
    [
      'UPGRADE with version',
      'FROM base\nUPGRADE a1=2',
      2,
      9,
      'UPGRADE takes package names without versions',
    ],
    ['RUN empty', 'FROM base\nRUN   ', 2, 1, 'RUN requires a command'],
    ['RUN empty exec form', 'FROM base\nRUN  [ ]', 2, 6, 'RUN [] needs at least the program'],
    [
      'COPY one argument',
      'FROM base\nCOPY a',
      2,
      1,
      'COPY requires at least one source and a destination',
    ],
    [
      'COPY JSON one argument',
      'FROM base\nCOPY ["a"]',
      2,
      1,
      'COPY requires at least one source and a destination',
    ],
    [
      'COPY absolute source',
      'FROM base\nCOPY a /etc/passwd /x/',
      2,
      8,
      'COPY source "/etc/passwd" must be relative',
    ],
    [
      'COPY escaping source',
      'FROM base\nCOPY ["a", "x/../../y", "/x/"]',
      2,
      12,
      'COPY source "x/../../y" escapes the build context',
    ],
    ['COPY empty source', 'FROM base\nCOPY $NOPE /x', 2, 6, 'COPY source is empty'],
    [
      'COPY several sources to a file',
      'FROM base\nCOPY a b /opt/x',
      2,
      10,
      'needs a directory destination ending in "/"',
    ],
    [
      'COPY bad chown',
      'FROM base\nCOPY --chown=a:b:c a /a',
      2,
      6,
      '--chown expects <user>[:<group>]',
    ],
    ['COPY bad chmod', 'FROM base\nCOPY --chmod=u+x a /a', 2, 6, '--chmod expects an octal mode'],
    [
      'COPY chmod not octal',
      'FROM base\nCOPY --chmod=0689 a /a',
      2,
      6,
      '--chmod expects an octal mode',
    ],
    ['ENV nothing', 'FROM base\nENV', 2, 1, 'ENV requires <key>=<value>'],
    ['ENV legacy without value', 'FROM base\nENV  KEY   ', 2, 6, 'ENV KEY needs a value'],
    ['ENV pair missing =', 'FROM base\nENV A=1 B', 2, 9, 'ENV expects <key>=<value>, got "B"'],
    ['ENV bad key', 'FROM base\nENV 1A=x', 2, 5, 'invalid ENV key "1A"'],
    ['ENV bad legacy key', 'FROM base\nENV a.b c', 2, 5, 'invalid ENV name "a.b"'],
    ['ARG nothing', 'ARG', 1, 1, 'ARG requires a name'],
    ['ARG two names', 'FROM base\nARG A=1 B=2', 2, 9, 'ARG takes a single <name>[=<default>]'],
    ['ARG bad name', 'ARG my-arg=1\nFROM base', 1, 5, 'invalid ARG name "my-arg"'],
    ['LABEL nothing', 'FROM base\nLABEL', 2, 1, 'LABEL requires <key>=<value>'],
    [
      'LABEL without =',
      'FROM base\nLABEL a=1 lonely',
      2,
      11,
      'LABEL expects <key>=<value>, got "lonely"',
    ],
    ['LABEL empty key', 'FROM base\nLABEL =v', 2, 7, 'invalid LABEL key ""'],
    ['FEATURE nothing', 'FROM base\nFEATURE', 2, 1, 'FEATURE requires at least one feature name'],
    ['FEATURE bad name', 'FROM base\nFEATURE ok "b d"', 2, 12, 'invalid feature name "b d"'],
    ['EXCLUDE nothing', 'FROM base\nEXCLUDE', 2, 1, 'EXCLUDE requires at least one glob'],
    ['EXCLUDE root', 'FROM base\nEXCLUDE a /', 2, 11, 'names the whole tree'],
    ['EXCLUDE dot-dot', 'FROM base\nEXCLUDE /opt/../etc/*', 2, 9, 'must not contain ".."'],
    ['SOURCES nothing', 'FROM base\nSOURCES', 2, 1, 'SOURCES requires a file'],
    ['SOURCES two files', 'FROM base\nSOURCES a b', 2, 11, 'unexpected argument b'],
    [
      'SOURCES absolute',
      'FROM base\nSOURCES /etc/apt/sources.list',
      2,
      9,
      'SOURCES file "/etc/apt/sources.list" must be relative',
    ],
    ['SOURCES escaping', 'FROM base\nSOURCES ../x.list', 2, 9, 'escapes the build context'],
    [
      'BUILDCHROOT nothing',
      'FROM base\nBUILDCHROOT',
      2,
      1,
      'BUILDCHROOT requires the name of an earlier stage',
    ],
    ['BUILDCHROOT unknown stage', 'FROM base\nBUILDCHROOT nope', 2, 13, 'no stage named "nope"'],
    [
      'BUILDCHROOT later stage',
      'FROM base\nBUILDCHROOT bc\nFROM base AS bc',
      2,
      13,
      'stage "bc" is defined later (line 3)',
    ],
    [
      'BUILDCHROOT itself',
      'FROM base AS me\nBUILDCHROOT me',
      2,
      13,
      'a stage cannot be its own buildchroot',
    ],
    [
      'BUILDCHROOT twice',
      'FROM base AS a\nFROM base\nBUILDCHROOT a\nBUILDCHROOT a',
      4,
      1,
      'duplicate BUILDCHROOT in this stage (first at line 3)',
    ],
    [
      'BUILDCHROOT extra',
      'FROM base AS a\nFROM base\nBUILDCHROOT a b',
      3,
      15,
      'unexpected argument b',
    ],
  ];
  test.each(cases)('%s', (_name, src, line, column, text) => {
    expectError(src, line, column, text);
  });

  test('errors are reported in file order', () => {
    expectError(
      'FROM base\nINSTALL Bad\nFROM later\nFROM base AS later',
      2,
      9,
      'invalid package name',
    );
  });

  test('unknown instruction carries a hint', () => {
    expect(parseError('FROM base\nADD a /a').hint).toBe(
      'use COPY for files from the build context',
    );
  });
});

test('quoteWord quotes only when needed', () => {
  expect(quoteWord('a/b*c=d,e:f')).toBe('a/b*c=d,e:f');
  expect(quoteWord('')).toBe("''");
  expect(quoteWord('a b')).toBe("'a b'");
  expect(quoteWord("it's")).toBe("'it'\\''s'");
  expect(quoteWord('$x')).toBe("'$x'");
});
