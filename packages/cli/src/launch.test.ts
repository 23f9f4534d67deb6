import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { cacheFileFor, codeCacheDir, loadBundle } from './launch';

interface Demo {
  answer: number;
  double(x: number): number;
  dir: string;
  file: string;
  builtin: string;
}

const SOURCE = `'use strict';
const path = require('node:path');
exports.answer = 42;
exports.double = (x) => x * 2;
exports.dir = __dirname;
exports.file = __filename;
exports.builtin = path.basename('/a/b.txt');
`;

describe('codeCacheDir', () => {
  it('is $XDG_CACHE_HOME/strata, else ~/.cache/strata', () => {
    expect(codeCacheDir({ XDG_CACHE_HOME: '/xdg' }, '/home/u')).toBe('/xdg/strata');
    expect(codeCacheDir({}, '/home/u')).toBe('/home/u/.cache/strata');
    // A relative XDG_CACHE_HOME is invalid by the XDG spec and is ignored.
    expect(codeCacheDir({ XDG_CACHE_HOME: 'rel' }, '/home/u')).toBe('/home/u/.cache/strata');
  });

  it('follows STRATA_CODE_CACHE, which can turn it off', () => {
    expect(codeCacheDir({ STRATA_CODE_CACHE: '/c', XDG_CACHE_HOME: '/xdg' }, '/h')).toBe('/c');
    expect(codeCacheDir({ STRATA_CODE_CACHE: '0' }, '/h')).toBeUndefined();
    expect(codeCacheDir({ STRATA_CODE_CACHE: 'off' }, '/h')).toBeUndefined();
    expect(codeCacheDir({}, '')).toBeUndefined();
  });
});

describe('loadBundle', () => {
  let dir: string;
  let bundle: string;
  let cache: string;
  const cacheFiles = (): string[] =>
    fs.existsSync(cache) ? fs.readdirSync(cache).filter((f) => f.endsWith('.bin')) : [];
  const header = (f: string): string =>
    fs.readFileSync(path.join(cache, f), 'latin1').split('\n').slice(0, 2).join('\n');

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-launch-'));
    bundle = path.join(dir, 'bundle.cjs');
    cache = path.join(dir, 'cache');
    fs.writeFileSync(bundle, SOURCE);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('runs the bundle as require would: exports, require, __filename, __dirname', () => {
    const b = loadBundle<Demo>(bundle, undefined);
    expect(b.exports.answer).toBe(42);
    expect(b.exports.double(21)).toBe(42);
    expect(b.exports.file).toBe(bundle);
    expect(b.exports.dir).toBe(dir);
    expect(b.exports.builtin).toBe('b.txt');
    expect(b.cached).toBe(false);
    b.save('ls');
    expect(fs.existsSync(cache)).toBe(false);
  });

  it('writes a cache after the first run and uses it on the next', () => {
    const first = loadBundle<Demo>(bundle, cache);
    expect(first.cached).toBe(false);
    first.exports.double(1);
    first.save('ls');
    const files = cacheFiles();
    expect(files).toHaveLength(1);
    expect(header(files[0] as string)).toBe('strata code cache 1\n{"commands":["ls"]}');
    expect(fs.statSync(cache).mode & 0o777).toBe(0o700);

    const second = loadBundle<Demo>(bundle, cache);
    expect(second.cached).toBe(true);
    expect(second.exports.double(4)).toBe(8);
  });

  it('rewrites the cache only for a command it does not cover yet', () => {
    loadBundle<Demo>(bundle, cache).save('ls');
    const [f] = cacheFiles() as [string];
    const ino = fs.statSync(path.join(cache, f)).ino;
    loadBundle<Demo>(bundle, cache).save('ls');
    expect(fs.statSync(path.join(cache, f)).ino).toBe(ino);
    loadBundle<Demo>(bundle, cache).save('template create');
    expect(cacheFiles()).toEqual([f]);
    expect(fs.statSync(path.join(cache, f)).ino).not.toBe(ino);
    expect(header(f)).toBe('strata code cache 1\n{"commands":["ls","template create"]}');
    expect(loadBundle<Demo>(bundle, cache).cached).toBe(true);
  });

  it('ignores and replaces a cache file that is damaged or that V8 refuses', () => {
    // V8 keeps what it compiled in memory, by source and file name, and would not even look at a
    // cache for a script it has compiled already in this process: each case is a new bundle.
    const otherScript = new vm.Script('(function () { return 1; })', { filename: 'other.js' });
    const head = 'strata code cache 1\n{"commands":["ls"]}\n';
    const cases = [
      Buffer.from('not a cache'),
      Buffer.from('strata code cache 1\n{"commands":'),
      Buffer.from('strata code cache 1\n{"commands":[1]}\nxx'),
      Buffer.concat([Buffer.from(head), Buffer.alloc(4096, 7)]),
      Buffer.concat([Buffer.from(head), otherScript.createCachedData()]),
    ];
    cases.forEach((bad, i) => {
      const file = path.join(dir, `case-${i}.cjs`);
      fs.writeFileSync(file, `${SOURCE}// case ${i}\n`);
      fs.mkdirSync(cache, { recursive: true });
      const cacheFile = cacheFileFor(fs.statSync(file), cache);
      fs.writeFileSync(cacheFile, bad);
      const b = loadBundle<Demo>(file, cache);
      expect(b.cached).toBe(false);
      expect(b.exports.double(3)).toBe(6);
      b.save('ls');
      expect(fs.readFileSync(cacheFile).equals(bad)).toBe(false);
      expect(loadBundle<Demo>(file, cache).cached).toBe(true);
    });
  });

  it('starts a new file for a new build of the bundle, and keeps a few old ones', () => {
    loadBundle<Demo>(bundle, cache).save('ls');
    for (let i = 0; i < 6; i++) {
      // A build writes a new file and renames it over the old one.
      const next = `${bundle}.new`;
      fs.writeFileSync(next, `${SOURCE}exports.build = ${i};\n`);
      fs.renameSync(next, bundle);
      const b = loadBundle<Demo & { build: number }>(bundle, cache);
      expect(b.cached).toBe(false);
      expect(b.exports.build).toBe(i);
      b.save('ls');
    }
    expect(cacheFiles()).toHaveLength(4);
    expect(loadBundle<Demo>(bundle, cache).cached).toBe(true);
  });

  it('runs without a cache when the cache directory cannot be made', () => {
    fs.writeFileSync(cache, 'a file where the directory would be');
    const b = loadBundle<Demo>(bundle, cache);
    expect(b.exports.answer).toBe(42);
    expect(() => b.save('ls')).not.toThrow();
    expect(fs.readFileSync(cache, 'utf8')).toBe('a file where the directory would be');
  });

  it('fails like require when the bundle is missing', () => {
    expect(() => loadBundle(path.join(dir, 'missing.cjs'), cache)).toThrow(
      expect.objectContaining({ code: 'ENOENT' }),
    );
  });
});
