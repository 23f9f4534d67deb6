import { promises as fsp, constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { InvalidArgumentError, noSpaceAt } from '@strata/oci';

let tempCount = 0;

/**
 * A temp name next to `target`, so a rename is atomic on the same filesystem. Unique by process,
 * count and time; temp files are created exclusively (`wx`), so a clash fails, never overwrites.
 */
export function tempPathFor(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.tmp-${process.pid}-${(tempCount++).toString(36)}-${Date.now().toString(36)}`,
  );
}

/**
 * The pid in the name of a temp file (`.name.tmp-<pid>-…` of tempPathFor, `…-<pid>-<hex>` of
 * older ingests) or of a broken lock (`.stale-<pid>`), or undefined when the name has none.
 */
export function tempOwner(name: string): number | undefined {
  const m =
    /\.tmp-(\d+)-[a-z0-9]+-[a-z0-9]+$/.exec(name) ??
    /\.stale-(\d+)$/.exec(name) ??
    /-(\d+)-[a-f0-9]+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

const WHY: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOTDIR: 'a parent is not a directory',
  EEXIST: 'a parent is not a directory',
  ENOENT: 'its directory takes no new files',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
};

/**
 * Make ready to write `target` (a file, or with `directory` a folder), before any long work:
 * its missing parent directories are made, as `strata sbom -o` and `report -o`
 * always did, and a file is created and removed beside it. What stops the write is then one
 * error that names the output as the user gave it (`what`, for example `--rootfs out/a.tar`),
 * not an errno about a temp name at the end of a flatten.
 */
export async function prepareOutput(
  target: string,
  what: string,
  opts: { directory?: boolean } = {},
): Promise<void> {
  // A folder is probed inside when it is there; else its parent, so that a command that then
  // fails on its input leaves no empty folder behind.
  const st = await fsp.stat(target).catch(() => undefined);
  if (st && opts.directory !== true && st.isDirectory())
    throw new InvalidArgumentError(`cannot write ${what}: it is a directory`, {
      hint: 'name a file in it',
    });
  if (st && opts.directory === true && !st.isDirectory())
    throw new InvalidArgumentError(`cannot write ${what}: it is a file, not a folder`);
  const dir = st && opts.directory ? target : path.dirname(path.resolve(target));
  try {
    await fsp.mkdir(dir, { recursive: true });
    const probe = path.join(dir, `.strata-probe-${process.pid}-${(tempCount++).toString(36)}`);
    await (await fsp.open(probe, 'wx')).close();
    await fsp.rm(probe, { force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    throw new InvalidArgumentError(`cannot write ${what}: ${WHY[code] ?? (e as Error).message}`, {
      cause: e,
    });
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fd = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** Make a finished temp file durable and move it into place: fsync, rename, fsync the directory. */
export async function commitFile(tmp: string, target: string): Promise<void> {
  const fd = await fsp.open(tmp, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
  await fsp.rename(tmp, target);
  await fsyncDir(path.dirname(target));
}

/**
 * Create `tmp` exclusively, let `write` fill it, and fsync it. Whatever fails, the temp file is
 * removed: nothing half-written is left behind for a later reader to trust. A full disk is a
 * NoSpaceError naming the temp file's directory (and `needed`, the whole size, when known).
 */
export async function writeTemp(
  tmp: string,
  mode: number,
  write: (fh: FileHandle) => Promise<void>,
  needed?: number,
): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(tmp, 'wx', mode);
  } catch (e) {
    throw noSpaceAt(e, path.dirname(tmp), needed);
  }
  try {
    await write(fh);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw noSpaceAt(e, path.dirname(tmp), needed);
  }
  await fh.close();
}

/** Write a whole file atomically: temp file, fsync, rename, fsync the directory. */
export async function writeFileAtomic(
  target: string,
  data: Buffer | string,
  mode = 0o644,
): Promise<void> {
  const tmp = tempPathFor(target);
  await writeTemp(tmp, mode, (fh) => fh.writeFile(data));
  try {
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(path.dirname(target));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
