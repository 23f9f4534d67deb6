import { runTool, runToolSync } from './spawn';

/**
 * Device nodes and FIFOs: Node has no mknod(2)/mkfifo(3), so they are made by spawning tools.
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

/** One node for makeNodes(): `path` is absolute, its parent verified by the caller. */
export interface NodeSpec {
  path: string;
  kind: 'char' | 'block' | 'fifo';
  major: number;
  minor: number;
}

/*
 * Every node costs a fork of Node with spawnSync (tens of milliseconds once the process is
 * large), so batches go through one `sh`, which forks mknod cheaply. Arguments are passed as
 * positional parameters, never interpolated into the script.
 */
const BATCH_SCRIPT =
  'while [ $# -gt 0 ]; do mknod -m 0600 -- "$1" "$2" $3 $4 || exit 1; shift 4; done';
const BATCH = 500;

function batches(nodes: readonly NodeSpec[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < nodes.length; i += BATCH) {
    const args = ['-c', BATCH_SCRIPT, 'sh'];
    for (const n of nodes.slice(i, i + BATCH)) {
      if (n.kind === 'fifo') args.push(n.path, 'p', '', '');
      else args.push(n.path, n.kind === 'char' ? 'c' : 'b', String(n.major), String(n.minor));
    }
    out.push(args);
  }
  return out;
}

/**
 * Create device nodes and FIFOs (mode 0600, owned by the caller) with one `sh` spawn per 500.
 * Each path's final component must not exist (mknod fails on EEXIST and never follows it).
 */
export async function makeNodes(nodes: readonly NodeSpec[]): Promise<void> {
  for (const args of batches(nodes)) await runTool('sh', args);
}

/** Synchronous makeNodes(). */
export function makeNodesSync(nodes: readonly NodeSpec[]): void {
  for (const args of batches(nodes)) runToolSync('sh', args);
}
