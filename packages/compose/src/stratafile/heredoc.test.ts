import { execFileSync } from 'node:child_process';
import { CopyInstruction, Instruction, RunInstruction, parseStratafile } from '../stratafile';
import { heredocMarkers } from './heredoc';
import { logicalLines } from './lines';

function steps(src: string): Instruction[] {
  return parseStratafile(`FROM base\n${src}`, 'Stratafile').stages[0]?.steps ?? [];
}

function run(src: string): RunInstruction {
  const found = steps(src).find((s): s is RunInstruction => s.kind === 'RUN');
  if (found === undefined) throw new Error('no RUN');
  return found;
}

function copies(src: string): CopyInstruction[] {
  return steps(src).filter((s): s is CopyInstruction => s.kind === 'COPY');
}

/** What /bin/sh prints running the step's command as the build does (`sh -c`). */
function sh(step: RunInstruction): string {
  if (typeof step.command !== 'string') throw new Error('not the shell form');
  return execFileSync('/bin/sh', ['-c', step.command], {
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', X: 'x-value' },
  });
}

test('markers: at a word start, outside quotes, not <<< or a shift', () => {
  const words = (t: string) => heredocMarkers(t).map((m) => [m.delimiter, m.stripTabs, m.quoted]);
  expect(words('RUN cat <<EOF > /a')).toEqual([['EOF', false, false]]);
  expect(words(`RUN cat <<-'END' <<"B" | x`)).toEqual([
    ['END', true, true],
    ['B', false, true],
  ]);
  expect(words('RUN cat <<EOF>/a')).toEqual([['EOF', false, false]]);
  expect(words('RUN cat /dev/fd/3 - 3<<A <<-B')).toEqual([
    ['A', false, false],
    ['B', true, false],
  ]);
  expect(words('RUN echo "<<EOF" \'<<B\' \\<<C $((1<<2)) <<<here')).toEqual([]);
});

test('the lines of a heredoc are kept as written, and the instruction after it is read', () => {
  const src = 'FROM base\nRUN cat <<EOF > /a\n# not a comment\n\n  x \\\nEOF\nRUN true\n';
  const lines = logicalLines(src);
  expect(lines.map((l) => l.text)).toEqual(['FROM base', 'RUN cat <<EOF > /a', 'RUN true']);
  expect(lines[1]?.heredocs?.[0]?.lines).toEqual(['# not a comment', '', '  x \\']);
  expect(lines[2]?.pos[0]).toEqual({ line: 7, column: 1 });
});

test('RUN <<EOF alone runs its lines as a /bin/sh script', () => {
  const step = run('RUN <<EOF\nset -e\necho "one $X"\n\n# a comment\necho two\nEOF');
  expect(step.command).toBe('set -e\necho "one $X"\n\n# a comment\necho two\n');
  expect(step.text).toBe('RUN <<EOF\nset -e\necho "one $X"\n\n# a comment\necho two\nEOF');
  expect(sh(step)).toBe('one x-value\ntwo\n');
});

test('RUN <<EOF with a #! line runs that interpreter on the script, stdin left alone', () => {
  const step = run(
    "RUN <<'PY'\n#!/usr/bin/env python3\nimport sys\nprint('py', sys.stdin.read() == '')\nPY",
  );
  expect(sh(step)).toBe('py True\n');
  // A script holding the word that ends the descriptor's here-document still runs whole.
  const tricky = run('RUN <<EOF\n#!/bin/sh -e\necho STRATA_SCRIPT_END\nEOF');
  expect(sh(tricky)).toBe('STRATA_SCRIPT_END\n');
});

test('RUN cmd <<EOF gives the shell the command and the here-documents as written', () => {
  const step = run(
    'RUN --mount=type=secret,id=k cat /dev/fd/3 - 3<<A <<-B\nfirst $X\nA\n\tsecond\n\tB\nRUN true',
  );
  expect(step.command).toBe('cat /dev/fd/3 - 3<<A <<-B\nfirst $X\nA\n\tsecond\n\tB');
  expect(step.text).toBe(
    'RUN --mount=type=secret,id=k cat /dev/fd/3 - 3<<A <<-B\nfirst $X\nA\n\tsecond\n\tB',
  );
  expect(sh(step)).toBe('first x-value\nsecond\n');
  expect(
    steps('RUN cat /dev/fd/3 - 3<<A <<-B\nfirst\nA\n\tsecond\n\tB\nRUN true').map((s) => s.kind),
  ).toEqual(['RUN', 'RUN']);
});

test('<<-EOF drops leading tabs from a script and its end line; a quoted word is taken literally', () => {
  const step = run("RUN <<-'EOF'\n\techo '$X'\n\t\tEOF");
  expect(step.command).toBe("echo '$X'\n");
  expect(sh(step)).toBe('$X\n');
});

test('a heredoc that the file ends inside is an error at its marker', () => {
  expect(() => steps('RUN <<EOF\necho hi')).toThrow(
    'Stratafile:2:5: here-document <<EOF is not closed: the file ends before a line "EOF"',
  );
});

test('COPY <<EOF writes its lines, each with a newline, substituted from ARG and ENV', () => {
  const [copy] = copies(
    'ARG NAME=gw\nENV E=env\nCOPY <<EOF /etc/app.conf\nname=$NAME ${E}-${NOPE:-d} "q" \\$X \\n\n\n# kept\nEOF\nRUN true',
  );
  expect(copy).toMatchObject({
    sources: [],
    sourceLocs: [],
    heredocs: [
      {
        name: 'EOF',
        content: 'name=gw env-d "q" $X \\n\n\n# kept\n',
        loc: { line: 4, column: 6 },
      },
    ],
    dest: '/etc/app.conf',
    text: 'COPY <<EOF /etc/app.conf\nname=$NAME ${E}-${NOPE:-d} "q" \\$X \\n\n\n# kept\nEOF',
  });
  // The host's environment is never read.
  expect(copies('COPY <<EOF /x\n$HOME$PATH.\nEOF')[0]?.heredocs?.[0]?.content).toBe('.\n');
  expect(copies('COPY <<EOF /x\nEOF')[0]?.heredocs?.[0]?.content).toBe('');
});

test('COPY <<\'EOF\' and <<"EOF" are literal; <<-EOF drops leading tabs', () => {
  const [single, double, tabs] = copies(
    'ARG A=1\nCOPY <<\'EOF\' /a\n$A ${A}\nEOF\nCOPY <<"EOF" /b\n$A\nEOF\nCOPY <<-EOF /c\n\t\t$A\n\t x\n\tEOF\n',
  );
  expect(single?.heredocs?.[0]?.content).toBe('$A ${A}\n');
  expect(single?.text).toBe("COPY <<'EOF' /a\n$A ${A}\nEOF");
  expect(double?.heredocs?.[0]?.content).toBe('$A\n');
  expect(tabs?.heredocs?.[0]?.content).toBe('1\n x\n');
});

test('COPY takes several here-documents and context sources into a directory, by their names', () => {
  const [copy] = copies(
    'ARG D=/etc/app/\nCOPY --chown=daemon <<a.conf conf/x <<-"b.conf" $D\none\na.conf\n\ttwo\n\tb.conf\n',
  );
  expect(copy).toMatchObject({
    sources: ['conf/x'],
    sourceLocs: [{ line: 3, column: 30 }],
    heredocs: [
      { name: 'a.conf', content: 'one\n', loc: { line: 3, column: 21 } },
      { name: 'b.conf', content: 'two\n', loc: { line: 3, column: 37 } },
    ],
    dest: '/etc/app/',
    chown: 'daemon',
  });
  expect(copy?.text).toBe(
    'COPY --chown=daemon <<a.conf conf/x <<-"b.conf" /etc/app/\none\na.conf\n\ttwo\n\tb.conf',
  );
  // A COPY without here-documents has no such field, as before.
  expect(copies('COPY a /b')[0]).not.toHaveProperty('heredocs');
});

test('COPY here-document errors point at the marker', () => {
  const cases: Array<[string, string]> = [
    [
      'FROM base AS a\nRUN true\nFROM base\nCOPY --from=a <<EOF /x\nx\nEOF',
      'Stratafile:4:15: COPY --from cannot copy here-document <<EOF: its sources are in the stage',
    ],
    [
      "FROM base\nCOPY <<'a/b' <<c /etc/\nx\na/b\ny\nc",
      'Stratafile:2:6: here-document <<a/b copied into the directory /etc/ needs a plain file name as its delimiter',
    ],
    ["FROM base\nCOPY <<'..' /etc/\nx\n..", 'Stratafile:2:6: here-document <<.. copied into'],
    [
      'FROM base\nCOPY <<a <<b /etc/x\nx\na\ny\nb',
      'Stratafile:2:14: COPY with several sources needs a directory destination ending in "/"',
    ],
    [
      'FROM base\nCOPY a <<EOF\nx\nEOF',
      'Stratafile:2:8: the destination of a COPY cannot be a here-document',
    ],
    ['FROM base\nCOPY 3<<EOF /x\nx\nEOF', 'Stratafile:2:7: here-document <<EOF must be a word'],
    ['FROM base\nCOPY <<EOF /x\nx', 'Stratafile:2:6: here-document <<EOF is not closed'],
    ['FROM base\nCOPY <<EOF /x\n  ${A:-x\nEOF', 'Stratafile:3:3: unterminated "${"'],
  ];
  for (const [src, message] of cases)
    expect(() => parseStratafile(src, 'Stratafile')).toThrow(message);
});
