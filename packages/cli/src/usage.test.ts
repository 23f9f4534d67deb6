import { unknownOptions, usageMessage } from './usage';

test('an unknown command is named, with what yargs thinks was meant', () => {
  expect(usageMessage('Did you mean login?', ['--store', 'st', 'bogus', '-q'])).toBe(
    'unknown command "bogus"; did you mean login?',
  );
});

test('an invalid choice is one line naming the option, the value and the choices', () => {
  expect(
    usageMessage(
      'Invalid values:\n  Argument: compression, Given: "foo", Choices: "zstd", "gzip"',
      [],
    ),
  ).toBe('--compression "foo" is not one of: zstd, gzip');
  expect(
    usageMessage(
      'Invalid values:\n  Argument: a, Given: "x", Choices: "y"\n  Argument: b, Given: 3, Choices: 1, 2',
      [],
    ),
  ).toBe('--a "x" is not one of: y; --b 3 is not one of: 1, 2');
});

test('any other message keeps its words, on one line', () => {
  expect(usageMessage('Missing required arguments: name, tag\n', [])).toBe(
    'Missing required arguments: name, tag',
  );
  expect(usageMessage('first\n  second', [])).toBe('first; second');
});

test("yargs' unknown arguments say whether they are a command, an option or an extra word", () => {
  expect(usageMessage('Unknown argument: xyzzy', ['xyzzy'])).toBe(
    'unknown command "xyzzy" (strata --help lists the commands)',
  );
  expect(usageMessage('Unknown argument: bogus', ['ls', '--bogus'])).toBe('unknown option --bogus');
  expect(usageMessage('Unknown arguments: bogus, extra', ['ls', '--bogus=1', 'extra'])).toBe(
    'unknown option --bogus; unexpected argument "extra"',
  );
});

test("an unknown --bogus-flag is named once, not again as yargs' camelCase bogusFlag", () => {
  expect(usageMessage('Unknown arguments: bogus-flag, bogusFlag', ['build', '--bogus-flag'])).toBe(
    'unknown option --bogus-flag',
  );
});

test('an unknown option that took the positional for its value is named', () => {
  const known = new Set(['store', 'json', 'no-packages', 'packages', 'build-arg', 'buildArg']);
  const msg = 'Not enough non-option arguments: got 0, need at least 1';
  expect(usageMessage(msg, ['check', '--bogus', 'product:1'], known)).toBe(
    'unknown option --bogus',
  );
  expect(usageMessage(msg, ['check', '--no-packages', '--build-arg=A=1'], known)).toBe(msg);
  expect(unknownOptions(['--no-packages', '--x=1', '--', '--y'], known)).toEqual(['x']);
});

test('a mistyped option is named as it was written, with the option meant when one is close', () => {
  const known = new Set(['store', 'json', 'cache', 'no-cache', 'file', 'f', 'tag', 't', 'quiet']);
  expect(usageMessage('Unknown argument: cahce', ['build', '--no-cahce', '.'], known)).toBe(
    'unknown option --no-cahce; did you mean --no-cache?',
  );
  expect(usageMessage('Unknown argument: tga', ['build', '--tga', 'a:1', '.'], known)).toBe(
    'unknown option --tga; did you mean --tag?',
  );
  expect(usageMessage('Unknown argument: xyzzy', ['build', '--xyzzy', '.'], known)).toBe(
    'unknown option --xyzzy',
  );
  // Short options: -o of flatten, -x of ls, -u and -p of login.
  expect(usageMessage('Unknown argument: o', ['flatten', 'x', '-o', 'f'], known)).toBe(
    'unknown option -o',
  );
  expect(usageMessage('Unknown argument: x', ['ls', '-x'], known)).toBe('unknown option -x');
  expect(
    usageMessage('Unknown arguments: u, p', ['login', '-u', 'a', '-p', 'pw', 'r'], known),
  ).toBe('unknown option -u; unknown option -p');
});
