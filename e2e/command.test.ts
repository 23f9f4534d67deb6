/**
 * The `strata` command as a user runs it: the package's bin (packages/cli/bin/strata.js), started
 * by its `#!/usr/bin/env node` line, directly or through a symlink as npm links bins. Each test
 * runs the real command in new processes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, REPO_ROOT, cleanupTmp, minbaseRootfs, run, runOk, tmpDir } from './helpers';

afterAll(cleanupTmp);

const version = (
  JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;

/** A new store that holds the minbase template as b:1. */
async function minbaseStore(): Promise<string> {
  const store = path.join(tmpDir(), 'store');
  const { minbaseTar } = await minbaseRootfs();
  await runOk(CLI, [
    '--store',
    store,
    'template',
    'create',
    minbaseTar,
    '-t',
    'b:1',
    '--name',
    'b',
  ]);
  return store;
}

describe('the strata command', () => {
  it('is the bin that package.json names, and prints its version', async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(path.join(REPO_ROOT, pkg.bin.strata ?? '')).toBe(CLI);
    const r = await runOk(CLI, ['--version']);
    expect(r.stdout.trim()).toBe(version);
    expect(r.stderr).toBe('');
  });

  it('runs through a symlink, as npm links it, and --help lists the commands', async () => {
    const link = path.join(tmpDir(), 'strata');
    fs.symlinkSync(CLI, link);
    const r = await runOk(link, ['--help'], { cwd: tmpDir() });
    expect(r.stdout).toMatch(/^strata <command> \[options\]/);
    for (const cmd of ['template', 'build', 'push', 'pull', 'flatten'])
      expect(r.stdout).toMatch(new RegExp(`^ {2}strata ${cmd}\\b`, 'm'));
    expect(r.stderr).toBe('');
  });

  it('a usage error is one line on stderr and exit code 2', async () => {
    for (const args of [[], ['no-such-command'], ['ls', '--no-such-option']]) {
      const r = await run(CLI, ['--store', tmpDir(), ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^strata: error: /);
    }
  });

  it('a reader that closes the pipe early is not an error', async () => {
    // `true` exits at once, so strata writes its help into a pipe nobody reads (EPIPE).
    const status = path.join(tmpDir(), 'status');
    const r = await runOk('sh', ['-c', '{ "$0" --help; echo $? > "$1"; } | true', CLI, status]);
    expect(fs.readFileSync(status, 'utf8').trim()).toBe('0');
    expect(r.stderr).toBe('');
  });

  it('writes all of a large output into a pipe before it exits', async () => {
    // A pipe takes 64 KiB at a time; the rest of one write waits in the process.
    const store = await minbaseStore();
    const file = path.join(tmpDir(), 'sbom.json');
    await runOk(CLI, ['--store', store, 'sbom', 'b:1', '-o', file]);
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(128 * 1024);
    const piped = await runOk('sh', ['-c', '"$0" --store "$1" sbom b:1 | wc -c', CLI, store]);
    expect(Number(piped.stdout.trim())).toBe(size);
  }, 120_000);

  it('makes the folders an output path needs, and an output it cannot write fails first, naming the option', async () => {
    const store = await minbaseStore();
    const out = tmpDir();
    await runOk(CLI, ['--store', store, 'flatten', 'b:1', '--rootfs', `${out}/new/dir/rootfs.tar`]);
    await runOk(CLI, ['--store', store, 'save', 'b:1', '-o', `${out}/saved/b.tmpl.img`]);
    expect(fs.statSync(`${out}/new/dir/rootfs.tar`).size).toBeGreaterThan(1 << 20);
    expect(fs.statSync(`${out}/saved/b.tmpl.img`).size).toBeGreaterThan(1 << 20);
    fs.writeFileSync(`${out}/file`, '');
    for (const [args, what] of [
      [
        ['flatten', 'b:1', '--rootfs', '/proc/rootfs.tar'],
        '--rootfs /proc/rootfs.tar: its directory takes no new files',
      ],
      [
        ['save', 'b:1', '-o', `${out}/file/b.tmpl.img`],
        `-o ${out}/file/b.tmpl.img: a parent is not a directory`,
      ],
      [
        ['image', 'b:1', '--ext4', `${out}/file/x/b.ext4`],
        `--ext4 ${out}/file/x/b.ext4: a parent is not a directory`,
      ],
    ] as const) {
      const r = await run(CLI, ['--store', store, ...args]);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({
        args,
        code: 2,
        stderr: `strata: error: cannot write ${what}\n`,
      });
    }
    // A file output that is a folder, a folder output that is a file.
    const dir = await run(CLI, ['--store', store, 'sbom', 'b:1', '-o', `${out}/new`]);
    expect([dir.code, dir.stderr]).toEqual([
      2,
      `strata: error: cannot write -o ${out}/new: it is a directory (hint: name a file in it)\n`,
    ]);
    const file = await run(CLI, ['--store', store, 'debs', 'b:1', '-o', `${out}/file`]);
    expect([file.code, file.stderr]).toEqual([
      2,
      `strata: error: cannot write -o ${out}/file: it is a file, not a folder\n`,
    ]);
    expect(fs.readdirSync(out).sort()).toEqual(['file', 'new', 'saved']);
    // `-o -` is stdout, and never a file named "-".
    const sbom = await runOk(CLI, ['--store', store, 'sbom', 'b:1', '-o', '-'], { cwd: out });
    expect(JSON.parse(sbom.stdout)).toMatchObject({ spdxVersion: 'SPDX-2.3' });
    const page = await runOk(CLI, ['--store', store, 'report', 'b:1', '-o', '-'], { cwd: out });
    expect(page.stdout).toMatch(/^<!DOCTYPE html>/);
    expect(page.stdout).toMatch(/<\/html>\n?$/);
    expect(fs.readdirSync(out).sort()).toEqual(['file', 'new', 'saved']);
  }, 120_000);
});
