import { failureReason } from './engine';

test("failureReason takes apt's first E: line, not the consequences after it", () => {
  const out = [
    'Reading package lists...',
    'E: Unable to locate package mosquito',
    'E: Sub-process /usr/bin/dpkg returned an error code (1)',
    '',
  ].join('\n');
  expect(failureReason(out)).toBe('E: Unable to locate package mosquito');
});

test('failureReason falls back to the last line a step printed', () => {
  expect(failureReason("chown: invalid user: 'appuser'\n\n")).toBe(
    "chown: invalid user: 'appuser'",
  );
  expect(failureReason('')).toBeUndefined();
});
