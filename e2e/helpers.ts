/**
 * End-to-end test harness.
 *
 * These helpers deliberately do NOT import any @strata package: they are the independent oracle
 * the CLI is checked against. Trees are read with lstat/readFileSync and `getfattr`, tarballs are
 * written by hand, and images are read back with skopeo, umoci and GNU tar.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..');
export const CLI = path.join(REPO_ROOT, 'packages', 'cli', 'bin', 'strata.js');

/** Generous timeout for hooks and tests that pack or unpack a whole minbase rootfs. */
export const SLOW = 15 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// Processes

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** Added to (or, when undefined, removed from) the inherited environment. */
  env?: Record<string, string | undefined>;
  /** Bytes written to stdin. */
  input?: string | Buffer;
  /** A file whose contents become stdin (streamed, never loaded into memory). */
  stdinFile?: string;
}

/** Run a program; never throws on a non-zero exit (look at `code`). */
export function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const stdinFd = opts.stdinFile !== undefined ? fs.openSync(opts.stdinFile, 'r') : undefined;
    const child = spawn(cmd, [...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: env as NodeJS.ProcessEnv,
      stdio: [stdinFd ?? (opts.input !== undefined ? 'pipe' : 'ignore'), 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (stdinFd !== undefined) fs.closeSync(stdinFd);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (stdinFd !== undefined) fs.closeSync(stdinFd);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // the child may exit before reading everything
      child.stdin.end(opts.input);
    }
  });
}

/** Run a program and throw (with its output) unless it exits 0. */
export async function runOk(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`,
    );
  }
  return r;
}

export interface StrataOptions extends RunOptions {
  /** Store directory, passed as `--store`; `null` passes none (to test STRATA_STORE). */
  store: string | null;
}

/** Run `node packages/cli/bin/strata.js [--store S] ...args`. */
export function strata(args: readonly string[], opts: StrataOptions): Promise<RunResult> {
  const storeArgs = opts.store === null ? [] : ['--store', opts.store];
  return run(process.execPath, [CLI, ...storeArgs, ...args], {
    ...opts,
    env: { NO_COLOR: '1', FORCE_COLOR: undefined, SOURCE_DATE_EPOCH: undefined, ...opts.env },
  });
}

/** Describe a CLI result for an assertion message. */
export function show(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

/** Run strata and require exit 0; returns the result. */
export async function strataOk(args: readonly string[], opts: StrataOptions): Promise<RunResult> {
  const r = await strata(args, opts);
  if (r.code !== 0) throw new Error(`strata ${args.join(' ')} failed: ${show(r)}`);
  return r;
}

/** Run strata with `--json` appended and parse stdout. */
export async function strataJson<T = unknown>(
  args: readonly string[],
  opts: StrataOptions,
): Promise<T> {
  const r = await strataOk([...args, '--json'], opts);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`strata ${args.join(' ')} --json printed non-JSON: ${show(r)}`);
  }
}

/** A failure message is one line on stderr, without a stack trace. */
export function isOneLineError(stderr: string): boolean {
  const lines = stderr.trimEnd().split('\n');
  return lines.length === 1 && lines[0]!.trim() !== '' && !/^\s+at /m.test(stderr);
}

/** Of what a command printed to stderr (step output included), its own lines are one error. */
export function strataLinesAreOneError(stderr: string): boolean {
  return isOneLineError(
    stderr
      .split('\n')
      .filter((l) => l.startsWith('strata:'))
      .join('\n'),
  );
}

// ---------------------------------------------------------------------------------------------
// Temporary directories

const tmpRoots: string[] = [];

/** A fresh temporary directory, removed by `cleanupTmp()`. */
export function tmpDir(prefix = 'strata-e2e-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpRoots.push(d);
  return d;
}

/** Remove every directory made by `tmpDir()`; call from afterAll. */
export function cleanupTmp(): void {
  for (const d of tmpRoots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The minbase fixture

export const CACHE_DIR = process.env.STRATA_E2E_CACHE ?? '/var/tmp/strata-e2e-cache';

/**
 * Bump when `augmentFixture` changes, so cached trees from an older harness are rebuilt.
 * The mmdebstrap tarball itself is kept (it does not depend on this).
 */
const FIXTURE_VERSION = 3;

export interface Fixture {
  /** `mmdebstrap --variant=minbase --mode=root bookworm` output, untouched. */
  minbaseTar: string;
  /** minbase extracted with owners and xattrs, then augmented (see `augmentFixture`). */
  rootfs: string;
  /** `rootfs` packed by GNU tar (pax, numeric owners, xattrs, sorted). */
  rootfsTar: string;
  rootfsTarGz: string;
  rootfsTarZst: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Hold an O_EXCL lock file while `fn` runs, so parallel jest workers (or parallel CI jobs on a
 * reused machine) build the fixture once. A lock left by a dead process is broken.
 */
async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 45 * 60 * 1000;
  for (;;) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number.parseInt(readOr(lockPath, ''), 10);
      if (Number.isInteger(owner) && owner > 0 && !pidAlive(owner)) {
        fs.rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${lockPath} (pid ${owner})`);
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}

function readOr(p: string, fallback: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return fallback;
  }
}

export function sha256File(p: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

interface Stamp {
  version: number;
  files: Record<string, { size: number; sha256: string }>;
}

function stampValid(stampPath: string, version: number, dir: string): boolean {
  let stamp: Stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(stampPath, 'utf8')) as Stamp;
  } catch {
    return false;
  }
  if (stamp.version !== version) return false;
  for (const [name, want] of Object.entries(stamp.files)) {
    const p = path.join(dir, name);
    if (!fs.existsSync(p) || fs.statSync(p).size !== want.size) return false;
    if (sha256File(p) !== want.sha256) return false;
  }
  return true;
}

function writeStamp(stampPath: string, version: number, dir: string, names: string[]): void {
  const stamp: Stamp = { version, files: {} };
  for (const n of names) {
    const p = path.join(dir, n);
    stamp.files[n] = { size: fs.statSync(p).size, sha256: sha256File(p) };
  }
  fs.writeFileSync(`${stampPath}.tmp`, JSON.stringify(stamp, null, 2));
  fs.renameSync(`${stampPath}.tmp`, stampPath);
}

let fixturePromise: Promise<Fixture> | undefined;

/**
 * The minbase rootfs fixture, built once per machine and cached in CACHE_DIR:
 *   minbase.tar        mmdebstrap --variant=minbase --mode=root --format=tar bookworm
 *                      (uses the host's apt sources; needs root and network on first use)
 *   rootfs/            minbase.tar extracted with tar -xpf --xattrs --numeric-owner, then augmented
 *   rootfs.tar[.gz|.zst]  rootfs/ packed again by GNU tar
 * Each stage is valid when its stamp (version, sizes and sha256 of the tarballs) matches; the
 * tree itself is only checked for existence, so tests must never write into it.
 */
export function minbaseRootfs(): Promise<Fixture> {
  fixturePromise ??= buildFixture();
  return fixturePromise;
}

async function buildFixture(): Promise<Fixture> {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const fx: Fixture = {
    minbaseTar: path.join(CACHE_DIR, 'minbase.tar'),
    rootfs: path.join(CACHE_DIR, 'rootfs'),
    rootfsTar: path.join(CACHE_DIR, 'rootfs.tar'),
    rootfsTarGz: path.join(CACHE_DIR, 'rootfs.tar.gz'),
    rootfsTarZst: path.join(CACHE_DIR, 'rootfs.tar.zst'),
  };
  return withLock(path.join(CACHE_DIR, 'lock'), async () => {
    // Leftovers of a build that was killed (we hold the lock, so nobody else is building).
    for (const f of fs.readdirSync(CACHE_DIR)) {
      if (f.includes('.partial-'))
        fs.rmSync(path.join(CACHE_DIR, f), { recursive: true, force: true });
    }
    const minbaseStamp = path.join(CACHE_DIR, 'minbase.json');
    if (!stampValid(minbaseStamp, 1, CACHE_DIR)) {
      fs.rmSync(minbaseStamp, { force: true });
      // The name must end in .tar: mmdebstrap picks the output format from it otherwise.
      const partial = path.join(CACHE_DIR, `minbase.partial-${process.pid}.tar`);
      const log = path.join(CACHE_DIR, 'mmdebstrap.log');
      const r = await run('mmdebstrap', [
        '--variant=minbase',
        '--mode=root',
        '--format=tar',
        'bookworm',
        partial,
      ]);
      fs.writeFileSync(log, r.stdout + r.stderr);
      if (r.code !== 0) {
        fs.rmSync(partial, { force: true });
        throw new Error(
          `mmdebstrap failed (exit ${r.code}), log ${log}:\n${r.stderr.slice(-4000)}`,
        );
      }
      fs.renameSync(partial, fx.minbaseTar);
      writeStamp(minbaseStamp, 1, CACHE_DIR, ['minbase.tar']);
    }

    const rootfsStamp = path.join(CACHE_DIR, 'rootfs.json');
    if (!stampValid(rootfsStamp, FIXTURE_VERSION, CACHE_DIR) || !fs.existsSync(fx.rootfs)) {
      fs.rmSync(rootfsStamp, { force: true });
      const tmp = path.join(CACHE_DIR, `rootfs.partial-${process.pid}`);
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp);
      await runOk('tar', [
        '-xpf',
        fx.minbaseTar,
        '--xattrs',
        '--xattrs-include=*',
        '--numeric-owner',
        '-C',
        tmp,
      ]);
      await augmentFixture(tmp);
      fs.rmSync(fx.rootfs, { recursive: true, force: true });
      fs.renameSync(tmp, fx.rootfs);
      await runOk('tar', [
        '--create',
        '--file',
        fx.rootfsTar,
        '--format=pax',
        '--sort=name',
        '--numeric-owner',
        '--xattrs',
        '--xattrs-include=*',
        '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
        '-C',
        fx.rootfs,
        '.',
      ]);
      await runOk('sh', [
        '-c',
        'gzip -n -c "$1" > "$1.gz" && zstd -q -f "$1" -o "$1.zst"',
        'sh',
        fx.rootfsTar,
      ]);
      writeStamp(rootfsStamp, FIXTURE_VERSION, CACHE_DIR, [
        'rootfs.tar',
        'rootfs.tar.gz',
        'rootfs.tar.zst',
      ]);
    }
    return fx;
  });
}

/** Where the harness puts its own test files inside the fixture. */
export const FIXTURE_EXTRAS = 'usr/local/share/strata-e2e';

/**
 * Additions to the minbase tree, so that the e2e tests exercise what a bare minbase lacks or has
 * too little of. Everything listed here must survive `template create` unchanged, except the
 * "exclusion targets", which the default exclusions must drop or empty:
 *
 *  - usr/local/bin/strata-ping      copy of /usr/bin/true with `setcap cap_net_raw+ep`
 *                                   (a security.capability xattr, like iputils' ping)
 *  - <extras>/user-xattr            a user.strata xattr
 *  - <extras>/hardlink-a, -b, -c    one inode, three names (minbase has perl's hardlinks too)
 *  - <extras>/fifo                  a FIFO
 *  - <extras>/char-null             char device 1,3; <extras>/block-loop block device 7,0
 *  - <extras>/owned                 uid 1234, gid 5678, mode 0640
 *  - <extras>/setuid                mode 4755; <extras>/sticky/ mode 1777
 *  - <extras>/dangling, rel-link    a dangling absolute symlink, a relative symlink
 *  - <extras>/name with spaces é    a non-ASCII name with spaces (and an xattr)
 *  - <extras>/deep/…                a path longer than 100 bytes (needs pax/GNU long names)
 *  - <extras>/empty-dir             an empty directory
 *  - etc/ssh/sshd_config            NOT excluded (only ssh_host_* is)
 *  - etc/apt/apt.conf.d/70debconf   NOT excluded (from minbase; only *proxy* is)
 *
 * Exclusion targets (minbase already has etc/hostname, etc/resolv.conf, etc/apt/sources.list,
 * var/log/{apt,btmp,…}, run/lock, var/cache/apt/archives, etc/apt/auth.conf.d):
 *  - etc/machine-id (0444, a real id), etc/hosts, etc/apt/sources.list.d/extra.list,
 *    etc/apt/apt.conf.d/99proxy, etc/apt/auth.conf, var/lib/apt/lists/<an InRelease>,
 *    var/cache/apt/pkgcache.bin, etc/ssh/ssh_host_ed25519_key{,.pub}, var/lib/dbus/machine-id,
 *    var/log/strata.log, var/log/nested/deeper/x.log, tmp/junk, tmp/.hidden, run/junk.
 */
async function augmentFixture(root: string): Promise<void> {
  const p = (rel: string) => path.join(root, rel);
  const write = (rel: string, content: string, mode = 0o644) => {
    fs.mkdirSync(path.dirname(p(rel)), { recursive: true });
    fs.writeFileSync(p(rel), content);
    fs.chmodSync(p(rel), mode);
  };
  const x = FIXTURE_EXTRAS;
  fs.mkdirSync(p(x), { recursive: true });

  fs.copyFileSync(p('usr/bin/true'), p('usr/local/bin/strata-ping'));
  fs.chmodSync(p('usr/local/bin/strata-ping'), 0o755);
  await runOk('setcap', ['cap_net_raw+ep', p('usr/local/bin/strata-ping')]);

  write(`${x}/user-xattr`, 'has a user xattr\n');
  await runOk('setfattr', ['-n', 'user.strata', '-v', 'hello', p(`${x}/user-xattr`)]);

  write(`${x}/hardlink-a`, 'one inode, three names\n');
  fs.linkSync(p(`${x}/hardlink-a`), p(`${x}/hardlink-b`));
  fs.linkSync(p(`${x}/hardlink-a`), p(`${x}/hardlink-c`));

  await runOk('mkfifo', ['-m', '0640', p(`${x}/fifo`)]);
  await runOk('mknod', ['-m', '0666', p(`${x}/char-null`), 'c', '1', '3']);
  await runOk('mknod', ['-m', '0660', p(`${x}/block-loop`), 'b', '7', '0']);

  write(`${x}/owned`, 'owned by 1234:5678\n', 0o640);
  fs.chownSync(p(`${x}/owned`), 1234, 5678);
  fs.copyFileSync(p('usr/bin/true'), p(`${x}/setuid`));
  fs.chmodSync(p(`${x}/setuid`), 0o4755);
  fs.mkdirSync(p(`${x}/sticky`));
  fs.chmodSync(p(`${x}/sticky`), 0o1777);
  fs.symlinkSync('/nonexistent/target', p(`${x}/dangling`));
  fs.symlinkSync('../strata-e2e/owned', p(`${x}/rel-link`));
  write(`${x}/name with spaces é`, 'unicode\n');
  await runOk('setfattr', ['-n', 'user.name', '-v', 'é', p(`${x}/name with spaces é`)]);
  const deep = `${x}/deep/${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(60)}`;
  write(`${deep}/long-file-name-${'g'.repeat(40)}`, 'long path\n');
  fs.mkdirSync(p(`${x}/empty-dir`));
  write('etc/ssh/sshd_config', '# kept\n');

  write('etc/machine-id', '0123456789abcdef0123456789abcdef\n', 0o444);
  write('etc/hosts', '127.0.0.1 localhost\n');
  write('etc/apt/sources.list.d/extra.list', 'deb http://example.invalid/debian bookworm main\n');
  write('etc/apt/apt.conf.d/99proxy', 'Acquire::http::Proxy "http://proxy.invalid:3128";\n');
  write('etc/apt/auth.conf', 'machine example.invalid login u password secret\n', 0o600);
  write('var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease', 'fake\n');
  write('var/cache/apt/pkgcache.bin', 'fake\n');
  write('etc/ssh/ssh_host_ed25519_key', 'PRIVATE\n', 0o600);
  write('etc/ssh/ssh_host_ed25519_key.pub', 'ssh-ed25519 AAAA\n');
  write('var/lib/dbus/machine-id', '0123456789abcdef0123456789abcdef\n', 0o444);
  write('var/log/strata.log', 'log\n');
  write('var/log/nested/deeper/x.log', 'log\n');
  write('tmp/junk', 'junk\n');
  write('tmp/.hidden', 'junk\n');
  write('run/junk', 'junk\n');
}

// ---------------------------------------------------------------------------------------------
// Tree snapshots and comparison

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';

export interface TreeEntry {
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (st_mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only. */
  size?: number;
  sha256?: string;
  /** Symlinks only. */
  target?: string;
  /** Device nodes only (st_rdev). */
  rdev?: number;
  /** Other names of the same inode inside the compared tree, sorted; absent when none. */
  links?: string[];
  /** xattr name → base64 value; absent when none. */
  xattrs?: Record<string, string>;
}

/** Tree-relative path ('' is the root; no leading './') → entry. */
export type Tree = Map<string, TreeEntry>;

function typeOf(st: fs.Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'socket';
}

/** Undo getfattr's `\ooo` escapes, which stand for raw bytes. */
function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (
      c === 0x5c &&
      i + 3 < raw.length + 0 &&
      /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString())
    ) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString(), 8));
      i += 3;
    } else if (c === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Every xattr of every inode under root, as `getfattr -R -P -h -d -m - -e base64` reports it. */
export async function readTreeXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const r = await runOk('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '.'], {
    cwd: root,
  });
  const map = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line === '') {
      cur = undefined;
    } else if (line.startsWith('# file: ')) {
      let rel = unescapeGetfattr(line.slice('# file: '.length));
      rel = rel === '.' ? '' : rel.replace(/^\.\//, '');
      cur = {};
      map.set(rel, cur);
    } else if (cur) {
      const eq = line.indexOf('=');
      const name = unescapeGetfattr(eq < 0 ? line : line.slice(0, eq));
      const v = eq < 0 ? '' : line.slice(eq + 1);
      cur[name] = v.startsWith('0s')
        ? v.slice(2)
        : Buffer.from(v.replace(/^"|"$/g, '')).toString('base64');
    }
  }
  return map;
}

/**
 * Snapshot a tree: type, mode, owner, size and sha256 of content, symlink target, device number,
 * hardlink grouping and xattrs of every entry, the root included.
 */
export async function snapshotTree(root: string): Promise<Tree> {
  const tree: Tree = new Map();
  const inodes = new Map<string, string[]>();
  const walk = (rel: string) => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs);
    const e: TreeEntry = { type: typeOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (e.type === 'file') {
      e.size = st.size;
      e.sha256 = sha256File(abs);
    } else if (e.type === 'symlink') {
      e.target = fs.readlinkSync(abs);
    } else if (e.type === 'char' || e.type === 'block') {
      e.rdev = st.rdev;
    }
    if (e.type !== 'dir' && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const group = inodes.get(key) ?? [];
      group.push(rel);
      inodes.set(key, group);
    }
    tree.set(rel, e);
    if (e.type === 'dir') {
      for (const name of fs.readdirSync(abs).sort()) walk(rel === '' ? name : `${rel}/${name}`);
    }
  };
  walk('');
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    for (const p of group) tree.get(p)!.links = group.filter((q) => q !== p).sort();
  }
  for (const [rel, attrs] of await readTreeXattrs(root)) {
    const e = tree.get(rel);
    if (e && Object.keys(attrs).length > 0) e.xattrs = attrs;
  }
  return tree;
}

/** Recompute hardlink groups after paths have been removed from a tree. */
function pruneLinks(tree: Tree): void {
  for (const e of tree.values()) {
    if (!e.links) continue;
    const kept = e.links.filter((l) => tree.has(l));
    if (kept.length > 0) e.links = kept;
    else delete e.links;
  }
}

/** Describe every difference between two trees (at most `limit`), as readable lines. */
export function diffTrees(expected: Tree, actual: Tree, limit = 60): string[] {
  const out: string[] = [];
  const fmt = (v: unknown) =>
    typeof v === 'number' ? `${v} (0o${v.toString(8)})` : JSON.stringify(v);
  const paths = new Set([...expected.keys(), ...actual.keys()]);
  for (const p of [...paths].sort()) {
    if (out.length >= limit) {
      out.push('…');
      break;
    }
    const a = expected.get(p);
    const b = actual.get(p);
    const name = p === '' ? '/' : p;
    if (!a) {
      out.push(`${name}: unexpected ${b!.type}`);
      continue;
    }
    if (!b) {
      out.push(`${name}: missing ${a.type}`);
      continue;
    }
    const keys: (keyof TreeEntry)[] = [
      'type',
      'mode',
      'uid',
      'gid',
      'size',
      'sha256',
      'target',
      'rdev',
    ];
    for (const k of keys) {
      if (a[k] !== b[k]) out.push(`${name}: ${k} expected ${fmt(a[k])}, got ${fmt(b[k])}`);
    }
    const la = JSON.stringify(a.links ?? []);
    const lb = JSON.stringify(b.links ?? []);
    if (la !== lb) out.push(`${name}: hardlinks expected ${la}, got ${lb}`);
    const xa = JSON.stringify(sortKeys(a.xattrs ?? {}));
    const xb = JSON.stringify(sortKeys(b.xattrs ?? {}));
    if (xa !== xb) out.push(`${name}: xattrs expected ${xa}, got ${xb}`);
  }
  return out;
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([x], [y]) => (x < y ? -1 : 1)));
}

// ---------------------------------------------------------------------------------------------
// Default exclusions, as the spec states them

export type ExclusionAction = 'drop' | 'empty' | 'contents';

export interface ExpectedExclusion {
  pattern: string;
  action: ExclusionAction;
}

/** The default exclusions of issue 2. 'contents' drops what is under a directory, not the dir. */
export const DEFAULT_EXCLUSIONS: readonly ExpectedExclusion[] = [
  { pattern: 'etc/apt/sources.list', action: 'drop' },
  { pattern: 'etc/apt/sources.list.d/*', action: 'drop' },
  { pattern: 'etc/apt/apt.conf.d/*proxy*', action: 'drop' },
  { pattern: 'etc/apt/auth.conf*', action: 'drop' },
  { pattern: 'etc/resolv.conf', action: 'drop' },
  { pattern: 'etc/hosts', action: 'drop' },
  { pattern: 'etc/hostname', action: 'drop' },
  { pattern: 'var/lib/apt/lists/*', action: 'drop' },
  { pattern: 'var/cache/apt/*', action: 'drop' },
  { pattern: 'etc/ssh/ssh_host_*', action: 'drop' },
  { pattern: 'etc/machine-id', action: 'empty' },
  { pattern: 'var/lib/dbus/machine-id', action: 'drop' },
  { pattern: 'var/log/*', action: 'contents' },
  { pattern: 'tmp/*', action: 'contents' },
  { pattern: 'run/*', action: 'contents' },
];

/** A shell-style glob for one path: `*` and `?` never cross '/', and do match leading dots. */
export function globRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * What a template made from `input` must contain: every path that a drop/contents pattern matches
 * (or that lies under one that does) is gone; an 'empty' match becomes an empty regular file with
 * its mode, owner and xattrs kept. Returns a new tree.
 */
export function applyExclusions(input: Tree, exclusions: readonly ExpectedExclusion[]): Tree {
  const drops = exclusions.filter((x) => x.action !== 'empty').map((x) => globRegExp(x.pattern));
  const empties = exclusions.filter((x) => x.action === 'empty').map((x) => globRegExp(x.pattern));
  const out: Tree = new Map();
  for (const [p, e] of input) {
    const parts = p.split('/');
    let dropped = false;
    for (let i = 1; i <= parts.length && !dropped; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (p !== '' && drops.some((re) => re.test(prefix))) dropped = true;
    }
    if (dropped) continue;
    if (p !== '' && empties.some((re) => re.test(p))) {
      const { links: _links, target: _target, rdev: _rdev, ...rest } = e;
      out.set(p, { ...rest, type: 'file', size: 0, sha256: EMPTY_SHA256 });
    } else {
      out.set(p, { ...e });
    }
  }
  pruneLinks(out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// OCI store access, read directly (not through strata)

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export function blobPath(store: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  return path.join(store, 'blobs', alg!, hex!);
}

export function readIndex(store: string): { manifests: Descriptor[] } {
  return JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: Descriptor[];
  };
}

export function readBlobJson<T>(store: string, digest: string): T {
  return JSON.parse(fs.readFileSync(blobPath(store, digest), 'utf8')) as T;
}

export interface Manifest {
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The manifest tagged `ref` (a full `name:tag`) in a store's index.json. */
export function manifestOf(store: string, ref: string): { digest: string; manifest: Manifest } {
  const d = readIndex(store).manifests.find(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref,
  );
  if (!d) throw new Error(`no manifest tagged ${ref} in ${store}/index.json`);
  return { digest: d.digest, manifest: readBlobJson<Manifest>(store, d.digest) };
}

/** Total size of the files under `dir`. */
export function duBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else total += fs.lstatSync(p).size;
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return total;
}

/** Every file and directory name under `dir` (relative), for "nothing written here" checks. */
export function listAll(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
      out.push(r);
      if (ent.isDirectory()) walk(r);
    }
  };
  if (fs.existsSync(dir)) walk('');
  return out.sort();
}

// ---------------------------------------------------------------------------------------------
// Hand-written tarballs, for hostile inputs

export interface TarEntrySpec {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  content?: string;
  linkname?: string;
  mode?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar archive, written by hand so that it can say anything (names ≤ 100 bytes). */
export function makeTar(entries: readonly TarEntrySpec[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.type === 'file' ? (e.content ?? '') : '', 'utf8');
    const h = Buffer.alloc(512);
    const name = Buffer.from(e.name, 'utf8');
    const link = Buffer.from(e.linkname ?? '', 'utf8');
    if (name.length > 100 || link.length > 100) throw new Error(`tar name too long: ${e.name}`);
    name.copy(h, 0);
    h.write(octal(e.mode ?? (e.type === 'dir' ? 0o755 : 0o644), 8), 100, 'ascii');
    h.write(octal(0, 8), 108, 'ascii');
    h.write(octal(0, 8), 116, 'ascii');
    h.write(octal(body.length, 12), 124, 'ascii');
    h.write(octal(1700000000, 12), 136, 'ascii');
    h.write('        ', 148, 'ascii');
    h.write({ file: '0', hardlink: '1', symlink: '2', dir: '5' }[e.type], 156, 'ascii');
    link.copy(h, 157);
    h.write('ustar\0', 257, 'ascii');
    h.write('00', 263, 'ascii');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
    blocks.push(h, body);
    const pad = (512 - (body.length % 512)) % 512;
    if (pad) blocks.push(Buffer.alloc(pad));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/**
 * A tiny Debian-looking rootfs (os-release, a dpkg status with two packages), for tests that
 * exercise the store rather than the layer codec.
 */
export function makeTinyRootfs(dir: string, marker = 'tiny'): string {
  const w = (rel: string, s: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), s);
  };
  w(
    'etc/os-release',
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n',
  );
  w(
    'var/lib/dpkg/status',
    [
      'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n',
      'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u7\n',
    ].join('\n'),
  );
  w('etc/marker', `${marker}\n`);
  w('usr/bin/hello', '#!/bin/sh\necho hello\n');
  fs.chmodSync(path.join(dir, 'usr/bin/hello'), 0o755);
  return dir;
}
