/**
 * A build step runs in a root of its own, and the build host is not part of it: the step has a
 * /dev of its own, a read-only /sys and read-only kernel settings. A Stratafile, or a maintainer
 * script, that removes /dev/null or writes /proc/sys must leave the host as it was. (A step once
 * shared the host's /dev: `RUN rm /dev/null` removed the host's.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SLOW, cleanupTmp, minbaseRootfs, runOk, show, strata, strataOk, tmpDir } from './helpers';

jest.setTimeout(SLOW);

let work: string;
let store: string;
let contexts = 0;

beforeAll(async () => {
  work = tmpDir('strata-isolation-');
  store = path.join(work, 'store');
  const { minbaseTar } = await minbaseRootfs();
  await strataOk(['template', 'create', minbaseTar, '-t', 'base:v1', '--name', 'base'], {
    store,
  });
});

afterAll(() => cleanupTmp());

async function build(steps: string, tag: string) {
  const dir = path.join(work, `ctx-${++contexts}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'Stratafile'), `FROM base:v1\n${steps}\n`);
  return strata(['build', '-q', '-t', tag, dir], { store });
}

/** A file of a built template, read from its flattened rootfs. */
async function fileOf(ref: string, file: string): Promise<string> {
  const tar = path.join(work, `${ref.replace(/\W/g, '-')}.tar`);
  if (!fs.existsSync(tar)) await strataOk(['flatten', ref, '--rootfs', tar], { store });
  return (await runOk('tar', ['-xOf', tar, file])).stdout;
}

function isHostNull(): boolean {
  const st = fs.statSync('/dev/null');
  return st.isCharacterDevice() && st.rdev === 0x103;
}

let devIsPrivate = false;

test("what a step creates in /dev reaches neither the host's /dev nor the layer", async () => {
  const probe = `strata-probe-${randomBytes(4).toString('hex')}`;
  const r = await build(`RUN touch /dev/${probe} && test -e /dev/${probe}`, 'probe:v1');
  expect(show(r)).toMatch(/^exit 0/);
  const leaked = fs.existsSync(`/dev/${probe}`);
  if (leaked) fs.rmSync(`/dev/${probe}`);
  expect(leaked).toBe(false);
  const tar = path.join(work, 'probe.tar');
  await strataOk(['flatten', 'probe:v1', '--rootfs', tar], { store });
  expect((await runOk('tar', ['-tf', tar])).stdout).not.toContain(probe);
  devIsPrivate = true;
});

test("a step that removes /dev/null and /dev/zero leaves the host's", async () => {
  // Only where the step's /dev is known to be its own: otherwise this would break the host.
  if (!devIsPrivate) throw new Error("the step's /dev is the host's: not removing /dev/null");
  expect(isHostNull()).toBe(true);
  const r = await build('RUN rm -f /dev/null /dev/zero && test ! -e /dev/null', 'rm-null:v1');
  expect(show(r)).toMatch(/^exit 0/);
  expect(isHostNull()).toBe(true);
  expect(fs.statSync('/dev/zero').isCharacterDevice()).toBe(true);
});

test('the devices a build uses work in a step: null, zero, urandom, fd, a pty, shm', async () => {
  const r = await build(
    [
      'RUN echo discarded > /dev/null && head -c 4 /dev/zero | od -An -tx1 | tr -d " " > /etc/zero',
      'RUN head -c 32 /dev/urandom | wc -c > /etc/urandom && ls /dev/fd/ > /dev/null',
      'RUN echo in-shm > /dev/shm/t && cat /dev/shm/t > /etc/shm && readlink /dev/stdout > /etc/stdout',
      // script(1) runs `tty` on a pseudo-terminal of the step's own devpts.
      "RUN script -qec tty /dev/null | tr -d '\\r' > /etc/tty",
    ].join('\n'),
    'devices:v1',
  );
  expect(show(r)).toMatch(/^exit 0/);
  expect(await fileOf('devices:v1', 'etc/zero')).toBe('00000000\n');
  expect(await fileOf('devices:v1', 'etc/urandom')).toBe('32\n');
  expect(await fileOf('devices:v1', 'etc/shm')).toBe('in-shm\n');
  expect(await fileOf('devices:v1', 'etc/stdout')).toBe('/proc/self/fd/1\n');
  expect(await fileOf('devices:v1', 'etc/tty')).toMatch(/^\/dev\/pts\/\d+\n$/);
});

test("the kernel's settings, sysrq and /sys are read-only in a step", async () => {
  const refused = (what: string) =>
    `if ${what} 2>/dev/null; then echo "${what}: allowed"; exit 1; fi`;
  const r = await build(
    [
      `RUN ${refused('echo 1 > /proc/sys/vm/drop_caches')}`,
      `RUN ${refused('echo h > /proc/sysrq-trigger')}`,
      `RUN ${refused('touch /sys/kernel/strata-probe')}`,
      'RUN cat /proc/sys/kernel/osrelease > /etc/osrelease && test -d /sys/kernel',
    ].join('\n'),
    'kernel:v1',
  );
  expect(show(r)).toMatch(/^exit 0/);
  expect(await fileOf('kernel:v1', 'etc/osrelease')).toBe(
    fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8'),
  );
});

test("a root the sandbox cannot set up fails as the sandbox's, with its cause, not the step's", async () => {
  // A template whose /proc is a file: the step's proc mount point cannot be made.
  const tree = path.join(work, 'proc-file');
  fs.mkdirSync(path.join(tree, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'proc'), 'not a directory\n');
  await strataOk(['template', 'create', tree, '-t', 'proc-file:v1', '--name', 'proc-file'], {
    store,
  });
  const dir = path.join(work, `ctx-${++contexts}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'Stratafile'), 'FROM proc-file:v1\nRUN true\n');
  const r = await strata(['build', '-q', '-t', 'never:v1', dir], { store });
  expect(r.code).not.toBe(0);
  expect(r.stderr.trim().split('\n').at(-1)).toMatch(
    /^strata: error: .*Stratafile:2:1: .*the step's root could not be set up \(exit 1\): mkdir: cannot create directory .*File exists/,
  );
});

test("no process of a step has a root outside the step's: /proc/N/root leads nowhere else", async () => {
  // PID 1 of the step's PID namespace was the setup shell, whose root was the host's /: a RUN
  // wrote the host through /proc/1/root and listed the host's processes in /proc/1/root/proc.
  const probe = path.join(work, `escape-${randomBytes(4).toString('hex')}`);
  const r = await build(
    [
      `RUN for p in /proc/[0-9]*; do touch "$p/root${probe}" "$p/cwd${probe}" 2>/dev/null || true; done`,
      'RUN for p in /proc/[0-9]* /proc/self; do echo "$(readlink $p/root) $(readlink $p/cwd)"; done | sort -u > /etc/roots',
      'RUN ls /proc/1/root/proc | grep -c "^[0-9]" > /etc/pids; ls -a /proc/1/root/ > /tmp/a; ls -a / > /tmp/b; cmp /tmp/a /tmp/b; rm /tmp/a /tmp/b',
    ].join('\n'),
    'proc-root:v1',
  );
  expect(show(r)).toMatch(/^exit 0/);
  expect(fs.existsSync(probe)).toBe(false);
  expect(await fileOf('proc-root:v1', 'etc/roots')).toBe('/ /\n');
  // Only the step's own few processes: none of the host's.
  expect(Number(await fileOf('proc-root:v1', 'etc/pids'))).toBeLessThan(10);
});

test('a RUN, as root, leaves the chroot neither by a second chroot, nor by a mount or a device node', async () => {
  // With every capability, `chroot` into a subdirectory and `chdir ..` thirty times led out to
  // the host's /, where the step wrote.
  const probe = path.join(work, `chroot-escape-${randomBytes(4).toString('hex')}`);
  const r = await build(
    [
      `RUN perl -e 'mkdir "/xx"; chroot "/xx" or exit 3; chdir ".." for 1..30; chroot "."; open(F, ">${probe}") or exit 4; exit 0'; echo "chroot $?" > /etc/escapes; rmdir /xx`,
      'RUN mount -t tmpfs none /mnt 2>/dev/null; echo "mount $?" >> /etc/escapes; mknod /tmp/disk b 8 0 2>/dev/null; echo "mknod $?" >> /etc/escapes; rm -f /tmp/disk',
    ].join('\n'),
    'escapes:v1',
  );
  expect(show(r)).toMatch(/^exit 0/);
  expect(fs.existsSync(probe)).toBe(false);
  expect(await fileOf('escapes:v1', 'etc/escapes')).toMatch(
    /^chroot 3\nmount [1-9]\d*\nmknod [1-9]\d*\n$/,
  );
});

test('a RUN neither sees nor writes the build context', async () => {
  // The context was bound read-write at /run/strata/context into every RUN, which could change
  // the host's files and read files its cache key does not hold.
  const dir = path.join(work, `ctx-${++contexts}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'ok.txt'), 'v1\n');
  fs.writeFileSync(
    path.join(dir, 'Stratafile'),
    [
      'FROM base:v1',
      'RUN touch /run/strata/context/ESCAPE_ctx 2>/dev/null; test ! -e /run/strata/context/ok.txt',
      'COPY ok.txt /etc/ok.txt',
      'RUN touch /run/strata/context/ESCAPE_ctx2 2>/dev/null; cat /etc/ok.txt > /etc/ok2.txt',
      '',
    ].join('\n'),
  );
  const r = await strata(['build', '-q', '-t', 'ctx:v1', dir], { store });
  expect(show(r)).toMatch(/^exit 0/);
  expect(fs.readdirSync(dir).filter((f) => f.startsWith('ESCAPE'))).toEqual([]);
  expect(await fileOf('ctx:v1', 'etc/ok2.txt')).toBe('v1\n');
});

test('COPY to a path under a symlink of the root resolves it inside the root, as Docker does', async () => {
  // mkdir -p stopped at a link whose target the root lacks: "cannot create directory '/evil':
  // File exists".
  const host = `/opt/strata-dangling-${randomBytes(4).toString('hex')}`;
  const dir = path.join(work, `ctx-${++contexts}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'ok.txt'), 'ok\n');
  fs.writeFileSync(
    path.join(dir, 'Stratafile'),
    [
      'FROM base:v1',
      `RUN ln -s /var/tmp /evil && ln -s ${host} /dangling && ln -s ../../opt/rel /etc/rel`,
      'COPY ok.txt /evil/x',
      'COPY ok.txt /dangling/sub/y',
      'COPY ok.txt /etc/rel/',
      '',
    ].join('\n'),
  );
  const r = await strata(['build', '-q', '-t', 'copy-link:v1', dir], { store });
  expect(show(r)).toMatch(/^exit 0/);
  expect(fs.existsSync(host)).toBe(false);
  expect(await fileOf('copy-link:v1', 'var/tmp/x')).toBe('ok\n');
  expect(await fileOf('copy-link:v1', `${host.slice(1)}/sub/y`)).toBe('ok\n');
  expect(await fileOf('copy-link:v1', 'opt/rel/ok.txt')).toBe('ok\n');
});
