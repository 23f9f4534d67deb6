import { OutputTail, Redactor } from './step-output';

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

describe('Redactor', () => {
  const run = (values: string[], chunks: string[]): string => {
    const r = new Redactor(values.map((v) => Buffer.from(v)));
    const out = chunks.map((c) => r.push(Buffer.from(c)));
    return Buffer.concat([...out, r.end()]).toString();
  };

  test('masks a secret and its base64, also when split across chunks', () => {
    const b64 = Buffer.from('s3cr3t-value').toString('base64');
    expect(
      run(['s3cr3t-value\n'], ['tok: s3cr', '3t-value\nb64: ', b64.slice(0, 5), b64.slice(5)]),
    ).toBe('tok: ****\nb64: ****');
  });

  test('passes other output on unchanged, and everything without secrets at once', () => {
    expect(run(['abcdef'], ['abcde', 'x abc', 'd'])).toBe('abcdex abcd');
    const r = new Redactor([]);
    expect(r.push(Buffer.from('all')).toString()).toBe('all');
    expect(r.end().length).toBe(0);
  });
});
