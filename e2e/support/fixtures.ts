/** The minbase rootfs fixture (built once per machine, cached), and small hand-made rootfs and tarballs. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pidAlive, run, runOk } from './processes';

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
    await minbaseTar('minbase', 'mmdebstrap.log', []);

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

const foreignPromises = new Map<string, Promise<string>>();

/**
 * `mmdebstrap --variant=minbase --architectures=ARCH bookworm` as a tarball, built once per
 * machine through qemu-user (binfmt_misc) and cached in CACHE_DIR as `minbase-ARCH.tar`.
 * Tests must never write into it.
 */
export function foreignMinbaseTar(arch: 'arm64' | 'armhf'): Promise<string> {
  let p = foreignPromises.get(arch);
  if (p === undefined) {
    p = buildForeignMinbase(arch);
    foreignPromises.set(arch, p);
  }
  return p;
}

async function buildForeignMinbase(arch: string): Promise<string> {
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  return withLock(path.join(CACHE_DIR, 'lock'), () =>
    minbaseTar(`minbase-${arch}`, `mmdebstrap-${arch}.log`, [`--architectures=${arch}`]),
  );
}

/**
 * `CACHE_DIR/<base>.tar`: an `mmdebstrap --variant=minbase bookworm` tarball with `extra`
 * options, made unless its stamp is valid. The caller holds the cache lock.
 */
async function minbaseTar(base: string, logName: string, extra: string[]): Promise<string> {
  const name = `${base}.tar`;
  const out = path.join(CACHE_DIR, name);
  const stamp = path.join(CACHE_DIR, `${base}.json`);
  if (stampValid(stamp, 1, CACHE_DIR)) return out;
  fs.rmSync(stamp, { force: true });
  // The name must end in .tar: mmdebstrap picks the output format from it otherwise.
  const partial = path.join(CACHE_DIR, `${base}.partial-${process.pid}.tar`);
  const log = path.join(CACHE_DIR, logName);
  const r = await run('mmdebstrap', [
    '--variant=minbase',
    '--mode=root',
    '--format=tar',
    ...extra,
    'bookworm',
    partial,
  ]);
  fs.writeFileSync(log, r.stdout + r.stderr);
  if (r.code !== 0) {
    fs.rmSync(partial, { force: true });
    throw new Error(
      `mmdebstrap ${base} failed (exit ${r.code}), log ${log}:\n${r.stderr.slice(-4000)}`,
    );
  }
  fs.renameSync(partial, out);
  writeStamp(stamp, 1, CACHE_DIR, [name]);
  return out;
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

// ---------------------------------------------------------------------------------------------
// Tiny .debs

/**
 * A tiny real .deb in `dir`, `<name>_<version>_all.deb`, built by dpkg-deb from the control
 * fields and files given (paths relative to the package's root).
 */
export async function buildDeb(
  dir: string,
  name: string,
  control: Record<string, string>,
  files: Record<string, { text: string; mode: number }>,
): Promise<string> {
  const fields = { Package: name, Version: '1.0', Architecture: 'all', ...control };
  const root = fs.mkdtempSync(path.join(dir, `.${name}-root-`));
  try {
    fs.mkdirSync(path.join(root, 'DEBIAN'));
    fs.writeFileSync(
      path.join(root, 'DEBIAN', 'control'),
      `${Object.entries({
        ...fields,
        Maintainer: 'Strata tests <tests@strata.invalid>',
        Description: `${name}, a package of the strata tests`,
      })
        .map(([k, v]) => `${k}: ${v}`)
        .join('\n')}\n`,
    );
    for (const [p, f] of Object.entries(files)) {
      fs.mkdirSync(path.join(root, path.dirname(p)), { recursive: true });
      fs.writeFileSync(path.join(root, p), f.text, { mode: f.mode });
    }
    const out = path.join(dir, `${name}_${fields.Version}_all.deb`);
    await runOk('dpkg-deb', ['--root-owner-group', '--build', root, out]);
    return out;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
