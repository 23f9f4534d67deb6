/**
 * Progress output: bars with bytes, rate and time left on a terminal (the CLI run under
 * `script`, which gives it a pseudo-terminal), plain lines without control characters off one,
 * and only the final line with --quiet.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CLI,
  cleanupTmp,
  minbaseRootfs,
  run,
  strata,
  strataOk,
  tmpDir,
  type RunResult,
} from './helpers';
import { startRegistry, type Registry } from './registry-fixtures';

jest.setTimeout(120_000);

let store: string;
let reg: Registry;
let repo: string;

beforeAll(async () => {
  const fx = await minbaseRootfs();
  store = tmpDir();
  await strataOk(['-q', 'template', 'create', fx.minbaseTar, '-t', 'base:1', '--name', 'base'], {
    store,
  });
  reg = await startRegistry();
  repo = `127.0.0.1:${reg.port}/progress/base:1`;
  await strataOk(['-q', 'push', 'base:1', repo], { store });
}, 300_000);

afterAll(async () => {
  await reg?.stop();
  cleanupTmp();
});

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Run strata on a pseudo-terminal: what it wrote to stdout and stderr, as the terminal got it. */
function onTerminal(args: string[], storeDir: string): Promise<RunResult> {
  // A pty made by script has no size until one is set.
  const cmd = `stty cols 200 rows 50; exec ${[process.execPath, CLI, '--store', storeDir, ...args].map(quote).join(' ')}`;
  return run('script', ['-qec', cmd, '/dev/null'], {
    env: { CI: undefined, TERM: 'xterm', COLUMNS: '200', NO_COLOR: '1' },
  });
}

// A bar: `[###...] 42% 12.0 MiB / 28.5 MiB 3.1 MiB/s ETA 5.3s`.
const BAR =
  /\[#*\.*\] \d+% [\d.]+ (B|KiB|MiB|GiB) \/ [\d.]+ (B|KiB|MiB|GiB) [\d.]+ (B|KiB|MiB|GiB)\/s ETA (\d|\?)/;
const ESC = String.fromCharCode(0x1b);
const CONTROL = new RegExp(`[${ESC}\r]`);

test('on a terminal, pull and flatten draw bars with bytes, rate and time left', async () => {
  const other = tmpDir();
  const pull = await onTerminal(['pull', repo, '-t', 'pulled:1'], other);
  expect(pull.code).toBe(0);
  expect(pull.stdout).toMatch(/total \(\d+ blobs\) /);
  expect(pull.stdout).toMatch(BAR);
  expect(pull.stdout).toMatch(/[0-9a-f]{12} downloaded [\d.]+ (KiB|MiB)/);
  expect(pull.stdout).toMatch(/pulled .* as pulled:1 sha256:/);

  const out = path.join(tmpDir(), 'rootfs.tar');
  const flat = await onTerminal(['flatten', 'pulled:1', '--rootfs', out], other);
  expect(flat.code).toBe(0);
  expect(flat.stdout).toMatch(/rootfs: (reading layers|writing) .*ETA/);
  expect(flat.stdout).toMatch(BAR);
  expect(flat.stdout).toMatch(/flattened pulled:1 \(rootfs, 1 layer\) to /);
  expect(fs.statSync(out).size).toBeGreaterThan(1024 * 1024);
});

test('off a terminal, pull and flatten print their final line and no control characters', async () => {
  const other = tmpDir();
  const pull = await strataOk(['pull', repo, '-t', 'pulled:1'], {
    store: other,
    env: { CI: undefined },
  });
  expect(pull.stderr).not.toMatch(CONTROL);
  expect(pull.stdout).not.toMatch(CONTROL);
  expect(pull.stdout).toMatch(/^pulled .* as pulled:1 sha256:[0-9a-f]{64} .*\n$/);
  const out = path.join(tmpDir(), 'rootfs.tar');
  const flat = await strataOk(['flatten', 'pulled:1', '--rootfs', out], {
    store: other,
    env: { CI: undefined },
  });
  expect(flat.stderr + flat.stdout).not.toMatch(CONTROL);
  expect(flat.stdout.trim().split('\n')).toHaveLength(1);
});

test('a build prints one plain line per step, with its time; --quiet only the final line', async () => {
  const ctx = tmpDir();
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    'FROM base:1\nRUN echo one > /etc/one\nRUN echo two > /etc/two\n',
  );
  const r = await strata(['build', '--no-cache', '-t', 'steps:1', ctx], {
    store,
    env: { CI: undefined },
  });
  expect(r.code).toBe(0);
  expect(r.stderr).not.toMatch(CONTROL);
  const steps = r.stderr.split('\n').filter((l) => l.startsWith('['));
  expect(steps).toEqual([
    expect.stringMatching(/^\[1\/2\] RUN echo one > \/etc\/one: layer [0-9a-f]{12} .* in [\d.]+s$/),
    expect.stringMatching(/^\[2\/2\] RUN echo two > \/etc\/two: layer [0-9a-f]{12} .* in [\d.]+s$/),
  ]);

  const q = await strata(['build', '-q', '-t', 'steps:2', ctx], { store, env: { CI: undefined } });
  expect(q.code).toBe(0);
  expect(q.stderr).toBe('');
  expect(q.stdout).toMatch(/^built steps:2 sha256:[0-9a-f]{64} .*\n$/);
});

test('--quiet on a terminal: push and pull print only their final line', async () => {
  const other = tmpDir();
  const pull = await onTerminal(['-q', 'pull', repo, '-t', 'quiet:1'], other);
  expect(pull.code).toBe(0);
  expect(pull.stdout).not.toContain(ESC);
  expect(pull.stdout.trim().split(/\r?\n/)).toEqual([
    expect.stringMatching(/^pulled .* as quiet:1 /),
  ]);
  const push = await onTerminal(['--quiet', 'push', 'quiet:1', repo], other);
  expect(push.code).toBe(0);
  expect(push.stdout.trim().split(/\r?\n/)).toEqual([expect.stringMatching(/^pushed quiet:1 to /)]);
});
