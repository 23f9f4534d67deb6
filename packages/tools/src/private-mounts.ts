/**
 * The argv (for `setpriv`) that runs `command` in a private mount namespace of its own, tied to
 * Strata: unshare's `--kill-child` ties the command to unshare, and setpriv's parent-death signal
 * (which survives its exec of unshare) ties unshare to Strata. However Strata ends, a SIGKILL
 * included, the command goes, and its mounts go with its namespace: none is left on the host.
 * `killChild` is the signal unshare sends it when unshare goes (SIGKILL unless the command
 * cleans up after itself on another).
 */
export function privateMountsArgv(
  command: readonly string[],
  o: { killChild?: string } = {},
): string[] {
  return [
    '--pdeathsig',
    'KILL',
    '--',
    'unshare',
    '--mount',
    '--fork',
    '--propagation',
    'private',
    o.killChild ? `--kill-child=${o.killChild}` : '--kill-child',
    '--',
    ...command,
  ];
}

/**
 * Runs "$@" with a tmpfs on $1 that holds the bytes of fd 3 as file $2 (mode 0600): for
 * credentials a tool reads from a file, which must reach neither the disk nor the host's mounts.
 * Meant for a private mount namespace ({@link privateMountsArgv}); feed fd 3 with {@link feedFd3}.
 */
const TMPFS_FILE = `set -e
mount -t tmpfs -o mode=0755,size=1m strata-secret "$1"
(umask 077 && cat <&3 > "$1/$2")
exec 3<&-
shift 2
exec "$@"`;

/** `command`, run with `file` in a tmpfs on the host directory `dir` (see TMPFS_FILE). */
export function withTmpfsFile(dir: string, file: string, command: readonly string[]): string[] {
  return ['/bin/sh', '-c', TMPFS_FILE, 'strata-tmpfs-file', dir, file, ...command];
}

/** Writes `data` to a child's fd 3 and closes it. */
export function feedFd3(stdio: readonly unknown[], data: Buffer): void {
  const pipe = stdio[3] as { end?: (b: Buffer) => void; on?: (e: string, f: () => void) => void };
  if (typeof pipe?.end !== 'function') return;
  // A child that fails before it reads closes the pipe: its exit code says why.
  pipe.on?.('error', () => undefined);
  pipe.end(data);
}
