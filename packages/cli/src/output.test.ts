import { InvalidArgumentError, NotFoundError, ParseError } from '@strata/oci';
import { BuildStepError } from '@strata/compose';
import { interrupted } from './interrupt';
import {
  ExitCodeError,
  counted,
  errorDocument,
  jsonRequested,
  progressFigures,
  visible,
} from './output';

describe('progressFigures', () => {
  it('shows bytes against the total while they stay within it', () => {
    expect(progressFigures(50 * 1024 * 1024, 100 * 1024 * 1024)).toEqual({
      text: '50.0 MiB / 100.0 MiB',
      fraction: 0.5,
    });
    expect(progressFigures(1024, undefined)).toEqual({ text: '1.0 KiB' });
  });

  it('never shows more bytes than the total: an overrun grows the total and marks it ~', () => {
    const mib = 1024 * 1024;
    const f = progressFigures(179.4 * mib, 177.4 * mib);
    expect(f.text).toBe('179.4 MiB / ~179.4 MiB');
    expect(f.fraction).toBe(1);
  });

  it('marks a total the caller calls an estimate', () => {
    expect(progressFigures(1024, 2048, true).text).toBe('1.0 KiB / ~2.0 KiB');
  });
});

test('counted says "1 step run", not "1 steps run"', () => {
  expect(`${counted(1, 'step')} run`).toBe('1 step run');
  expect(counted(0, 'step')).toBe('0 steps');
  expect(counted(2, 'entry', 'entries')).toBe('2 entries');
});

describe('errorDocument: the object a failed command prints on stdout with --json', () => {
  it('carries a StrataError’s code, message, hint and exit code', () => {
    const e = new NotFoundError('no image x:1 in the store /s', { hint: 'see `strata ls`' });
    expect(errorDocument(e)).toEqual({
      error: {
        code: 'NOT_FOUND',
        message: 'no image x:1 in the store /s',
        hint: 'see `strata ls`',
        exitCode: 1,
      },
    });
    expect(errorDocument(new InvalidArgumentError('bad')).error.exitCode).toBe(2);
    expect(errorDocument(interrupted()).error).toEqual({
      code: 'INTERRUPTED',
      message: 'interrupted',
      exitCode: 130,
    });
  });

  it('names the Stratafile location of a failed step or a parse error', () => {
    const loc = { file: '/ctx/Stratafile', line: 3, column: 1 };
    expect(errorDocument(new BuildStepError(loc, 'RUN failed with exit code 3')).error).toEqual({
      code: 'TOOL_FAILED',
      message: '/ctx/Stratafile:3:1: RUN failed with exit code 3',
      ...loc,
      exitCode: 1,
    });
    expect(errorDocument(new ParseError('/ctx/Stratafile', 2, 5, 'bad flag')).error).toMatchObject({
      code: 'PARSE_ERROR',
      file: '/ctx/Stratafile',
      line: 2,
      column: 5,
    });
  });

  it('keeps the exit code a command chose, with the code of what it wraps', () => {
    expect(errorDocument(new ExitCodeError(new NotFoundError('gone'), 2)).error).toEqual({
      code: 'NOT_FOUND',
      message: 'gone',
      exitCode: 2,
    });
  });

  it('calls any other failure INTERNAL, its message redacted', () => {
    const e = new Error('GET https://user:secret@registry.example/v2/: boom');
    const doc = errorDocument(e);
    expect(doc.error).toMatchObject({ code: 'INTERNAL', exitCode: 1 });
    expect(doc.error.message).not.toContain('secret');
  });
});

test('jsonRequested reads --json as yargs does, up to --', () => {
  expect(jsonRequested(['build', '--json', '.'])).toBe(true);
  expect(jsonRequested(['--json', 'bogus'])).toBe(true);
  expect(jsonRequested(['build', '.'])).toBe(false);
  expect(jsonRequested(['--json', '--no-json', 'ls'])).toBe(false);
  expect(jsonRequested(['--json=false', 'ls'])).toBe(false);
  expect(jsonRequested(['--json', 'false', 'ls'])).toBe(false);
  expect(jsonRequested(['--no-json', '--json=true'])).toBe(true);
  expect(jsonRequested(['run', '--', '--json'])).toBe(false);
});

test('visible: terminal controls in a line are written as \\xNN; tab and newline stay', () => {
  expect(visible('a\x1b[31mred\x07\tb\nc\x9bd')).toBe('a\\x1b[31mred\\x07\tb\nc\\x9bd');
  expect(visible('plain – ünïcode')).toBe('plain – ünïcode');
});
