import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { UnsafeEntryError } from '@strata/oci';

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
    let st;
    try {
      st = await fsp.lstat(host);
    } catch (e) {
      if (
        (e as NodeJS.ErrnoException).code === 'ENOENT' ||
        (e as NodeJS.ErrnoException).code === 'ENOTDIR'
      ) {
        return undefined;
      }
      throw e;
    }
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
  try {
    return await fsp.readFile(p, 'utf8');
  } catch (e) {
    if (
      (e as NodeJS.ErrnoException).code === 'ENOENT' ||
      (e as NodeJS.ErrnoException).code === 'EISDIR'
    ) {
      return undefined;
    }
    throw e;
  }
}
