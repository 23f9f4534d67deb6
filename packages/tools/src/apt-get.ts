import { ToolFailedError } from '@strata/oci';
import { execa, lastLine } from './spawn';
import { feedFd3, privateMountsArgv, withTmpfsFile } from './private-mounts';

/**
 * `apt-get update` of the host's apt with `options` (`-o` settings, a private Dir:: layout).
 * With `auth` (apt's auth.conf and an empty host directory), apt reads the credentials from a
 * tmpfs on that directory, in a mount namespace of its own: they reach neither the disk nor the
 * host's mounts.
 */
export async function aptGetUpdate(
  options: readonly string[],
  auth?: { conf: Buffer; dir: string },
): Promise<void> {
  const args = ['update', '-q', ...options.flatMap((o) => ['-o', o])];
  const child = auth
    ? execa()(
        'setpriv',
        privateMountsArgv(
          withTmpfsFile(auth.dir, 'auth.conf', [
            'apt-get',
            ...args,
            '-o',
            `Dir::Etc::netrcparts=${auth.dir}`,
          ]),
        ),
        { reject: false, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
      )
    : execa()('apt-get', args, { reject: false, stdin: 'ignore' });
  if (auth) feedFd3(child.stdio, auth.conf);
  const r = await child;
  if (r.exitCode !== 0) {
    // apt's first error is the cause (a refused download); those after it are its consequences.
    const stderr = String(r.stderr);
    const first = stderr.split('\n').find((l) => l.startsWith('E: '));
    throw new ToolFailedError('apt-get', `update failed: ${first ?? lastLine(stderr)}`);
  }
}
