/**
 * Running the CLI bundle (dist/strata.cjs, made by scripts/bundle.js) with a V8 code cache.
 *
 * Node 20 compiles every function of a script the first time it runs, on every start; for the
 * CLI that is yargs, the OCI core and the command's own code, about 40 ms of a command's start on
 * a 2-core machine. V8 can save the compiled code of a script and take it back on the next run
 * (what Node 22's `module.enableCompileCache()` does). The cache lives in one file per bundle
 * build, in `$XDG_CACHE_HOME/strata` (default `~/.cache/strata`), or the directory that
 * `STRATA_CODE_CACHE` names; `STRATA_CODE_CACHE=0` turns it off.
 *
 * V8 keeps only what has run, so the file records which commands it covers. A command that it
 * does not cover yet runs from what is there and compiles the rest; afterwards the file is
 * written again with both. The file is keyed by the bundle file (device, inode, size, mtime) and
 * by the Node version, architecture and flags: a new build, or another Node, starts a new file.
 * A file that V8 refuses anyway, or that does not parse, is ignored and replaced. The cache is
 * never needed: if it cannot be read or written, the command runs as it would without it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';

const MAGIC = 'strata code cache 1\n';

/**
 * A `require` that resolves from `file`. `createRequire` is taken from the CommonJS loader's
 * Module class (every CommonJS module's `module.constructor`) rather than from
 * `require('node:module')`: that public module also loads Node's ES module loader and its
 * source-map support, some 0.6 ms of every start. Under another module system (a test runner's)
 * it comes from node:module.
 */
function requireFrom(file: string): NodeJS.Require {
  const fromLoader = (module.constructor as Partial<typeof import('node:module')>).createRequire;
  const create =
    typeof fromLoader === 'function'
      ? fromLoader
      : // eslint-disable-next-line @typescript-eslint/no-require-imports
        (require('node:module') as typeof import('node:module')).createRequire;
  return create(file);
}

/** Cache files kept in the directory: this build's, and a few others' (other installs). */
const KEEP = 4;

/** The directory for code caches, or undefined when they are turned off. */
export function codeCacheDir(
  env: NodeJS.ProcessEnv = process.env,
  home: string = os.homedir(),
): string | undefined {
  const own = env.STRATA_CODE_CACHE;
  if (own === '0' || own === 'off') return undefined;
  if (own) return path.resolve(own);
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'strata');
  return home ? path.join(home, '.cache', 'strata') : undefined;
}

export interface LoadedBundle<T> {
  /** What the bundle exports. */
  exports: T;
  /** Whether V8 took compiled code from the cache. */
  cached: boolean;
  /**
   * After a run of `command`: write the cache if there was none, V8 refused it, or it does not
   * cover `command` yet. Never throws.
   */
  save(command: string): void;
}

interface CacheFile {
  commands: string[];
  data: Buffer;
}

function readCache(file: string): CacheFile | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  if (buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
  const eol = buf.indexOf(0x0a, MAGIC.length);
  if (eol < 0) return undefined;
  try {
    const head = JSON.parse(buf.toString('utf8', MAGIC.length, eol)) as { commands?: unknown };
    const commands = head.commands;
    if (!Array.isArray(commands) || !commands.every((c) => typeof c === 'string')) return undefined;
    return { commands, data: buf.subarray(eol + 1) };
  } catch {
    return undefined;
  }
}

/** Write the cache file atomically (temp file, fsync, rename), then drop old builds' files. */
function writeCache(file: string, commands: string[], data: Buffer): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeSync(fd, MAGIC + JSON.stringify({ commands }) + '\n');
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  prune(dir, path.basename(file));
}

function prune(dir: string, current: string): void {
  const now = Date.now();
  const files: { name: string; mtime: number }[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith('code-')) continue;
    const st = fs.statSync(path.join(dir, name), { throwIfNoEntry: false });
    if (!st) continue;
    // Another process's temp file is left alone unless it is old enough to be abandoned.
    if (name.endsWith('.tmp')) {
      if (now - st.mtimeMs > 3600_000) fs.rmSync(path.join(dir, name), { force: true });
    } else if (name !== current && name.endsWith('.bin')) {
      files.push({ name, mtime: st.mtimeMs });
    }
  }
  files.sort((a, b) => b.mtime - a.mtime);
  for (const f of files.slice(KEEP - 1)) fs.rmSync(path.join(dir, f.name), { force: true });
}

/**
 * Where the code cache of a bundle file with these stats lives in `dir`, for this Node and its
 * flags. The build replaces the bundle by a rename, so a new build is a new inode and mtime: the
 * key needs no hash of the megabyte of source (V8 itself checks only the source's length).
 */
export function cacheFileFor(st: fs.Stats, dir: string): string {
  const key = [
    process.version,
    process.arch,
    st.dev,
    st.ino,
    st.size,
    Math.round(st.mtimeMs * 1e3),
    // V8 refuses code made under other flags (`node --no-opt bin/strata.js`, say).
    ...process.execArgv,
  ]
    .map((x) => String(x).replace(/[^0-9A-Za-z.]/g, '_'))
    .join('-');
  return path.join(dir, `code-${key}.bin`);
}

/**
 * Run a CommonJS bundle as `require` would, with V8's compiled code cached in `cacheDir`
 * (no cache when undefined). The bundle's `require` resolves from the bundle's directory.
 */
export function loadBundle<T>(file: string, cacheDir: string | undefined): LoadedBundle<T> {
  const fd = fs.openSync(file, 'r');
  let source: string;
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
    // scripts/bundle.js writes ASCII only.
    source = fs.readFileSync(fd, 'latin1');
  } finally {
    fs.closeSync(fd);
  }
  const cacheFile = cacheDir === undefined ? undefined : cacheFileFor(st, cacheDir);
  const found = cacheFile === undefined ? undefined : readCache(cacheFile);
  const script = new vm.Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    { filename: file, ...(found ? { cachedData: found.data } : {}) },
  );
  const usable = found !== undefined && script.cachedDataRejected === false;
  const mod = { exports: {} as T };
  const wrapper = script.runInThisContext() as (
    exports: T,
    require: NodeJS.Require,
    module: { exports: T },
    filename: string,
    dirname: string,
  ) => void;
  wrapper.call(mod.exports, mod.exports, requireFrom(file), mod, file, path.dirname(file));
  return {
    exports: mod.exports,
    cached: usable,
    save(command: string): void {
      if (cacheFile === undefined) return;
      const covered = usable && found ? found.commands : [];
      if (covered.includes(command)) return;
      try {
        writeCache(cacheFile, [...covered, command], script.createCachedData());
      } catch {
        // A cache that cannot be written is only a slower next start.
      }
    },
  };
}
