import * as path from 'node:path';
import { InvalidArgumentError, StrataError, ToolFailedError } from '@strata/oci';
import { execa } from './spawn';
import { privateMountsArgv } from './private-mounts';

/**
 * Run a command in a chroot on an overlay mount, inside a private mount namespace and PID
 * namespace of its own. Every mount lives in that namespace, so it disappears with the last
 * process of the step — whether the step succeeds, fails, or is killed. Nothing leaks to the host.
 */
export interface SandboxSpec {
  /** Overlay lower directories, topmost first (relative to `mountCwd` when that is given). */
  lower: string[];
  upper: string;
  work: string;
  /**
   * Directory the overlay is mounted from. Relative lower paths resolve against it, and upper
   * and work dirs under it are passed relative to it, so that deep stacks fit the mount option.
   */
  mountCwd?: string;
  /** Empty directory to mount the overlay on. */
  merged: string;
  /** Host directory whose contents are copied to /run/strata (a tmpfs) inside the root. */
  stage?: string;
  /** Host directories bind-mounted at paths under /run/strata inside the root (`readOnly`: so). */
  binds?: Array<{ source: string; target: string; readOnly?: boolean }>;
  /**
   * Files the step alone sees, read-only at `target` (an absolute path in the root): their
   * bytes reach the sandbox through a pipe and live on a tmpfs of its mount namespace, so they
   * never touch a disk. A missing target (and its missing parent dirs) is made for the mount
   * and removed after the step, so the upper directory keeps no trace of it.
   */
  secrets?: Array<{ target: string; value: Buffer; mode: number }>;
  /** Empty host directory the secrets' tmpfs is mounted on (required with `secrets`). */
  secretsDir?: string;
  /** Host file to serve as /etc/resolv.conf (never lands in the upper directory). */
  resolvConf?: string;
  /** The environment inside; nothing else is inherited. */
  env: Record<string, string>;
  /** argv to run inside the chroot. */
  command: string[];
  /**
   * Keep CAP_SYS_ADMIN, which a step drops (see PID1): for Strata's own DEBUILD script, which
   * takes the network from the package build with `unshare --net` before it drops to an
   * unprivileged user. Never for a step that runs the author's commands as root.
   */
  keepSysAdmin?: boolean;
  /** Receives the step's output as it comes. */
  onOutput?: (chunk: Buffer) => void;
  signal?: AbortSignal;
}

/**
 * PID 1 of the step's PID namespace: it mounts the namespace's /proc (a proc shows the PID
 * namespace of whoever mounts it), then becomes the step's command in the chroot, with fewer
 * capabilities (see below). No process of
 * the namespace ever has a root or cwd outside the step's root, so /proc/N/root and /proc/N/cwd
 * lead nowhere else. Its parent, the setup shell, stays outside the namespace to undo what it
 * set up once the step is over.
 */
const PID1 = String.raw`
set -eu
mount -t proc proc "$SB_PROC"
# The kernel's settings are the host's: a step reads them, never changes them.
for p in sys sysrq-trigger; do
  [ -e "$SB_PROC/$p" ] || continue
  mount --bind "$SB_PROC/$p" "$SB_PROC/$p"
  mount -o remount,bind,ro "$SB_PROC/$p"
done
# The step runs as root, with docker's default capabilities but two: without CAP_SYS_CHROOT a
# second chroot cannot lead out of this one, and without CAP_MKNOD no device node of the host's
# disks can be made. Mounting (CAP_SYS_ADMIN) and the rest are dropped, as docker drops them.
keep="cap_(chown|dac_override|fowner|fsetid|kill|setgid|setuid|setpcap|net_bind_service|net_raw|audit_write|setfcap$SB_KEEP_CAPS)"
drop=$(capsh --print | sed -n 's/^Bounding set =//p' | tr ',' '\n' | grep -vxE "$keep" | paste -sd, -)
cd "$SB_MERGED"
IFS='
'
set -f
exec capsh --chroot="$SB_MERGED" --drop="$drop" --shell=/usr/bin/env -- -i $SB_ENV "$@"
`;

const SCRIPT = String.raw`
set -eu
M=$SB_MERGED
safe() {
  r=$(realpath -m -- "$1")
  case "$r" in
    "$M"/*) printf '%s' "$r" ;;
    *) echo "strata: refusing mount point $1: it leaves the root" >&2; exit 97 ;;
  esac
}
if ! (cd "$SB_MOUNT_CWD" && mount -t overlay overlay -o "$SB_OVERLAY" "$M"); then
  echo "strata: the overlay mount was refused" >&2
  exit 96
fi
for d in proc sys dev run; do
  [ -d "$M/$d" ] || mkdir -p "$(safe "$M/$d")"
done
SB_PROC=$(safe "$M/proc")
export SB_PROC
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$(safe "$M/sys")"
# A /dev of the step's own, as a container has: what a step (or a maintainer script) removes or
# adds there never reaches the host's /dev, and no disk of the host is in it.
D=$(safe "$M/dev")
mount -t tmpfs -o mode=0755,nosuid,noexec tmpfs "$D"
mknod -m 0666 "$D/null" c 1 3
mknod -m 0666 "$D/zero" c 1 5
mknod -m 0666 "$D/full" c 1 7
mknod -m 0666 "$D/random" c 1 8
mknod -m 0666 "$D/urandom" c 1 9
mknod -m 0666 "$D/tty" c 5 0
ln -s /proc/self/fd "$D/fd"
ln -s /proc/self/fd/0 "$D/stdin"
ln -s /proc/self/fd/1 "$D/stdout"
ln -s /proc/self/fd/2 "$D/stderr"
mkdir "$D/pts" "$D/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "$D/pts"
ln -s pts/ptmx "$D/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$D/shm"
mount -t tmpfs -o mode=0755 tmpfs "$(safe "$M/run")"
mkdir -p "$M/run/strata"
if [ -n "$SB_STAGE" ]; then cp -a "$SB_STAGE/." "$M/run/strata/"; fi
i=0
while [ "$i" -lt "$SB_NBINDS" ]; do
  eval "src=\$SB_BIND_$i""_SRC dst=\$SB_BIND_$i""_DST ro=\$SB_BIND_$i""_RO"
  mkdir -p "$M/run/strata/$dst"
  mount --bind "$src" "$M/run/strata/$dst"
  if [ "$ro" = 1 ]; then mount -o remount,bind,ro "$M/run/strata/$dst"; fi
  i=$((i + 1))
done
placeholders=""
secret_dirs=""
if [ "$SB_NSECRETS" -gt 0 ]; then
  mount -t tmpfs -o mode=0700 tmpfs "$SB_SECRETS"
  i=0
  while [ "$i" -lt "$SB_NSECRETS" ]; do
    eval "len=\$SB_SECRET_$i""_LEN dst=\$SB_SECRET_$i""_DST mode=\$SB_SECRET_$i""_MODE"
    f="$SB_SECRETS/$i"
    if [ "$len" -gt 0 ]; then
      dd bs="$len" count=1 iflag=fullblock status=none of="$f" <&4
    else
      : > "$f"
    fi
    chmod "$mode" "$f"
    r=$(safe "$M$dst")
    if [ -d "$r" ]; then echo "strata: secret target $dst is a directory" >&2; exit 98; fi
    d=$(dirname "$r")
    new=""
    while [ ! -e "$d" ]; do new="$d $new"; d=$(dirname "$d"); done
    for d in $new; do
      mkdir "$d"
      secret_dirs="$d $secret_dirs"
    done
    if [ ! -e "$r" ]; then
      : > "$r"
      placeholders="$placeholders $r"
    fi
    mount --bind "$f" "$r"
    mount -o remount,bind,ro "$r"
    i=$((i + 1))
  done
fi
exec 4<&-
if [ -n "$SB_RESOLV" ]; then
  if [ -L "$M/etc/resolv.conf" ]; then
    t=$(chroot "$M" readlink -f /etc/resolv.conf 2>/dev/null || true)
    case "$t" in
      /run/*) mkdir -p "$(dirname "$M$t")"; cp "$SB_RESOLV" "$M$t" ;;
      /*) if [ -f "$M$t" ]; then mount --bind "$SB_RESOLV" "$(safe "$M$t")"; fi ;;
    esac
  elif [ -f "$M/etc/resolv.conf" ]; then
    mount --bind "$SB_RESOLV" "$(safe "$M/etc/resolv.conf")"
  elif [ ! -e "$M/etc/resolv.conf" ] && [ -d "$M/etc" ]; then
    p=$(safe "$M/etc/resolv.conf")
    : > "$p"
    mount --bind "$SB_RESOLV" "$p"
    placeholders="$placeholders $p"
  fi
fi
if [ ! -e "$M/usr/sbin/policy-rc.d" ] && [ ! -L "$M/usr/sbin/policy-rc.d" ] && [ -d "$M/usr/sbin" ]; then
  p=$(safe "$M/usr/sbin/policy-rc.d")
  printf '#!/bin/sh\n# strata: keep daemons from starting during the build\nexit 101\n' > "$p"
  chmod 0755 "$p"
  placeholders="$placeholders $p"
fi
printf 'ready\n' >&3
exec 3>&-
set +e
old_ifs=$IFS
IFS='
'
set -f
setpriv --pdeathsig KILL -- unshare --pid --fork --kill-child -- /bin/sh -c "$PID1" strata-step "$@"
rc=$?
set +f
IFS=$old_ifs
set -e
for p in $placeholders; do
  umount "$p" 2>/dev/null || true
  rm -f "$p"
done
for d in $secret_dirs; do
  rmdir "$d" 2>/dev/null || true
done
exit $rc
`;

export class StepFailedError extends StrataError {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super('TOOL_FAILED', message);
  }
}

/**
 * The kernel copies a mount's option string into one page, its terminating NUL included: the
 * smallest page (4 KiB) is the bound wherever Strata runs.
 */
export const MOUNT_DATA_MAX = 4095;

/** Thrown before mounting when the overlay option string would not fit `MOUNT_DATA_MAX`. */
export class MountOptionsTooLongError extends InvalidArgumentError {
  constructor(
    readonly bytes: number,
    readonly layers: number,
  ) {
    super(
      `the overlay mount option for ${layers} lower dirs is ${bytes} bytes; the kernel takes at most ${MOUNT_DATA_MAX}`,
    );
  }
}

function within(dir: string, p: string): string {
  if (!path.isAbsolute(p)) return p;
  const rel = path.relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

/**
 * The overlay option string (`lowerdir=…,upperdir=…,workdir=…`) as the sandbox passes it to
 * mount(2) from `cwd`: paths under `cwd` are made relative to it. Throws a typed error instead
 * of letting the kernel refuse a string longer than a page.
 */
export function overlayMountData(o: {
  lower: readonly string[];
  upper: string;
  work: string;
  cwd?: string;
}): string {
  if (o.lower.length === 0) throw new InvalidArgumentError('an overlay needs a lower dir');
  const rel = (p: string) => (o.cwd === undefined ? p : within(o.cwd, p));
  for (const l of o.lower) {
    checkValue('lower dir', l);
    if (l.includes(':') || l.includes(','))
      throw new InvalidArgumentError(`overlay lower dir ${l} has ':' or ','`);
    if (!path.isAbsolute(l) && o.cwd === undefined)
      throw new InvalidArgumentError(`overlay lower dir ${l} is relative, and no mount cwd given`);
  }
  for (const [what, p] of [
    ['upper dir', o.upper],
    ['work dir', o.work],
  ] as const) {
    checkValue(what, p);
    if (p.includes(',')) throw new InvalidArgumentError(`overlay ${what} ${p} has ','`);
  }
  const data = `lowerdir=${o.lower.map(rel).join(':')},upperdir=${rel(o.upper)},workdir=${rel(o.work)}`;
  const bytes = Buffer.byteLength(data);
  if (bytes > MOUNT_DATA_MAX) throw new MountOptionsTooLongError(bytes, o.lower.length);
  return data;
}

function checkValue(what: string, v: string): string {
  if (/[\n\0]/.test(v))
    throw new InvalidArgumentError(`${what} must not contain a newline: ${JSON.stringify(v)}`);
  return v;
}

/** Run the step; resolves with its exit code. Mount or setup failures reject. */
export async function runInSandbox(spec: SandboxSpec): Promise<number> {
  const env: Record<string, string> = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    PID1,
    SB_MERGED: spec.merged,
    SB_OVERLAY: overlayMountData({
      lower: spec.lower,
      upper: spec.upper,
      work: spec.work,
      cwd: spec.mountCwd,
    }),
    SB_MOUNT_CWD: spec.mountCwd ?? '/',
    SB_STAGE: spec.stage ?? '',
    SB_KEEP_CAPS: spec.keepSysAdmin ? '|sys_admin' : '',
    SB_RESOLV: spec.resolvConf ?? '',
    SB_NBINDS: String(spec.binds?.length ?? 0),
    SB_NSECRETS: String(spec.secrets?.length ?? 0),
    SB_SECRETS: spec.secretsDir ?? '',
    SB_ENV: Object.entries(spec.env)
      .map(([k, v]) => {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
          throw new InvalidArgumentError(`invalid variable name ${k}`);
        return `${k}=${checkValue(`value of ${k}`, v)}`;
      })
      .join('\n'),
  };
  for (const [i, b] of (spec.binds ?? []).entries()) {
    env[`SB_BIND_${i}_SRC`] = b.source;
    env[`SB_BIND_${i}_DST`] = b.target.replace(/^\/+/, '');
    env[`SB_BIND_${i}_RO`] = b.readOnly === true ? '1' : '0';
  }
  const secrets = spec.secrets ?? [];
  if (secrets.length > 0 && spec.secretsDir === undefined)
    throw new InvalidArgumentError('secrets need a directory for their tmpfs');
  for (const [i, s] of secrets.entries()) {
    // The script splits its lists of mount points at blanks.
    if (!/^\/[A-Za-z0-9._+@:/-]+$/.test(s.target))
      throw new InvalidArgumentError(`secret target ${JSON.stringify(s.target)}`);
    // Only lengths and paths go through the environment: the bytes come on fd 4.
    env[`SB_SECRET_${i}_LEN`] = String(s.value.length);
    env[`SB_SECRET_${i}_DST`] = s.target;
    env[`SB_SECRET_${i}_MODE`] = (s.mode & 0o7777).toString(8);
  }
  // A SIGKILLed strata (a CI runner's kill -9) must not leave the step or its mounts running.
  const child = execa()(
    'setpriv',
    privateMountsArgv(['/bin/sh', '-c', SCRIPT, 'strata-step', ...spec.command]),
    {
      env,
      extendEnv: false,
      // fd 3 hears 'ready' once the root is set up: exit codes before that are the sandbox's.
      // fd 4 carries the secrets' bytes, one after the other.
      stdio:
        secrets.length > 0
          ? ['ignore', 'pipe', 'pipe', 'pipe', 'pipe']
          : ['ignore', 'pipe', 'pipe', 'pipe'],
      all: true,
      buffer: false,
      reject: false,
      cleanup: true,
    },
  );
  let ready = false;
  // What the sandbox said before the step started: the cause, when setting up the root fails.
  let setupOutput = '';
  child.all?.on('data', (c: Buffer) => {
    if (!ready) setupOutput = (setupOutput + c.toString('utf8')).slice(-4096);
    spec.onOutput?.(c);
  });
  const secretPipe = secrets.length > 0 ? child.stdio[4] : undefined;
  if (secretPipe && 'end' in secretPipe) {
    // A sandbox that fails before it reads them closes the pipe: its exit code says why.
    secretPipe.on('error', () => undefined);
    secretPipe.end(Buffer.concat(secrets.map((x) => x.value)));
  }
  const setup = child.stdio[3];
  const setupDone = new Promise<void>((resolve) => {
    if (!setup) return resolve();
    setup.on('data', () => (ready = true));
    setup.on('close', () => resolve());
    setup.on('error', () => resolve());
  });
  const abort = () => child.kill('SIGKILL');
  spec.signal?.addEventListener('abort', abort, { once: true });
  try {
    const r = await child;
    await setupDone;
    if (spec.signal?.aborted) throw new StrataError('INTERRUPTED', 'step interrupted');
    if (!ready && r.exitCode === 97)
      throw new ToolFailedError('sandbox', 'a mount point leaves the root');
    if (!ready && r.exitCode === 98)
      throw new ToolFailedError('sandbox', 'a secret mount target is a directory');
    if (!ready && r.exitCode === 96)
      throw new ToolFailedError(
        'sandbox',
        `the overlay mount of ${spec.lower.length} lower dirs was refused`,
      );
    if (r.exitCode === undefined || r.exitCode === null) {
      throw new ToolFailedError('sandbox', `killed by ${r.signal ?? 'a signal'}`);
    }
    if (!ready && r.exitCode !== 0) {
      // Not the step's failure: its command never ran. The first line says why (mount and
      // mkdir print the cause first, and a hint after it).
      const cause = setupOutput
        .split('\n')
        .map((l) => l.trim())
        .find((l) => l !== '');
      throw new ToolFailedError(
        'sandbox',
        `the step's root could not be set up (exit ${r.exitCode})${cause ? `: ${cause}` : ''}`,
      );
    }
    return r.exitCode;
  } finally {
    spec.signal?.removeEventListener('abort', abort);
  }
}
