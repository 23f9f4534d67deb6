import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Digest, compressionOf, digestHex, NotFoundError } from '@strata/oci';
import { unpackLayers } from '@strata/layer';
import { Store, diskUsage, writeFileAtomic } from '@strata/store';

/**
 * Unpacked layer stacks, keyed by chain ID, under `<store>/.strata/snapshots/<chain>/`.
 * A "full" snapshot is a whole tree; a "diff" snapshot is an overlayfs upper directory
 * (overlay whiteouts) on top of its parent chain. Overlay lower dirs come from walking them.
 */
export interface SnapshotMeta {
  kind: 'full' | 'diff';
  parent?: Digest;
}

export interface StackLayer {
  digest: Digest;
  size: number;
  mediaType: string;
  diffId: Digest;
}

export class Snapshots {
  readonly dir: string;
  constructor(private readonly store: Store) {
    this.dir = path.join(store.root, '.strata', 'snapshots');
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

  /** Move a finished tree into place as the snapshot of `chain`. */
  async commit(chain: Digest, tree: string, meta: SnapshotMeta): Promise<void> {
    const target = this.pathOf(chain);
    if (await this.meta(chain)) {
      await fsp.rm(tree, { recursive: true, force: true });
      return;
    }
    const holder = await this.scratch('commit');
    await fsp.rename(tree, path.join(holder, 'fs'));
    await writeFileAtomic(path.join(holder, 'meta.json'), JSON.stringify(meta));
    await fsp.rm(target, { recursive: true, force: true });
    await fsp.rename(holder, target);
  }

  /** Make sure a chain can be mounted: unpack the whole stack into a full snapshot if needed. */
  async ensure(chain: Digest, layers: readonly StackLayer[]): Promise<string[]> {
    const have = await this.lowerDirs(chain);
    if (have) {
      // Recently used snapshots are the last that gc lets go of (see StoreConfig).
      const now = new Date();
      await fsp.utimes(path.join(this.pathOf(chain), 'meta.json'), now, now).catch(() => undefined);
      return have;
    }
    const tmp = await this.scratch('unpack');
    const fsDir = path.join(tmp, 'fs');
    await fsp.mkdir(fsDir);
    try {
      await unpackLayers(
        layers.map((l) => {
          const compression = compressionOf(l.mediaType);
          if (!compression)
            throw new NotFoundError(`layer ${l.digest}: unsupported media type ${l.mediaType}`);
          // The unpacker reads the blob file itself and checks its digest and diffID (once:
          // the store remembers diffIDs it has verified).
          return {
            open: () => this.store.blobPath(l.digest),
            compression,
            expectedDiffId: l.diffId,
            expectedDigest: l.digest,
          };
        }),
        fsDir,
        { diffIds: this.store },
      );
      await this.commit(chain, fsDir, { kind: 'full' });
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
    const dirs = await this.lowerDirs(chain);
    if (!dirs) throw new NotFoundError(`snapshot ${chain} vanished`);
    return dirs;
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
  }
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
