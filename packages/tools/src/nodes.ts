import { runToolSync } from './spawn';

/**
 * Device nodes and FIFOs: Node has no mknod(2)/mkfifo(3). These run synchronously so the
 * unpacker's loop stays synchronous; a layer holds few of them.
 *
 * `dir` must be a directory the caller has verified to be inside its root (no symlinks on the
 * way); `name` is a single path component, created relative to it, never following symlinks.
 */
export function mknodSync(
  dir: string,
  name: string,
  kind: 'char' | 'block',
  major: number,
  minor: number,
): void {
  runToolSync(
    'mknod',
    ['-m', '0600', '--', name, kind === 'char' ? 'c' : 'b', String(major), String(minor)],
    { cwd: dir },
  );
}

export function mkfifoSync(dir: string, name: string): void {
  runToolSync('mkfifo', ['-m', '0600', '--', name], { cwd: dir });
}
