import { ParseError } from '@strata/oci';
import { Lexer, SPLIT_WORDS, WORDS, scanJsonArray } from './lexer';
import { LogicalLine, logicalLines } from './lines';

const VARS: Record<string, string> = { A: 'x y', E: '' };

function lexer(text: string): Lexer {
  const [line] = logicalLines(text) as [LogicalLine];
  return new Lexer('F', line, (name) => VARS[name]);
}

test('words: quotes removed, escapes and substitutions applied, each with where it starts', () => {
  const lx = lexer(`a'b c'"$A\\"" \\$A \${E:-d} \${E-d} "" $`);
  expect(lx.words(0, WORDS).map((w) => [w.value, w.raw, w.start])).toEqual([
    ['ab cx y"', `a'b c'"$A\\""`, 0],
    ['$A', '\\$A', 13],
    ['d', '${E:-d}', 17],
    ['', '${E-d}', 25],
    ['', '""', 32],
    ['$', '$', 35],
  ]);
});

test('in list instructions an unquoted substitution splits into words, a quoted one does not', () => {
  expect(
    lexer('$A "$A"')
      .words(0, SPLIT_WORDS)
      .map((w) => w.value),
  ).toEqual(['x', 'y', 'x y']);
  expect(
    lexer('$A')
      .words(0, WORDS)
      .map((w) => w.value),
  ).toEqual(['x y']);
});

test('lexing errors point at the quote or the dollar', () => {
  const at = (text: string): [number, number, string] => {
    try {
      lexer(text).words(0, WORDS);
    } catch (e) {
      if (e instanceof ParseError) return [e.line, e.column, e.message];
    }
    throw new Error('no error');
  };
  expect(at(`ok 'open`)).toEqual([1, 4, 'F:1:4: unterminated single quote']);
  expect(at('ok "open')).toEqual([1, 4, 'F:1:4: unterminated double quote']);
  expect(at('ok ${A')).toEqual([1, 4, expect.stringContaining('bad substitution ${A')]);
  expect(at('ok ${A:-x')).toEqual([1, 4, 'F:1:4: unterminated "${": missing "}"']);
  expect(at('ok ${1}')).toEqual([1, 4, expect.stringContaining('expected a variable name')]);
});

test('JSON arrays: exactly an array of strings, or null', () => {
  expect(scanJsonArray(' ["a", "b\\"c"] ', 0)).toEqual([
    { value: 'a', start: 2 },
    { value: 'b"c', start: 7 },
  ]);
  expect(scanJsonArray('[]', 0)).toEqual([]);
  for (const t of ['["a",]', '["a"] x', '[1]', 'echo [', '["a"', '["\\q"]']) {
    expect(scanJsonArray(t, 0)).toBeNull();
  }
});
