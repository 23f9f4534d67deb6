import { OutputTail } from './step-output';

test('a step that printed little keeps every line, even in one large chunk', () => {
  const t = new OutputTail();
  const long = `${'x'.repeat(OutputTail.KEEP + 100)}\nE: the reason\n`;
  t.push(Buffer.from(long));
  expect(t.text().split('\n')).toEqual(['x'.repeat(OutputTail.KEEP + 100), 'E: the reason']);
});

test('after older output is dropped, a line cut at the front is dropped too', () => {
  const t = new OutputTail();
  for (let i = 0; i < 200; i++) t.push(Buffer.from(`line ${i} ${'.'.repeat(100)}\n`));
  const lines = t.text().split('\n');
  expect(lines).toHaveLength(OutputTail.LINES);
  expect(lines[lines.length - 1]).toBe(`line 199 ${'.'.repeat(100)}`);
  expect(lines.every((l) => /^line \d+ \.{100}$/.test(l))).toBe(true);
});
