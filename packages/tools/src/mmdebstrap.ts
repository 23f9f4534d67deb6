import { StrataError, ToolFailedError } from '@strata/oci';
import { execa, lastLine } from './spawn';
import { feedFd3, privateMountsArgv, withTmpfsFile } from './private-mounts';

export interface MmdebstrapOptions {
  suite: string;
  /** Directory to create the root filesystem in (must not exist or be empty). */
  target: string;
  variant?: string;
  include?: string[];
  components?: string[];
  architecture?: string;
  /** A mirror URL, or the path of a sources.list file. */
  sources: string;
  /** Host directory shared across builds for downloaded .debs. */
  debCache?: string;
  sourceDateEpoch?: number;
  /**
   * apt's auth.conf for a private mirror, with `dir`: an empty host directory that a tmpfs
   * holding it is mounted on, seen by mmdebstrap alone.
   */
  auth?: { conf: Buffer; dir: string };
  onOutput?: (chunk: Buffer) => void;
  signal?: AbortSignal;
}

const AUTH_CONF_D = '/etc/apt/auth.conf.d';
const AUTH_FILE = 'strata-apt-auth.conf';

/** Bootstrap a Debian root filesystem with mmdebstrap (root mode). */
export async function mmdebstrap(o: MmdebstrapOptions): Promise<void> {
  const args = ['--mode=root', '--format=directory', `--variant=${o.variant ?? 'minbase'}`];
  if (o.include?.length) args.push(`--include=${o.include.join(',')}`);
  if (o.components?.length) args.push(`--components=${o.components.join(',')}`);
  if (o.architecture) args.push(`--architectures=${o.architecture}`);
  if (o.debCache) {
    // Reuse and refill a host-side .deb cache; the debs never reach the rootfs.
    args.push(
      '--skip=download/empty',
      '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
      `--setup-hook=sync-in ${o.debCache} /var/cache/apt/archives/`,
      `--customize-hook=sync-out /var/cache/apt/archives/ ${o.debCache}`,
      '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
    );
  }
  if (o.auth) {
    // apt, run by mmdebstrap outside the target with the target's /etc/apt, reads the
    // credentials from its auth.conf.d: a file of that name is bound there while the packages
    // download (what packages put beside it stays), and is gone before the tree is packed, as is
    // the folder if no package owns it.
    const file = `"$1${AUTH_CONF_D}/${AUTH_FILE}"`;
    args.push(
      `--setup-hook=mkdir -p "$1${AUTH_CONF_D}" && : > ${file} && mount --bind "$STRATA_APT_AUTH/${AUTH_FILE}" ${file}`,
      `--customize-hook=umount ${file} && rm ${file} && { grep -qsx ${AUTH_CONF_D} "$1"/var/lib/dpkg/info/*.list || rmdir --ignore-fail-on-non-empty "$1${AUTH_CONF_D}"; }`,
    );
  }
  args.push(o.suite, o.target, o.sources);
  const env: Record<string, string> = { ...process.env } as Record<string, string>;
  if (o.sourceDateEpoch !== undefined) env.SOURCE_DATE_EPOCH = String(o.sourceDateEpoch);
  if (o.auth) env.STRATA_APT_AUTH = o.auth.dir;
  // mmdebstrap mounts /proc, /sys and /dev into the target: in a namespace of its own, so that
  // a strata killed mid-BOOTSTRAP leaves none of them on the host. SIGTERM lets it clean up.
  // The credentials reach that namespace through a pipe, onto a tmpfs only it sees.
  const command = o.auth
    ? withTmpfsFile(o.auth.dir, AUTH_FILE, ['mmdebstrap', ...args])
    : ['mmdebstrap', ...args];
  const child = execa()('setpriv', privateMountsArgv(command, { killChild: 'SIGTERM' }), {
    env,
    all: true,
    buffer: false,
    reject: false,
    stdio: o.auth ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
    cleanup: true,
  });
  if (o.auth) feedFd3(child.stdio, o.auth.conf);
  let tail = '';
  child.all?.on('data', (c: Buffer) => {
    tail = (tail + c.toString()).slice(-4096);
    o.onOutput?.(c);
  });
  const abort = () => child.kill('SIGTERM');
  o.signal?.addEventListener('abort', abort, { once: true });
  try {
    const r = await child;
    if (o.signal?.aborted) throw new StrataError('INTERRUPTED', 'bootstrap interrupted');
    if (r.exitCode !== 0) {
      throw new ToolFailedError('mmdebstrap', `exit ${r.exitCode ?? r.signal}: ${lastLine(tail)}`);
    }
  } finally {
    o.signal?.removeEventListener('abort', abort);
  }
}
