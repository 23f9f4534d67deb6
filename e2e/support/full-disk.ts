/**
 * Small filesystems that run out on purpose: a tmpfs mounted on a directory, its free space set
 * to a figure by remounting it with a new size, and what a store holds, for "gc took back what
 * the failed command left" checks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runOk } from './processes';

const MiB = 1024 * 1024;
const PAGE = 4096;

/** Mount a tmpfs of `bytes` on `dir` (made if missing); undo with `unmount`. */
export async function mountTmpfs(dir: string, bytes: number): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  await runOk('mount', ['-t', 'tmpfs', '-o', `size=${roundUp(bytes)}`, 'tmpfs', dir]);
  return dir;
}

/** Unmount `dir` if something is mounted there (lazily, so a leftover user cannot block it). */
export async function unmount(dir: string): Promise<void> {
  const mounted = (await runOk('findmnt', ['-rn', '-o', 'TARGET'])).stdout
    .split('\n')
    .includes(dir);
  if (mounted) await runOk('umount', ['-l', dir]);
}

/** Bytes in use on the filesystem that holds `dir`. */
export function usedBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Bytes free on the filesystem that holds `dir`. */
export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Remount the tmpfs on `dir` so that about `bytes` are left free (what is on it stays). */
export async function leaveFree(dir: string, bytes: number): Promise<void> {
  await runOk('mount', ['-o', `remount,size=${roundUp(usedBytes(dir) + bytes)}`, dir]);
}

/** Take every free byte of the filesystem on `dir` with one file (returned), as a full disk is. */
export async function fillUp(dir: string): Promise<string> {
  const filler = path.join(dir, 'filler');
  await runOk('fallocate', ['-l', String(freeBytes(dir)), filler]);
  return filler;
}

function roundUp(bytes: number): number {
  return Math.ceil(bytes / PAGE) * PAGE;
}

/**
 * Every file under `dir` with its size, relative paths sorted. Directories are left out: an
 * empty directory a command made (the store's ingest or scratch parent) costs no space and holds
 * nothing partial.
 */
export function filesWithSizes(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
      if (ent.isDirectory()) walk(r);
      else out.push(`${r} ${fs.lstatSync(path.join(dir, r)).size}`);
    }
  };
  walk('');
  return out.sort();
}

export { MiB };
