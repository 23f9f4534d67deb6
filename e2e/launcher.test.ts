/**
 * How the command starts: `npm run build` bundles the CLI into packages/cli/dist/strata.cjs, and
 * bin/strata.js runs that bundle with a V8 code cache in $XDG_CACHE_HOME/strata (or the directory
 * STRATA_CODE_CACHE names). Each test runs the real command in new processes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, REPO_ROOT, cleanupTmp, runOk, strata, strataOk, tmpDir } from './helpers';

afterAll(cleanupTmp);

const BUNDLE = path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'strata.cjs');

function cacheFiles(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.bin')) : [];
}

function commandsIn(file: string): string[] {
  const text = fs.readFileSync(file, 'latin1');
  const [magic, head] = text.split('\n', 2);
  expect(magic).toBe('strata code cache 1');
  return (JSON.parse(head as string) as { commands: string[] }).commands;
}

describe('the CLI bundle', () => {
  it('is built, is ASCII, and is what the command runs', async () => {
    const text = fs.readFileSync(BUNDLE, 'latin1');
    expect(/[^\t\n\r\x20-\x7e]/.test(text)).toBe(false);
    const pkg = JSON.parse(
      fs.readFileSync(path.join(REPO_ROOT, 'packages', 'cli', 'package.json'), 'utf8'),
    ) as { version: string };
    const cache = tmpDir();
    const r = await strataOk(['--version'], { store: tmpDir(), env: { STRATA_CODE_CACHE: cache } });
    expect(r.stdout.trim()).toBe(pkg.version);
    // Only the bundle's loader writes a code cache.
    expect(cacheFiles(cache)).toHaveLength(1);
  });
});

describe('what a command loads', () => {
  it("leaves out node:assert (yargs gets two functions of its own) and Node's ES module loader", async () => {
    // A module preloaded into the command's process reports, at exit, which of Node's built-in
    // modules were loaded.
    const dir = tmpDir();
    const probe = path.join(dir, 'probe.js');
    const out = path.join(dir, 'loaded.json');
    fs.writeFileSync(
      probe,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.moduleLoadList)));`,
    );
    const env = { STRATA_CODE_CACHE: tmpDir() };
    await runOk('node', ['-r', probe, CLI, '--version'], { env });
    const loaded = JSON.parse(fs.readFileSync(out, 'utf8')) as string[];
    expect(loaded).toContain('NativeModule vm');
    expect(loaded).not.toContain('NativeModule assert');
    expect(loaded).not.toContain('NativeModule internal/modules/esm/loader');
  });
});

describe('the code cache', () => {
  it('is written by a first run, taken as it is by the next, and extended for a new command', async () => {
    const cache = tmpDir();
    const store = tmpDir();
    const env = { STRATA_CODE_CACHE: cache };
    const first = await strataOk(['ls'], { store, env });
    const [name] = cacheFiles(cache);
    expect(name).toBeDefined();
    const file = path.join(cache, name as string);
    expect(commandsIn(file)).toEqual(['ls']);
    const written = fs.statSync(file);

    // V8 takes the cache in a new process: a refused cache would be written again.
    const second = await strataOk(['ls'], { store, env });
    expect(second.stdout).toBe(first.stdout);
    const kept = fs.statSync(file);
    expect([kept.ino, kept.mtimeMs]).toEqual([written.ino, written.mtimeMs]);

    await strataOk(['fsck'], { store, env });
    expect(cacheFiles(cache)).toEqual([name]);
    expect(commandsIn(file)).toEqual(['ls', 'fsck']);
    const extended = fs.statSync(file);
    await strataOk(['fsck'], { store, env });
    expect(fs.statSync(file).ino).toBe(extended.ino);
  });

  it('is replaced when damaged, and the command runs as usual', async () => {
    const cache = tmpDir();
    const store = tmpDir();
    const env = { STRATA_CODE_CACHE: cache };
    const clean = await strataOk(['ls', '--json'], { store, env });
    const file = path.join(cache, cacheFiles(cache)[0] as string);
    for (const bad of [
      'garbage',
      'strata code cache 1\n{"commands":["ls"]}\n' + 'x'.repeat(5000),
      fs.readFileSync(file, 'latin1').slice(0, 2000),
    ]) {
      fs.writeFileSync(file, bad, 'latin1');
      const r = await strataOk(['ls', '--json'], { store, env });
      expect(r.stdout).toBe(clean.stdout);
      expect(r.stderr).toBe('');
      expect(commandsIn(file)).toEqual(['ls']);
    }
  });

  it('goes to $XDG_CACHE_HOME/strata, and STRATA_CODE_CACHE=0 turns it off', async () => {
    const xdg = tmpDir();
    const store = tmpDir();
    await strataOk(['ls'], { store, env: { XDG_CACHE_HOME: xdg, STRATA_CODE_CACHE: undefined } });
    expect(cacheFiles(path.join(xdg, 'strata'))).toHaveLength(1);

    const off = tmpDir();
    await strataOk(['ls'], { store, env: { XDG_CACHE_HOME: off, STRATA_CODE_CACHE: '0' } });
    expect(fs.readdirSync(off)).toEqual([]);
  });

  it('that cannot be written does not fail the command', async () => {
    const blocked = path.join(tmpDir(), 'a-file');
    fs.writeFileSync(blocked, '');
    const r = await strata(['ls'], { store: tmpDir(), env: { STRATA_CODE_CACHE: blocked } });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });
});
