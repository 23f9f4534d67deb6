import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { UnsafeEntryError } from '@strata/oci';

/**
 * What `op` resolves to, or undefined when it fails because the path is not there: ENOENT, or
 * the `other` code that means the same to the caller (a file where a directory would be).
 */
async function unlessAbsent<T>(op: Promise<T>, other: string): Promise<T | undefined> {
  try {
    return await op;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === other) return undefined;
    throw e;
  }
}

/**
 * Resolve a path inside a root filesystem the way the target system would see it: symlinks
 * (absolute ones included) are followed relative to `root` and can never leave it.
 * Returns the host path, or undefined when something along the way does not exist.
 */
export async function resolveInRoot(root: string, rel: string): Promise<string | undefined> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let hops = 0;
  while (parts.length > 0) {
    const part = parts.shift() as string;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = path.join(root, ...done, part);
    const st = await unlessAbsent(fsp.lstat(host), 'ENOTDIR');
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new UnsafeEntryError(rel, 'too many levels of symbolic links');
      const target = await fsp.readlink(host);
      if (target.startsWith('/')) done.length = 0;
      parts.unshift(...target.split('/'));
      continue;
    }
    done.push(part);
  }
  return path.join(root, ...done);
}

/** Read a text file inside a root filesystem, or undefined when it is absent. */
export async function readInRoot(root: string, rel: string): Promise<string | undefined> {
  const p = await resolveInRoot(root, rel);
  if (p === undefined) return undefined;
  return unlessAbsent(fsp.readFile(p, 'utf8'), 'EISDIR');
}
