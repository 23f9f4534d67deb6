import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '@strata/store';
import { main } from './main';

/** Run the CLI in-process; what it wrote to stdout and stderr, and its exit code. */
async function cli(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((s) => {
    stdout += String(s);
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((s) => {
    stderr += String(s);
    return true;
  });
  try {
    return { code: await main(argv), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe('a failed command with --json', () => {
  it('a usage error: its line on stderr, its object on stdout, exit 2', async () => {
    const r = await cli(['inspect', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'strata: error: Not enough non-option arguments: got 0, need at least 1\n',
    );
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        code: 'INVALID_ARGUMENT',
        message: 'Not enough non-option arguments: got 0, need at least 1',
        exitCode: 2,
      },
    });
  });

  it('a command that fails: the same error in both', async () => {
    const store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-main-'));
    try {
      const r = await cli(['--store', store, '--json', 'inspect', 'nope:1']);
      expect(r.code).toBe(1);
      const doc = JSON.parse(r.stdout) as { error: Record<string, unknown> };
      expect(doc.error).toMatchObject({ code: 'NOT_FOUND', exitCode: 1 });
      expect(r.stderr).toBe(
        `strata: error: ${String(doc.error.message)} (hint: ${String(doc.error.hint)})\n`,
      );
    } finally {
      fs.rmSync(store, { recursive: true, force: true });
    }
  });

  it('without --json, stdout stays empty', async () => {
    const r = await cli(['inspect']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });
});

describe("yargs' usage errors", () => {
  it('are one line that says what was wrong, exit 2', async () => {
    const bad = await cli(['build', '--compression', 'lz4', '.']);
    expect([bad.code, bad.stderr]).toEqual([
      2,
      'strata: error: --compression "lz4" is not one of: zstd, gzip\n',
    ]);
    const unknown = await cli(['xyzzy']);
    expect([unknown.code, unknown.stderr]).toEqual([
      2,
      'strata: error: unknown command "xyzzy" (strata --help lists the commands)\n',
    ]);
  });

  it('a mistyped option is named as written, with the one meant when it is close (exit 2)', async () => {
    for (const [argv, said] of [
      [['build', '--no-cahce', '.'], 'unknown option --no-cahce; did you mean --no-cache?'],
      [['flatten', 'x', '-o', 'f'], 'unknown option -o'],
      [['ls', '-x'], 'unknown option -x'],
    ] as const) {
      const r = await cli([...argv]);
      expect([r.code, r.stderr]).toEqual([2, `strata: error: ${said}\n`]);
    }
  });

  it('an option that takes one value, given twice, is named (exit 2)', async () => {
    const r = await cli(['flatten', 'T', '--rootfs', 'a.tar', '--rootfs', 'b.tar']);
    expect([r.code, r.stderr]).toEqual([
      2,
      'strata: error: --rootfs given twice; give it once (a.tar, b.tar)\n',
    ]);
    const file = await cli(['build', '-f', 'a', '-f', 'b', '-f', 'c', '.']);
    expect(file.stderr).toBe('strata: error: -f/--file given 3 times; give it once (a, b, c)\n');
  });

  it('build takes -t more than once, as docker build does, and checks every tag', async () => {
    const store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-main-'));
    try {
      const r = await cli(['--store', store, 'build', '-t', 'a:1', '-t', 'a:Not Valid', store]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^strata: error: .*a:Not Valid/);
      expect(r.stderr).not.toMatch(/given twice/);
    } finally {
      fs.rmSync(store, { recursive: true, force: true });
    }
  });

  it("what a command's checks refuse is a usage error, exit 2", async () => {
    for (const argv of [
      ['flatten', 'T', '--json'],
      ['image', 'T'],
      ['image', 'T', '--wks', 'disk.wks'],
    ]) {
      const r = await cli(argv);
      expect(r.code).toBe(2);
      if (argv.includes('--json'))
        expect(JSON.parse(r.stdout)).toMatchObject({ error: { code: 'INVALID_ARGUMENT' } });
    }
  });

  it.each([
    [['push', 'a', 'localhost:1/a:1', '--jobs', 'abc'], '--jobs must be a whole number, 1 or more'],
    [
      ['push', 'a', 'localhost:1/a:1', '-j', '0'],
      '--jobs must be a whole number, 1 or more, not 0',
    ],
    [
      ['pull', 'localhost:1/a:1', '--timeout', '-3'],
      '--timeout must be a positive number of seconds, not -3',
    ],
    [
      ['push', 'a', 'localhost:1/a:1', '--chunk-size', '1.5'],
      '--chunk-size must be a whole number',
    ],
    [['diff', 'a', 'b', '--depth', '0'], '--depth must be a whole number, 1 or more, not 0'],
  ])('a numeric option out of range is a usage error: %j', async (argv, message) => {
    const r = await cli(argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it("--build-arg of check takes one value, as build's does: the tag after it stays the tag", async () => {
    const store = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-main-'));
    try {
      await Store.open(store);
      const r = await cli(['--store', store, 'check', '--build-arg', 'A=1', 'product:1']);
      expect(r.stderr).not.toContain('non-option');
      expect(r.stderr).toContain('product:1');
    } finally {
      fs.rmSync(store, { recursive: true, force: true });
    }
  });

  it('two outputs that are one file, or an output that is an input, are refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-main-'));
    try {
      const same = path.join(dir, 'same.tar');
      const r = await cli(['flatten', 'T', '--rootfs', same, '--buildchroot', `${dir}/./same.tar`]);
      expect([r.code, r.stderr]).toEqual([
        2,
        `strata: error: --buildchroot ${dir}/./same.tar is also the --rootfs output: give each output a file of its own\n`,
      ]);
      const wks = path.join(dir, 'disk.wks');
      fs.writeFileSync(wks, 'part / --fstype=ext4\n');
      fs.symlinkSync(wks, path.join(dir, 'link.img'));
      for (const out of [wks, path.join(dir, 'link.img')]) {
        const i = await cli(['image', 'T', '--wks', wks, '-o', out]);
        expect([i.code, i.stderr]).toEqual([
          2,
          `strata: error: -o ${out} is the --wks input: give each output a file of its own\n`,
        ]);
      }
      expect(fs.readFileSync(wks, 'utf8')).toBe('part / --fstype=ext4\n');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
