import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Digest, compressionOf, digestHex, NotFoundError } from '@strata/oci';
import { unpackLayers } from '@strata/layer';
import { Store, writeFileAtomic } from '@strata/store';

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
    if (have) return have;
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

  /** Drop every snapshot (they are a cache: `strata gc --snapshots`); returns the bytes freed. */
  async prune(): Promise<number> {
    let bytes = 0;
    const seen = new Set<string>();
    const du = async (p: string): Promise<void> => {
      const st = await fsp.lstat(p);
      const id = `${st.dev}:${st.ino}`;
      if (!seen.has(id)) {
        seen.add(id);
        bytes += st.isDirectory() ? 0 : st.size;
      }
      if (st.isDirectory()) for (const n of await fsp.readdir(p)) await du(path.join(p, n));
    };
    let names: string[] = [];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return 0;
    }
    for (const name of names) {
      const p = path.join(this.dir, name);
      await du(p);
      await fsp.rm(p, { recursive: true, force: true });
    }
    return bytes;
  }
}
