import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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
});
