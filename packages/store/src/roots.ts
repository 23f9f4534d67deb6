import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Descriptor, InvalidArgumentError, encodeJson, isDigest, noSpaceAt } from '@strata/oci';
import { tempOwner, tempPathFor, writeFileAtomic } from './atomic';
import { pidAlive, waitForUnlock, withFileLock } from './lock';
import { RefStore } from './refs';

/**
 * What keeps blobs alive besides tags: GC roots (a build cache entry, say), and leases held by
 * running operations, which a concurrent gc respects.
 */
export class RootStore extends RefStore {
  /**
   * Run `fn` under a lease: blobs written or touched while any live lease is held are
   * kept by a concurrent `gc`, so an operation's blobs survive until it tags them.
   */
  async withLease<T>(fn: () => Promise<T>): Promise<T> {
    const file = path.join(this.paths.leaseDir, path.basename(tempPathFor('lease')));
    try {
      await fsp.writeFile(file, JSON.stringify({ pid: process.pid, since: Date.now() }));
    } catch (e) {
      // A lease that cannot be read names no process, and would hold the store busy for good.
      await fsp.rm(file, { force: true });
      throw noSpaceAt(e, this.paths.leaseDir);
    }
    try {
      // The lease is written before the gc lock is looked at, and gc takes its lock before it
      // looks at leases: either this waits for that gc, or that gc sees this lease and
      // leaves the build cache and snapshots alone.
      await waitForUnlock(this.paths.gcLockPath, {
        timeoutMs: 30 * 60_000,
        what: `store ${this.root} (a gc is running)`,
      });
      return await fn();
    } finally {
      await fsp.rm(file, { force: true });
    }
  }

  /**
   * Record a GC root: `gc` keeps every blob the descriptors reach (a build cache entry, say).
   * `doc` may carry more fields; only `descriptors` matters to the store.
   */
  async putRoot(
    name: string,
    doc: { descriptors: Descriptor[] } & Record<string, unknown>,
  ): Promise<void> {
    if (!/^[A-Za-z0-9._-]+$/.test(name))
      throw new InvalidArgumentError(`invalid root name ${name}`);
    await writeFileAtomic(path.join(this.paths.rootsDir, `${name}.json`), encodeJson(doc));
  }

  /** Read a GC root written by putRoot, or undefined. */
  async getRoot(
    name: string,
  ): Promise<({ descriptors: Descriptor[] } & Record<string, unknown>) | undefined> {
    try {
      return JSON.parse(await fsp.readFile(path.join(this.paths.rootsDir, `${name}.json`), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async removeRoots(filter: (name: string) => boolean = () => true): Promise<number> {
    let n = 0;
    for (const f of await fsp.readdir(this.paths.rootsDir)) {
      if (f.endsWith('.json') && filter(f.slice(0, -5))) {
        await fsp.rm(path.join(this.paths.rootsDir, f), { force: true });
        n++;
      }
    }
    return n;
  }

  async rootDescriptors(except: ReadonlySet<string> = new Set()): Promise<Descriptor[]> {
    const out: Descriptor[] = [];
    for (const f of await fsp.readdir(this.paths.rootsDir)) {
      if (!f.endsWith('.json') || except.has(f.slice(0, -5))) continue;
      const doc = await this.getRoot(f.slice(0, -5)).catch(() => undefined);
      for (const d of doc?.descriptors ?? []) if (isDigest(d.digest)) out.push(d);
    }
    return out;
  }

  /**
   * Run `fn` (which deletes build-cache entries, snapshots or apt caches) holding the store's gc
   * lock. `fn` is told whether a lease was live once the lock was held: if none was, no
   * build, pull or ingest runs until `fn` returns (see withLease).
   */
  async withGcLock<T>(fn: (busy: boolean) => Promise<T>): Promise<T> {
    return withFileLock(this.paths.gcLockPath, async () => fn(await this.busy()), {
      what: `gc of store ${this.root}`,
    });
  }

  /** The GC roots written by putRoot: name, size of the file, and when it was last written or touched. */
  async listRoots(): Promise<Array<{ name: string; bytes: number; mtimeMs: number }>> {
    const out = [];
    for (const f of await fsp.readdir(this.paths.rootsDir)) {
      if (!f.endsWith('.json')) continue;
      const st = await fsp.stat(path.join(this.paths.rootsDir, f)).catch(() => undefined);
      if (st) out.push({ name: f.slice(0, -5), bytes: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  /** Mark a root as used now (gc keeps recently used unused entries first). */
  async touchRoot(name: string): Promise<void> {
    const now = new Date();
    await fsp
      .utimes(path.join(this.paths.rootsDir, `${name}.json`), now, now)
      .catch(() => undefined);
  }

  /** Remove the leases of processes that are gone, which a gc would otherwise have to find. */
  async dropDeadLeases(): Promise<void> {
    await this.oldestLease();
  }

  /** Whether some live process holds a lease (a build or an ingest is under way). */
  async busy(): Promise<boolean> {
    return (await this.oldestLease()) !== undefined;
  }

  /** Start time (ms) of the oldest live lease, if any. */
  async oldestLease(): Promise<number | undefined> {
    let oldest: number | undefined;
    for (const name of await fsp.readdir(this.paths.leaseDir)) {
      const p = path.join(this.paths.leaseDir, name);
      try {
        const l = JSON.parse(await fsp.readFile(p, 'utf8')) as { pid: number; since: number };
        if (!pidAlive(l.pid)) {
          await fsp.rm(p, { force: true });
          continue;
        }
        oldest = oldest === undefined ? l.since : Math.min(oldest, l.since);
      } catch {
        // Unreadable: a lease being written right now, or one whose writer was killed while
        // writing it, which would otherwise keep the store busy for good.
        const owner = tempOwner(name);
        if (owner !== undefined && owner !== process.pid && !pidAlive(owner)) {
          await fsp.rm(p, { force: true });
          continue;
        }
        oldest = oldest === undefined ? Date.now() : Math.min(oldest, Date.now());
      }
    }
    return oldest;
  }
}
