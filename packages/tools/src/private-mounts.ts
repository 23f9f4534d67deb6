/**
 * The argv (for `setpriv`) that runs `command` in a private mount namespace of its own, tied to
 * Strata: unshare's `--kill-child` ties the command to unshare, and setpriv's parent-death signal
 * (which survives its exec of unshare) ties unshare to Strata. However Strata ends, a SIGKILL
 * included, the command goes, and its mounts go with its namespace: none is left on the host.
 * `pid` gives it a PID namespace too; `killChild` is the signal unshare sends it when unshare
 * goes (SIGKILL unless the command cleans up after itself on another).
 */
export function privateMountsArgv(
  command: readonly string[],
  o: { pid?: boolean; killChild?: string } = {},
): string[] {
  return [
    '--pdeathsig',
    'KILL',
    '--',
    'unshare',
    '--mount',
    ...(o.pid ? ['--pid'] : []),
    '--fork',
    '--propagation',
    'private',
    o.killChild ? `--kill-child=${o.killChild}` : '--kill-child',
    '--',
    ...command,
  ];
}
