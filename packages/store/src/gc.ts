import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Annotations,
  Descriptor,
  Digest,
  InvalidArgumentError,
  LockedError,
  graphDigests,
} from '@strata/oci';
import { fsyncDir, tempOwner, tempPathFor } from './atomic';
import type { BlobInfo } from './blobs';
import { pruneDiffIds } from './diffids';
import { pruneStackViews, stackViewDirs } from './stack-views';
import { pidAlive, withFileLock } from './lock';
import { isReferrerRecord } from './referrers';
import { brokenTagError } from './refs';
import type { Store } from './store';

/** What `Store.gc` freed, or with `dryRun` would free. */
export interface BlobGcResult {
  /** Blobs removed. */
  removed: number;
  /** Bytes of blobs, stale ingest files and partial downloads removed. */
  bytesFreed: number;
  /** The blobs removed, with their sizes. */
  blobs: BlobInfo[];
  /** Partial downloads and stale ingest files removed, and their bytes. */
  partials: { count: number; bytes: number };
}

/**
 * Drop blobs that no tag or GC root reaches (an attached artifact is reached through its
 * subject, and its record goes with it), stale ingest files, the unpacked rootfs of a killed
 * `template create`, and partial downloads that no running pull is using (a later pull of the
 * blob then starts from the beginning). The roots
 * named in `dropRoots` are removed first (under the same lock) and keep nothing. With
 * `dryRun`, nothing is removed and the result says what would be.
 */
export async function collectGarbage(
  store: Store,
  opts: { dryRun?: boolean; dropRoots?: readonly string[] } = {},
): Promise<BlobGcResult> {
  const dry = opts.dryRun === true;
  const drop = new Set(opts.dropRoots ?? []);
  return withFileLock(
    store.paths.lockPath,
    async () => {
      if (!dry) {
        for (const name of drop) {
          if (!/^[A-Za-z0-9._-]+$/.test(name))
            throw new InvalidArgumentError(`invalid root name ${name}`);
          await fsp.rm(path.join(store.paths.rootsDir, `${name}.json`), { force: true });
        }
      }
      const index = await store.readIndex();
      const keep = new Map<Digest, Descriptor>();
      // An artifact's record is no root: the walk from its subject reaches it, or nothing does.
      for (const d of index.manifests) {
        if (!isReferrerRecord(d) && !keep.has(d.digest)) {
          try {
            graphDigests(await store.graph(d, index), keep);
          } catch (e) {
            // What a tag uses that gc cannot read, it cannot tell from garbage: it deletes
            // nothing, and says which tag stops it.
            const ref = d.annotations?.[Annotations.refName] ?? d.digest;
            throw brokenTagError(ref, e, `gc cannot tell what ${ref} uses`);
          }
        }
      }
      for (const d of await store.rootDescriptors(drop)) {
        if (!keep.has(d.digest)) graphDigests(await store.graph(d, index), keep);
      }
      const orphans = index.manifests.filter((d) => isReferrerRecord(d) && !keep.has(d.digest));
      if (!dry && orphans.length > 0) {
        index.manifests = index.manifests.filter((d) => !orphans.includes(d));
        await store.writeIndexHeld(index);
      }
      const lease = await store.oldestLease();
      const blobs: BlobInfo[] = [];
      let bytesFreed = 0;
      for (const hex of await store.allBlobs()) {
        if (keep.has(`sha256:${hex}` as Digest)) continue;
        const p = path.join(store.paths.blobDir, hex);
        const st = await fsp.stat(p);
        if (lease !== undefined && st.mtimeMs >= lease - LEASE_SLACK_MS) continue;
        if (!dry && !(await removeUnlessTouched(p, store.paths.ingestDir, lease))) continue;
        blobs.push({ digest: `sha256:${hex}` as Digest, size: st.size });
        bytesFreed += st.size;
      }
      const partials = { count: 0, bytes: 0 };
      for (const name of await fsp.readdir(store.paths.ingestDir)) {
        const p = path.join(store.paths.ingestDir, name);
        if (/^pull-[a-f0-9]{64}\.partial$/.test(name)) {
          const n = dry ? await partialSize(p) : await dropPartial(p);
          if (n > 0) {
            partials.count++;
            partials.bytes += n;
          }
          continue;
        }
        if (name.startsWith('rootfs-')) await dropDeadRootfs(p, dry, partials, lease);
        else await dropDeadTemp(p, dry, partials);
      }
      // Temp files of a killed writer elsewhere in the store (index.json, roots, leases,
      // diffIDs, Strata's own state files, broken locks) are nobody's either.
      const own = path.dirname(store.paths.ingestDir);
      for (const dir of [
        store.root,
        own,
        store.paths.rootsDir,
        store.paths.leaseDir,
        store.paths.diffIdDir,
        ...(await stackViewDirs(store.paths)),
      ]) {
        for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
          if (tempOwner(name) !== undefined)
            await dropDeadTemp(path.join(dir, name), dry, partials);
        }
      }
      bytesFreed += partials.bytes;
      if (dry) return { removed: blobs.length, bytesFreed, blobs, partials };
      if (blobs.length > 0) await fsyncDir(store.paths.blobDir);
      await pruneDiffIds(store.paths);
      await pruneStackViews(store.paths);
      return { removed: blobs.length, bytesFreed, blobs, partials };
    },
    { what: `store ${store.root}` },
  );
}

/** How long before a lease began a blob's mtime may be and still count as touched under it. */
const LEASE_SLACK_MS = 2000;

/**
 * Remove blob file `p` unless an operation under the lease that began at `lease` touched it
 * after gc looked at it. The blob is first renamed aside (into `asideDir`, as a temp file of
 * this process): a touch from then on finds no blob, so the operation writes it again rather
 * than count on it; a touch that came before shows in the mtime of the file set aside, which
 * then goes back. Returns whether the blob was removed.
 */
export async function removeUnlessTouched(
  p: string,
  asideDir: string,
  lease: number | undefined,
): Promise<boolean> {
  if (lease === undefined) {
    await fsp.rm(p, { force: true });
    return true;
  }
  const aside = path.join(asideDir, path.basename(tempPathFor(path.basename(p))));
  try {
    await fsp.rename(p, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
  const st = await fsp.stat(aside);
  if (st.mtimeMs >= lease - LEASE_SLACK_MS) {
    // The same bytes (the name is their digest), whether or not the operation wrote them again.
    await fsp.rename(aside, p);
    return false;
  }
  await fsp.rm(aside, { force: true });
  return true;
}

/** Remove a temp file whose writer is gone (a regular file only), counting it in `partials`. */
async function dropDeadTemp(
  p: string,
  dry: boolean,
  partials: { count: number; bytes: number },
): Promise<void> {
  const pid = tempOwner(path.basename(p));
  if (pid === undefined || pid === process.pid || pidAlive(pid)) return;
  const st = await fsp.lstat(p).catch(() => undefined);
  if (st === undefined || !st.isFile()) return;
  partials.count++;
  partials.bytes += st.size;
  if (!dry) await fsp.rm(p, { force: true });
}

/**
 * Remove the unpacked rootfs of a `template create` that was killed (a folder
 * `rootfs-<pid>-<hex>`, set-uid files and all) once its process is gone, counting it in
 * `partials`. A folder named by an older version carries no pid: it goes only while no
 * operation holds a lease (`lease` undefined), as a running create holds one.
 */
async function dropDeadRootfs(
  p: string,
  dry: boolean,
  partials: { count: number; bytes: number },
  lease: number | undefined,
): Promise<void> {
  const st = await fsp.lstat(p).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) return;
  const pid = tempOwner(path.basename(p));
  if (pid === undefined ? lease !== undefined : pid === process.pid || pidAlive(pid)) return;
  partials.count++;
  partials.bytes += await treeBytes(p);
  if (!dry) await fsp.rm(p, { recursive: true, force: true });
}

/** Bytes of the regular files under `dir` (symlinks not followed). */
async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += await treeBytes(p);
    else if (e.isFile()) n += (await fsp.lstat(p).catch(() => undefined))?.size ?? 0;
  }
  return n;
}

/** The size of a partial download no running pull holds (0 when one does). */
async function partialSize(file: string): Promise<number> {
  const holder = await fsp.readFile(`${file}.lock`, 'utf8').catch(() => undefined);
  if (holder !== undefined) {
    try {
      if (pidAlive((JSON.parse(holder) as { pid: number }).pid)) return 0;
    } catch {
      return 0; // a lock being written right now
    }
  }
  return (await fsp.stat(file).catch(() => undefined))?.size ?? 0;
}

/** Remove a partial download unless a live process is fetching it; returns the bytes freed. */
async function dropPartial(file: string): Promise<number> {
  try {
    return await withFileLock(
      `${file}.lock`,
      async () => {
        const st = await fsp.stat(file).catch(() => undefined);
        if (st === undefined) return 0;
        await fsp.rm(file, { force: true });
        return st.size;
      },
      { timeoutMs: 0 },
    );
  } catch (e) {
    if (e instanceof LockedError) return 0; // a pull is using it
    throw e;
  }
}
