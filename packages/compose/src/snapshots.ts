import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Digest, digestHex, layerOf, NotFoundError } from '@strata/oci';
import { unpackLayers } from '@strata/layer';
import { Store, diskUsage, pidAlive, writeFileAtomic } from '@strata/store';

/**
 * Unpacked layer stacks, keyed by chain ID, under `<store>/.strata/snapshots/<chain>/`.
 * A "full" snapshot is a whole tree; a "diff" snapshot is an overlayfs upper directory
 * (overlay whiteouts) on top of its parent chain. Overlay lower dirs come from walking them.
 *
 * Two things keep deep stacks mountable, as container engines do. A diff snapshot deeper than
 * `mergeDepth` is given a `merged/` whole tree of its chain, where the walk stops, so a step
 * never mounts more than that many lower dirs and the cost of a step does not grow with the
 * number of steps before it. And steps mount through short links, `l/<12 hex>` beside the
 * snapshots, from that directory, so each lower dir costs about twenty bytes of the one page the
 * kernel takes for the mount option.
 */
export interface SnapshotMeta {
  kind: 'full' | 'diff';
  parent?: Digest;
  /** A diff snapshot that also holds its chain's whole tree in `merged/`. */
  merged?: boolean;
}

/** Lower dirs a step may stack before the chain below it is merged into one tree. */
export const MERGE_DEPTH = 48;

/** Hex digits of a chain ID that name its link under `l/`. */
const LINK_HEX = 12;

export interface StackLayer {
  digest: Digest;
  size: number;
  mediaType: string;
  diffId: Digest;
}

export interface SnapshotsOptions {
  /** Lower dirs a chain may have before `ensure` merges it (default `MERGE_DEPTH`). */
  mergeDepth?: number;
}

/** Where a step mounts its lower dirs from, and those dirs relative to it. */
export interface MountLowers {
  cwd: string;
  lower: string[];
}

export class Snapshots {
  readonly dir: string;
  private readonly mergeDepth: number;
  constructor(
    private readonly store: Store,
    opts: SnapshotsOptions = {},
  ) {
    this.dir = path.join(store.root, '.strata', 'snapshots');
    this.mergeDepth = Math.max(1, opts.mergeDepth ?? MERGE_DEPTH);
  }

  private pathOf(chain: Digest): string {
    return path.join(this.dir, digestHex(chain));
  }

  async meta(chain: Digest): Promise<SnapshotMeta | undefined> {
    try {
      return JSON.parse(await fsp.readFile(path.join(this.pathOf(chain), 'meta.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Overlay lower dirs for a chain, topmost first, or undefined when some link is missing. */
  async lowerDirs(chain: Digest): Promise<string[] | undefined> {
    const dirs: string[] = [];
    let cur: Digest | undefined = chain;
    while (cur !== undefined) {
      const m = await this.meta(cur);
      if (!m) return undefined;
      if (m.merged) {
        dirs.push(path.join(this.pathOf(cur), 'merged'));
        return dirs;
      }
      dirs.push(path.join(this.pathOf(cur), 'fs'));
      if (m.kind === 'full') return dirs;
      cur = m.parent;
    }
    return undefined;
  }

  /** A scratch directory beside the snapshots (same filesystem, so renames are atomic). */
  async scratch(prefix: string): Promise<string> {
    await fsp.mkdir(this.dir, { recursive: true });
    const d = path.join(
      this.dir,
      `.tmp-${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`,
    );
    await fsp.mkdir(d);
    return d;
  }

  /**
   * Move a finished tree into place as the snapshot of `chain`. A whole snapshot already there
   * wins, even one that appeared while this tree was being made: another build may have it
   * mounted as a lower dir, so it is never removed or replaced. Only a directory without its
   * meta.json (left by a crash) is cleared out of the way.
   */
  async commit(chain: Digest, tree: string, meta: SnapshotMeta): Promise<void> {
    const target = this.pathOf(chain);
    if (await this.meta(chain)) {
      await fsp.rm(tree, { recursive: true, force: true });
      return;
    }
    const holder = await this.scratch('commit');
    await fsp.rename(tree, path.join(holder, 'fs'));
    await writeFileAtomic(path.join(holder, 'meta.json'), JSON.stringify(meta));
    for (let attempt = 0; ; attempt++) {
      try {
        // rename(2) replaces only an empty directory, so a snapshot is never swapped in place.
        await fsp.rename(holder, target);
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt >= 3) {
          await fsp.rm(holder, { recursive: true, force: true });
          throw e;
        }
      }
      if (await this.meta(chain)) {
        await fsp.rm(holder, { recursive: true, force: true });
        return;
      }
      await this.remove(chain);
    }
  }

  /**
   * Make sure a chain can be mounted: unpack the whole stack into a full snapshot if needed, or
   * into a merged tree of the chain when its lower dirs would be more than `mergeDepth`.
   * Returns the lower dirs, topmost first.
   */
  async ensure(
    chain: Digest,
    layers: readonly StackLayer[],
    onProgress?: (bytes: number, total: number) => void,
  ): Promise<string[]> {
    const have = await this.lowerDirs(chain);
    if (have && have.length <= this.mergeDepth) {
      // Recently used snapshots are the last that gc lets go of (see StoreConfig).
      const now = new Date();
      await fsp.utimes(path.join(this.pathOf(chain), 'meta.json'), now, now).catch(() => undefined);
      return have;
    }
    const tmp = await this.scratch('unpack');
    try {
      const tree = await this.unpack(tmp, layers, onProgress);
      if (have) await this.merge(chain, tree);
      else {
        // A diff whose parent is gone can never be mounted: a full snapshot takes its place. A
        // chain that became mountable meanwhile was committed by another build, which may be
        // running on it already: that one stays, and commit drops this tree.
        const m = await this.meta(chain);
        if (m?.kind === 'diff' && (await this.lowerDirs(chain)) === undefined)
          await this.remove(chain);
        await this.commit(chain, tree, { kind: 'full' });
      }
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
    const dirs = await this.lowerDirs(chain);
    if (!dirs) throw new NotFoundError(`snapshot ${chain} vanished`);
    return dirs;
  }

  /** Unpack a stack of layer blobs into `<tmp>/fs`. */
  private async unpack(
    tmp: string,
    layers: readonly StackLayer[],
    onProgress?: (bytes: number, total: number) => void,
  ): Promise<string> {
    const fsDir = path.join(tmp, 'fs');
    await fsp.mkdir(fsDir);
    onProgress?.(
      0,
      layers.reduce((n, l) => n + l.size, 0),
    );
    // The store's layers hand the unpacker their blob files, whose digests (and diffIDs, once:
    // the store remembers the ones it verified) it checks as it reads them.
    await unpackLayers(
      layers.map((l) =>
        layerOf(
          this.store.content,
          { mediaType: l.mediaType, digest: l.digest, size: l.size },
          l.diffId,
        ),
      ),
      fsDir,
      onProgress &&
        ((bytes) =>
          onProgress(
            bytes,
            layers.reduce((n, l) => n + l.size, 0),
          )),
    );
    return fsDir;
  }

  /**
   * Give a diff snapshot its chain's whole tree. Nothing a running step may have mounted is
   * moved or removed: the tree lands beside `fs/` (a rename, so it is whole or absent) and only
   * then does meta.json say so. A merge another build finished first wins.
   */
  private async merge(chain: Digest, tree: string): Promise<void> {
    const m = await this.meta(chain);
    if (!m) throw new NotFoundError(`snapshot ${chain} vanished`);
    if (m.merged) return;
    try {
      await fsp.rename(tree, path.join(this.pathOf(chain), 'merged'));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    }
    await writeFileAtomic(
      path.join(this.pathOf(chain), 'meta.json'),
      JSON.stringify({ ...m, merged: true }),
    );
  }

  /**
   * The lower dirs (from `ensure`) as a step mounts them: from the snapshots directory, through
   * short links `l/<12 hex>` to the snapshot directories. A link name already taken by another
   * snapshot (a 48-bit prefix clash) is never followed: that dir is given by its own longer path.
   */
  async mountLowers(lower: readonly string[]): Promise<MountLowers> {
    const links = path.join(this.dir, 'l');
    await fsp.mkdir(links, { recursive: true });
    const out: string[] = [];
    for (const dir of lower) {
      const rel = path.relative(this.dir, dir);
      const [name, sub] = rel.split(path.sep);
      if (!name || !sub || !/^[a-f0-9]{64}$/.test(name) || rel !== path.join(name, sub)) {
        out.push(dir);
        continue;
      }
      const link = linkName(name);
      out.push((await this.link(link, name)) ? path.join('l', link, sub) : rel);
    }
    return { cwd: this.dir, lower: out };
  }

  /** Make `l/<link>` point at snapshot `name`; false when the name belongs to another. */
  private async link(link: string, name: string): Promise<boolean> {
    const p = path.join(this.dir, 'l', link);
    const want = path.join('..', name);
    const target = await fsp.readlink(p).catch(() => undefined);
    if (target === want) return true;
    // A link to a snapshot that is gone is stale: it may be taken over.
    if (target !== undefined && (await exists(path.resolve(path.dirname(p), target)))) return false;
    const tmp = path.join(this.dir, 'l', `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    await fsp.symlink(want, tmp);
    try {
      await fsp.rename(tmp, p);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    return (await fsp.readlink(p).catch(() => undefined)) === want;
  }

  /**
   * Every snapshot, with its size and when it was last made or mounted, and the scratch
   * directories of builds (`pid` says whose: a live process's are in use).
   */
  async list(): Promise<{ snapshots: SnapshotInfo[]; scratch: ScratchInfo[] }> {
    const snapshots: SnapshotInfo[] = [];
    const scratch: ScratchInfo[] = [];
    let names: string[] = [];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return { snapshots, scratch };
    }
    for (const name of names) {
      const p = path.join(this.dir, name);
      const tmp = /^\.tmp-[a-z]+-(\d+)-[a-f0-9]+$/.exec(name);
      if (tmp) {
        scratch.push({ name, pid: Number(tmp[1]), bytes: await diskUsage(p) });
        continue;
      }
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const chain = `sha256:${name}` as Digest;
      const meta = await this.meta(chain);
      const st = await fsp.stat(path.join(p, 'meta.json')).catch(() => undefined);
      if (!meta || !st) {
        // A snapshot without its meta.json is never mounted: it is only ever garbage.
        scratch.push({ name, pid: 0, bytes: await diskUsage(p) });
        continue;
      }
      snapshots.push({
        chain,
        kind: meta.kind,
        parent: meta.parent,
        bytes: await diskUsage(p),
        mtimeMs: st.mtimeMs,
      });
    }
    return { snapshots, scratch };
  }

  /**
   * Remove the scratch directories of builds that are gone (killed, or stopped by a second
   * Ctrl-C without cleaning up): a step's can hold its whole upper, hundreds of MB, and only
   * a gc would otherwise find them.
   */
  async sweepDead(): Promise<void> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      const tmp = /^\.tmp-[a-z]+-(\d+)-[a-f0-9]+$/.exec(name);
      if (!tmp) continue;
      const pid = Number(tmp[1]);
      if (pid !== process.pid && !pidAlive(pid)) await this.remove(name);
    }
  }

  /**
   * Remove a snapshot (`sha256:…`) or a scratch directory (its name). The directory is renamed
   * out of the way first, so a build never finds half of a snapshot.
   */
  async remove(what: Digest | string): Promise<void> {
    const p = what.startsWith('sha256:')
      ? this.pathOf(what as Digest)
      : path.join(this.dir, path.basename(what));
    const gone = path.join(this.dir, `.tmp-gc-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      await fsp.rename(p, gone);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await fsp.rm(gone, { recursive: true, force: true });
    if (what.startsWith('sha256:')) {
      const hex = digestHex(what as Digest);
      const link = path.join(this.dir, 'l', linkName(hex));
      if ((await fsp.readlink(link).catch(() => undefined)) === path.join('..', hex))
        await fsp.rm(link, { force: true });
    }
  }
}

/** The short name under `l/` of the snapshot directory `hex`. */
export function linkName(hex: string): string {
  return hex.slice(0, LINK_HEX);
}

async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(
    () => true,
    () => false,
  );
}

export interface SnapshotInfo {
  chain: Digest;
  kind: SnapshotMeta['kind'];
  parent?: Digest;
  bytes: number;
  /** When the snapshot was made or last mounted by a build. */
  mtimeMs: number;
}

export interface ScratchInfo {
  name: string;
  /** The process that made it (0: unknown). */
  pid: number;
  bytes: number;
}
