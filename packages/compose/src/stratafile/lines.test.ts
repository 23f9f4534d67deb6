import { LogicalLine, logicalLines, trimLine } from './lines';

/** Each character of a logical line with the `line:column` it came from. */
function located(l: LogicalLine): string[] {
  return l.text.split('').map((c, i) => `${c}@${l.pos[i]?.line}:${l.pos[i]?.column}`);
}

test('logical lines: comments and blanks dropped, continuations joined, positions kept', () => {
  const lines = logicalLines(
    '\uFEFF# c\r\n  RUN a \\  \r\n\r\n  # inside\r\n b\r\n\r\nENV x=1\\\n',
  );
  expect(lines.map((l) => l.text)).toEqual(['RUN a  b', 'ENV x=1']);
  const [run, env] = lines as [LogicalLine, LogicalLine];
  expect(located(run)).toEqual([
    'R@2:3',
    'U@2:4',
    'N@2:5',
    ' @2:6',
    'a@2:7',
    ' @2:8',
    ' @5:1',
    'b@5:2',
  ]);
  // One more position than characters: where the instruction ends.
  expect(run.pos).toHaveLength(run.text.length + 1);
  expect(run.pos[run.text.length]).toEqual({ line: 5, column: 3 });
  expect(env.pos[env.text.length]).toEqual({ line: 7, column: 8 });
});

test('columns count code points, not UTF-16 units', () => {
  const [l] = logicalLines('LABEL a=\u{1F600}b') as [LogicalLine];
  // Both halves of the surrogate pair are in column 9.
  expect(l.pos.slice(7).map((p) => p.column)).toEqual([8, 9, 9, 10, 11]);
});

test('trimLine drops trailing blanks and keeps the end position in step', () => {
  const [l] = logicalLines('ENV a b \t') as [LogicalLine];
  const t = trimLine(l);
  expect(t.text).toBe('ENV a b');
  expect(t.pos).toHaveLength(8);
  expect(t.pos[7]).toEqual({ line: 1, column: 8 });
});
