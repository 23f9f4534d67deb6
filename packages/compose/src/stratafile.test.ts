import { ParseError } from '@strata/oci';
import { Instruction, parseStageHeads, parseStratafile, quoteWord, Stratafile } from './stratafile';

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

/** Where the parser puts a step that starts a line, and the step's canonical text. */
function at(line: number, text: string): Pick<Instruction, 'loc' | 'text'> {
  return { loc: { file: F, line, column: 1 }, text };
}

const BASE = 'FROM base\n';

describe('instructions', () => {
  test('FROM with every kind of reference', () => {
    const remote = `registry.example.com:5000/team/base:2@sha256:${'a'.repeat(64)}`;
    // Each stage's lines, and what its FROM names: [stage name, reference, kind of reference].
    const stages: Array<[string, string | undefined, string, string]> = [
      ['FROM scratch AS boot\nBOOTSTRAP bookworm', 'boot', 'scratch', 'scratch'],
      ['FROM ./base.tmpl.img AS file1', 'file1', './base.tmpl.img', 'file'],
      ['FROM ../up/base.tar', undefined, '../up/base.tar', 'file'],
      ['FROM /abs/base.tmpl.img', undefined, '/abs/base.tmpl.img', 'file'],
      ['FROM base:1.0', undefined, 'base:1.0', 'local'],
      [`FROM ${remote}`, undefined, remote, 'registry'],
      ['FROM boot AS derived', 'derived', 'boot', 'stage'],
    ];
    const sf = parse(stages.map(([lines]) => lines).join('\n'));
    expect(sf.stages.map((s) => [s.index, s.name, s.from.ref, s.from.refKind])).toEqual(
      stages.map(([, ...from], i) => [i, ...from]),
    );
    expect(sf.stages[0]?.from).toEqual({
      kind: 'FROM',
      ref: 'scratch',
      refKind: 'scratch',
      stage: 'boot',
      ...at(1, 'FROM scratch AS boot'),
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
      ...at(
        2,
        'BOOTSTRAP --architecture=arm64 --components=main,contrib --include=curl,ca-certificates --mirror=http://deb.debian.org/debian --variant=minbase bookworm',
      ),
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

  test('DEBUILD: source trees and .dsc files from the context, --arch, sorted --profiles', () => {
    expect(
      step(
        BASE + 'DEBUILD --profiles=nodoc,nocheck --arch=arm64 src/hello pkgs/x_1.0.dsc',
        'DEBUILD',
      ),
    ).toMatchObject({
      sources: ['./src/hello', './pkgs/x_1.0.dsc'],
      arch: 'arm64',
      profiles: ['nocheck', 'nodoc'],
      text: 'DEBUILD --arch=arm64 --profiles=nodoc,nocheck ./src/hello ./pkgs/x_1.0.dsc',
    });
    expect(step(BASE + 'DEBUILD ./hello/', 'DEBUILD')).toMatchObject({
      sources: ['./hello'],
      profiles: [],
    });
    expectError(BASE + 'DEBUILD', 2, 1, 'DEBUILD requires a source tree');
    expectError(BASE + 'DEBUILD ../outside', 2, 9, 'escapes the build context');
    expectError(BASE + 'DEBUILD --arch=ARM! x', 2, 9, 'invalid architecture');
    expectError(
      BASE + 'DEBUILD --arch=x86_64 x',
      2,
      9,
      'x86_64 is not a Debian architecture; did you mean amd64?',
    );
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

  test('RUN --mount=type=secret: defaults, options, canonical text', () => {
    const r = step(BASE + 'RUN --mount=type=secret,id=tok cat /run/secrets/tok', 'RUN');
    expect(r.mounts).toEqual([
      { type: 'secret', id: 'tok', target: '/run/secrets/tok', required: false, mode: 0o400 },
    ]);
    expect(r.command).toBe('cat /run/secrets/tok');
    expect(r.text).toBe('RUN --mount=type=secret,id=tok cat /run/secrets/tok');
    // Repeated, sorted; dst stands for target, the id defaults to its file name; bare required.
    const two = step(
      BASE +
        'RUN --mount=type=secret,dst=/etc/b.key,required,mode=644 --mount=id=a,type=secret,target=/root/a/ ["true"]',
      'RUN',
    );
    expect(two.mounts).toEqual([
      { type: 'secret', id: 'b.key', target: '/etc/b.key', required: true, mode: 0o644 },
      { type: 'secret', id: 'a', target: '/root/a', required: false, mode: 0o400 },
    ]);
    expect(two.text).toBe(
      'RUN --mount=type=secret,id=a,target=/root/a --mount=type=secret,id=b.key,target=/etc/b.key,required=true,mode=0644 ["true"]',
    );
    expect(step(BASE + 'RUN --mount=type=secret,id=x,required=false true', 'RUN').text).toBe(
      'RUN --mount=type=secret,id=x true',
    );
    // Without a mount the text (and so the cache key) is what it always was.
    expect(step(BASE + 'RUN true', 'RUN')).toMatchObject({ mounts: [], text: 'RUN true' });
  });

  test('RUN --mount errors point at the flag', () => {
    const cases: Array<[string, number, string]> = [
      ['RUN --mount=type=cache,target=/x true', 5, 'type=cache is not supported'],
      ['RUN --mount=id=x true', 5, '--mount needs type=secret'],
      ['RUN --mount=type=secret true', 5, 'needs an id'],
      ['RUN --mount=type=secret,id=x,src=f true', 5, 'unknown --mount option "src"'],
      ['RUN --mount=type=secret,id=x,id=y true', 5, 'gives id twice'],
      ['RUN --mount=type=secret,id=x,target=rel true', 5, 'must be an absolute path'],
      ['RUN --mount=type=secret,id=x,target=/ true', 5, 'not the root'],
      ['RUN --mount=type=secret,id=x,target=/proc/x true', 5, 'is reserved'],
      ['RUN --mount=type=secret,id=x,target=/run/strata/x true', 5, 'is reserved'],
      ['RUN --mount=type=secret,id=x,required=yes true', 5, 'expected true or false'],
      ['RUN --mount=type=secret,id=x,mode=rw true', 5, 'expected an octal mode'],
      ['RUN --mount=type=secret,id=a/b true', 5, 'invalid secret id'],
      ['RUN --mount=type=secret,id=a --mount=type=secret,id=a true', 30, 'two --mount flags'],
      ['RUN --mount true', 5, 'flag --mount needs a value'],
      ['RUN --mount=type=secret,id=a', 1, 'RUN requires a command'],
    ];
    for (const [src, column, text] of cases) expectError(`${BASE}${src}`, 2, column, text);
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

  test('COPY --from: an earlier stage by name or index; sources are absolute in its tree', () => {
    const src = [
      'FROM base:1 AS builder',
      'RUN make',
      'FROM base:1',
      'ARG B=builder',
      'COPY --from=$B src/hello /opt/../src/*.so /usr/local/bin/',
      'COPY --chmod=755 --from=0 /../out/x /x',
    ].join('\n');
    const [a, b] = parse(src).stages[1]!.steps.filter((s) => s.kind === 'COPY') as Array<
      Extract<Instruction, { kind: 'COPY' }>
    >;
    expect(a).toMatchObject({
      sources: ['/src/hello', '/src/*.so'],
      dest: '/usr/local/bin/',
      from: { ref: 'builder', index: 0, loc: { file: F, line: 5, column: 6 } },
      text: 'COPY --from=builder /src/hello /src/*.so /usr/local/bin/',
    });
    expect(b).toMatchObject({ sources: ['/out/x'], from: { ref: '0', index: 0 } });
    expect(b!.text).toBe('COPY --chmod=0755 --from=0 /out/x /x');
    // Without --from, nothing changes.
    expect(step(BASE + 'COPY a /a', 'COPY').from).toBeUndefined();
  });

  test('COPY --from errors point at the flag: later stage, itself, unknown, template', () => {
    expectError(
      'FROM base AS a\nCOPY --from=b /x /x\nFROM base AS b',
      2,
      6,
      'COPY --from=b refers to stage "b", which is defined later (line 3)',
    );
    expectError(
      'FROM base AS a\nCOPY --from=a /x /x',
      2,
      6,
      'COPY --from=a names this stage itself',
    );
    expectError('FROM base AS a\nFROM base\nCOPY --from=1 /x /x', 3, 6, 'names this stage itself');
    expectError('FROM base\nCOPY --from=2 /x /x', 2, 6, 'stage 2 is not an earlier stage');
    expectError(
      'FROM base\nCOPY   --from=nope /x /x',
      2,
      8,
      'COPY --from=nope: no stage named "nope"',
    );
    const e = parseError('FROM base\nCOPY --from=debian:12 /x /x');
    expect(e.message).toContain('no stage named "debian:12"');
    expect(e.hint).toContain('FROM debian:12 AS <name>');
    expectError('FROM base AS a\nFROM base\nCOPY --from= /x /x', 3, 6, 'flag --from needs a value');
    expectError('FROM base AS a\nFROM base\nCOPY --from=a "" /x', 3, 15, 'COPY source is empty');
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
        ...at(3, 'ARG B=dflt'),
      },
      {
        kind: 'ARG',
        name: 'C',
        default: 'x',
        value: 'given',
        ...at(4, 'ARG C=x'),
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
        ...at(3, 'FEATURE ssh wifi'),
      },
      {
        kind: 'EXCLUDE',
        globs: ['/opt/secret/**', 'usr/share/doc/*'],
        ...at(4, 'EXCLUDE /opt/secret/** usr/share/doc/*'),
      },
      {
        kind: 'SOURCES',
        file: 'apt/product.sources',
        ...at(5, 'SOURCES apt/product.sources'),
      },
      {
        kind: 'BUILDCHROOT',
        stage: 'bc',
        ...at(6, 'BUILDCHROOT bc'),
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
    // A global ARG, then three stages, a blank line between them.
    const stages = [
      'ARG SUITE=bookworm\nFROM scratch AS base\nARG SUITE\nBOOTSTRAP --variant=minbase $SUITE',
      'FROM base AS buildchroot\nINSTALL build-essential',
      'FROM base\nBUILDCHROOT buildchroot\nINSTALL curl',
    ];
    const sf = parse(stages.join('\n\n'));
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

describe("the FROM template's environment", () => {
  const baseEnv = new Map([
    ['PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    ['PRODUCT', 'Acme Gateway'],
  ]);
  const src = [
    'FROM base:1 AS app',
    'ARG PRODUCT=overridden',
    'ENV PATH=/opt/bin:$PATH',
    'LABEL product=${PRODUCT:-unset} path=$PATH',
    'FROM app',
    'LABEL again=$PRODUCT',
    'FROM scratch',
    'BOOTSTRAP ${PRODUCT:-bookworm}',
  ].join('\n');

  test("substitution sees it under the stage's ENVs, in stages FROM that one too", () => {
    const sf = parseStratafile(src, F, {}, { baseEnv: (i) => (i === 0 ? baseEnv : undefined) });
    const [app, child, scratch] = sf.stages;
    expect(app?.steps.map((x) => x.text)).toEqual([
      'ARG PRODUCT=overridden',
      'ENV PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      // ENV wins over an ARG of the same name, and the template's ENV is ENV.
      "LABEL product='Acme Gateway' path=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    expect(child?.steps.map((x) => x.text)).toEqual(["LABEL again='Acme Gateway'"]);
    // A scratch stage has no template, whatever it is asked.
    expect(scratch?.steps.map((x) => x.text)).toEqual(['BOOTSTRAP bookworm']);
  });

  test('before the templates are known, a line their ENV may complete is not checked, and every other line is', () => {
    const unresolved = { unresolvedBases: true };
    // $APT_PKGS may come from base:1's ENV: the line waits for it; without it, INSTALL has no package.
    const waits = 'FROM base:1\nINSTALL $APT_PKGS\nRUN true\n';
    expect(() => parseStratafile(waits, F, {}, unresolved)).not.toThrow();
    expect(() => parseStratafile(waits, F)).toThrow(/:2:1: INSTALL requires at least one package/);
    // A mistake that no ENV can mend is reported, after such a line too and in a later stage.
    expect(() => parseStratafile(`${waits}INSTALL curl=bad~version!\n`, F, {}, unresolved)).toThrow(
      /:4:9: invalid version/,
    );
    expect(() =>
      parseStratafile('FROM base:1 AS a\nRUN true\nFROM a\nCOPY x\n', F, {}, unresolved),
    ).toThrow(/:4:1: COPY requires/);
    // A variable the Stratafile defines, or a stage with no template, is known now.
    expect(() => parseStratafile('FROM base:1\nARG P=\nINSTALL $P\n', F, {}, unresolved)).toThrow(
      /:3:1: INSTALL requires at least one package/,
    );
    expect(() =>
      parseStratafile('FROM scratch\nBOOTSTRAP bookworm\nINSTALL $P\n', F, {}, unresolved),
    ).toThrow(/:3:1: INSTALL requires at least one package/);
  });

  test('parseStageHeads reads the FROM lines alone, with the global ARGs', () => {
    expect(
      parseStageHeads('ARG T=1\nFROM base:$T AS a\nINSTALL $NOT_YET_KNOWN\nFROM a', F).map((h) => [
        h.index,
        h.name,
        h.from.ref,
        h.from.refKind,
      ]),
    ).toEqual([
      [0, 'a', 'base:1', 'local'],
      [1, undefined, 'a', 'stage'],
    ]);
  });
});

describe('errors', () => {
  /** Errors in a source of one line: [the source, column, text of the message]. */
  const oneLine: Array<[string, number, string]> = [
    ['', 1, 'no FROM instruction'],
    ['FROM', 1, 'FROM requires a template reference'],
    ['FROM $NOPE', 6, 'FROM reference is empty'],
    ['FROM base app', 11, 'expected "AS <stage>"'],
    ['FROM base AS', 11, 'AS needs a stage name'],
    ['FROM base AS a b', 16, 'unexpected argument b'],
    ['FROM --platform=linux/arm64 base', 6, 'unknown flag --platform for FROM'],
    ['FROM ./base.img', 6, 'must end in .tmpl.img or .tar'],
    ['FROM Base:1', 6, 'invalid image reference "Base:1"'],
    ['FROM base AS Build', 14, 'stage name "Build" must be lowercase'],
    ['FROM base AS 1st', 14, 'invalid stage name "1st"'],
    ['FROM base AS scratch', 14, '"scratch" is reserved'],
    ['FROM self AS self', 6, 'cannot start FROM itself'],
    ['ARG', 1, 'ARG requires a name'],
  ];
  test.each(oneLine)('%j', (src, column, text) => {
    expectError(src, 1, column, text);
  });

  /** Errors in a source of several lines: [its lines, line, column, text of the message]. */
  const lines: Array<[string[], number, number, string]> = [
    [['# c', 'ARG A', ' INSTALL curl', 'FROM base'], 3, 2, 'INSTALL before the first FROM'],
    [['ARG A=1', ''], 1, 1, 'no FROM instruction'],
    [
      ['FROM base AS a', 'FROM base AS b', 'FROM base AS a'],
      3,
      14,
      'duplicate stage name "a" (first defined at line 1)',
    ],
    [['FROM base', 'FROM later', 'FROM base AS later'], 2, 6, 'defined later (line 3)'],
    [
      ['FROM scratch', 'BOOTSTRAP a1', 'BOOTSTRAP b2'],
      3,
      1,
      'only allowed directly after FROM scratch',
    ],
    [['BOOTSTRAP bookworm', 'FROM scratch'], 1, 1, 'BOOTSTRAP before the first FROM'],
    [
      ['FROM scratch', 'ARG A', ' INSTALL curl'],
      3,
      2,
      'a FROM scratch stage must start with BOOTSTRAP (FROM scratch at line 1)',
    ],
    [['FROM scratch', 'FROM base'], 1, 6, 'FROM scratch must be followed by BOOTSTRAP'],
    [['ARG my-arg=1', 'FROM base'], 1, 5, 'invalid ARG name "my-arg"'],
    [
      ['FROM base', 'BUILDCHROOT bc', 'FROM base AS bc'],
      2,
      13,
      'stage "bc" is defined later (line 3)',
    ],
    [['FROM base AS me', 'BUILDCHROOT me'], 2, 13, 'a stage cannot be its own buildchroot'],
    [
      ['FROM base AS a', 'FROM base', 'BUILDCHROOT a', 'BUILDCHROOT a'],
      4,
      1,
      'duplicate BUILDCHROOT in this stage (first at line 3)',
    ],
    [['FROM base AS a', 'FROM base', 'BUILDCHROOT a b'], 3, 15, 'unexpected argument b'],
  ];
  test.each(lines)('%j', (src, line, column, text) => {
    expectError(src.join('\n'), line, column, text);
  });

  /** Errors in the second line: [the first line, the second, column, text of the message]. */
  const [base, scratch] = ['FROM base', 'FROM scratch'];
  // One row a line, as a table reads best.
  // prettier-ignore
  const secondLine: Array<[string, string, number, string]> = [
    [base, '  WORKDIR /x', 3, 'unknown instruction "WORKDIR"'],
    [base, 'ADD a /a', 1, 'unknown instruction "ADD"'],
    [base, 'COPY --from=0 <<EOF /etc/x\nhi\nEOF', 15, 'COPY --from cannot copy here-document <<EOF'],
    [base, 'RUN cat <<EOF\nhi\n', 9, 'here-document <<EOF is not closed'],
    [base, 'BOOTSTRAP bookworm', 1, 'BOOTSTRAP is only allowed directly after FROM scratch'],
    [base, 'FROM  scratch', 7, 'FROM scratch must be followed by BOOTSTRAP'],
    [base, 'COPY --chown= a /a', 6, 'flag --chown needs a value'],
    [base, 'INSTALL --recommends=yes curl', 9, 'flag --recommends takes no value'],
    [base, 'INSTALL --no-install-recommends curl', 9, 'unknown flag --no-install-recommends for INSTALL'],
    [base, 'INSTALL --chown=a curl', 9, 'flag --chown is not valid for INSTALL (it belongs to COPY)'],
    [base, 'RUN --strict-remove true', 5, 'not valid for RUN (it belongs to REMOVE)'],
    [base, 'INSTALL --mount=type=secret,id=a curl', 9, 'flag --mount is not valid for INSTALL (it belongs to RUN)'],
    [base, 'COPY --chmod=644 --chmod=600 a /a', 18, 'duplicate flag --chmod'],
    [base, 'INSTALL curl --recommends', 14, 'flag --recommends must come before the arguments'],
    [base, 'INSTALL   ', 1, 'INSTALL requires at least one package'],
    [base, 'INSTALL --recommends', 1, 'INSTALL requires at least one package'],
    [base, 'INSTALL curl Vim', 14, 'invalid package name "Vim"'],
    [base, 'INSTALL c', 9, 'invalid package name "c"'],
    [base, 'INSTALL curl=7.8_1', 9, 'invalid version "7.8_1" for package curl'],
    [base, 'INSTALL curl=', 9, 'invalid version "" for package curl'],
    [base, 'INSTALL /tmp/x.deb', 9, 'must be relative to the build context'],
    [base, 'INSTALL ./a/../../x.deb', 9, 'escapes the build context'],
    [base, 'INSTALL ./pkgs/x.rpm', 9, 'must be a .deb file'],
    [base, 'REMOVE --strict-remove', 1, 'REMOVE requires at least one package'],
    [base, 'REMOVE nano=1.0', 8, 'REMOVE takes package names without versions'],
    [base, 'REMOVE ./x.deb', 8, 'invalid package name'],
    [base, 'UPGRADE a1=2', 9, 'UPGRADE takes package names without versions'],
    [base, 'RUN   ', 1, 'RUN requires a command'],
    [base, 'RUN  [ ]', 6, 'RUN [] needs at least the program'],
    [base, 'COPY a', 1, 'COPY requires at least one source and a destination'],
    [base, 'COPY ["a"]', 1, 'COPY requires at least one source and a destination'],
    [base, 'COPY a /etc/passwd /x/', 8, 'COPY source "/etc/passwd" must be relative'],
    [base, 'COPY ["a", "x/../../y", "/x/"]', 12, 'COPY source "x/../../y" escapes the build context'],
    [base, 'COPY $NOPE /x', 6, 'COPY source is empty'],
    [base, 'COPY a b /opt/x', 10, 'needs a directory destination ending in "/"'],
    [base, 'COPY --chown=a:b:c a /a', 6, '--chown expects <user>[:<group>]'],
    [base, 'COPY --chmod=u+x a /a', 6, '--chmod expects an octal mode'],
    [base, 'COPY --chmod=0689 a /a', 6, '--chmod expects an octal mode'],
    [base, 'ENV', 1, 'ENV requires <key>=<value>'],
    [base, 'ENV  KEY   ', 6, 'ENV KEY needs a value'],
    [base, 'ENV A=1 B', 9, 'ENV expects <key>=<value>, got "B"'],
    [base, 'ENV 1A=x', 5, 'invalid ENV key "1A"'],
    [base, 'ENV a.b c', 5, 'invalid ENV name "a.b"'],
    [base, 'ARG A=1 B=2', 9, 'ARG takes a single <name>[=<default>]'],
    [base, 'LABEL', 1, 'LABEL requires <key>=<value>'],
    [base, 'LABEL a=1 lonely', 11, 'LABEL expects <key>=<value>, got "lonely"'],
    [base, 'LABEL =v', 7, 'invalid LABEL key ""'],
    [base, 'FEATURE', 1, 'FEATURE requires at least one feature name'],
    [base, 'FEATURE ok "b d"', 12, 'invalid feature name "b d"'],
    [base, 'EXCLUDE', 1, 'EXCLUDE requires at least one glob'],
    [base, 'EXCLUDE a /', 11, 'names the whole tree'],
    [base, 'EXCLUDE a **', 11, 'EXCLUDE pattern "**" names the whole tree'],
    [base, 'EXCLUDE /**', 9, 'EXCLUDE pattern "/**" names the whole tree'],
    [base, 'EXCLUDE /opt *', 14, 'EXCLUDE pattern "*" names the whole tree'],
    [base, 'EXCLUDE ./*/**/', 9, 'names the whole tree'],
    [base, 'EXCLUDE /opt/../etc/*', 9, 'must not contain ".."'],
    [base, 'SOURCES', 1, 'SOURCES requires a file'],
    [base, 'SOURCES a b', 11, 'unexpected argument b'],
    [base, 'SOURCES /etc/apt/sources.list', 9, 'SOURCES file "/etc/apt/sources.list" must be relative'],
    [base, 'SOURCES ../x.list', 9, 'escapes the build context'],
    [base, 'BUILDCHROOT', 1, 'BUILDCHROOT requires the name of an earlier stage'],
    [base, 'BUILDCHROOT nope', 13, 'no stage named "nope"'],
    [scratch, 'BOOTSTRAP --variant=minbase', 1, 'BOOTSTRAP requires a suite'],
    [scratch, 'BOOTSTRAP a1 b2', 14, 'unexpected argument b2'],
    [scratch, 'BOOTSTRAP --variant=tiny bookworm', 11, 'unknown mmdebstrap variant "tiny"'],
    [scratch, 'BOOTSTRAP --include=curl,,x1 bookworm', 11, 'invalid item "" in --include'],
    [scratch, 'BOOTSTRAP --components=main,no/pe bookworm', 11, 'invalid item "no/pe" in --components'],
    [scratch, 'BOOTSTRAP --mirror=deb.debian.org bookworm', 11, '--mirror must be a URL'],
    [scratch, 'BOOTSTRAP --architecture=ARM bookworm', 11, 'invalid architecture "ARM"'],
    [
      scratch,
      'BOOTSTRAP --architecture=aarch64 bookworm',
      11,
      'aarch64 is not a Debian architecture; did you mean arm64?',
    ],
    [scratch, 'BOOTSTRAP "book worm"', 11, 'invalid suite'],
    [scratch, 'BOOTSTRAP --variant bookworm', 11, 'flag --variant needs a value: --variant=<value>'],
  ];
  test.each(secondLine)('%s, then %j', (first, src, column, text) => {
    expectError(`${first}\n${src}`, 2, column, text);
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

  test("a Dockerfile's WORKDIR, USER and CMD get a hint of their own, not the list", () => {
    expect(parseError('FROM base\nWORKDIR /app').hint).toMatch(
      /RUN starts in \/: cd in the command/,
    );
    expect(parseError('FROM base\nUSER app').hint).toMatch(/steps run as root.*RUN useradd/);
    expect(parseError('FROM base\nCMD ["app"]').hint).toMatch(/not a container/);
    expect(parseError('FROM base\nBOGUS x').hint).toMatch(/^instructions: /);
  });

  test("a step before any FROM is that line's error, also where only the heads are read", () => {
    for (const read of [
      (src: string) => parseStageHeads(src, F, {}),
      (src: string) => parseStratafile(src, F, {}),
    ]) {
      expect(() => read('RUN true\n')).toThrow(`${F}:1:1: RUN before the first FROM`);
      expect(() => read('ARG A=1\n  WORKDIR /x\nFROM base\n')).toThrow(
        `${F}:2:3: unknown instruction "WORKDIR"`,
      );
    }
  });
});

test('quoteWord quotes only when needed', () => {
  expect(quoteWord('a/b*c=d,e:f')).toBe('a/b*c=d,e:f');
  expect(quoteWord('')).toBe("''");
  expect(quoteWord('a b')).toBe("'a b'");
  expect(quoteWord("it's")).toBe("'it'\\''s'");
  expect(quoteWord('$x')).toBe("'$x'");
});
