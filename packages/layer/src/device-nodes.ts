import * as fs from 'node:fs';
import { NodeSpec } from '@strata/tools';
import { ioError, splitParent } from './entry-path';
import { TarHeader } from './format';

/** A device node or FIFO to make, and the entry it comes from. */
export interface NodeToMake {
  spec: NodeSpec;
  h: TarHeader;
}

/**
 * Device nodes and FIFOs still to be made, each holding its name with an empty placeholder file.
 * They need a spawned tool, and spawnSync costs tens of milliseconds per node in a large process;
 * so the applier reserves the name (created like any file, O_EXCL|O_NOFOLLOW) and makes the nodes
 * in one batch.
 */
export class PendingNodes {
  /** Root-relative path → the entry and the inode of its placeholder. */
  private readonly byPath = new Map<string, { h: TarHeader; ino: number }>();

  get size(): number {
    return this.byPath.size;
  }

  has(rel: string): boolean {
    return this.byPath.has(rel);
  }

  add(rel: string, h: TarHeader, ino: number): void {
    this.byPath.set(rel, { h, ino });
  }

  /** Forget `rel`, and with `under` everything below it. */
  forget(rel: string, under: boolean): void {
    this.byPath.delete(rel);
    if (!under) return;
    const prefix = rel + '/';
    for (const k of this.byPath.keys()) if (k.startsWith(prefix)) this.byPath.delete(k);
  }

  /** The directories that hold a pending node. */
  parents(): Set<string> {
    const out = new Set<string>();
    for (const rel of this.byPath.keys()) out.add(splitParent(rel)[0]);
    return out;
  }

  /**
   * Swap the placeholders for node specs: each placeholder still there (its parent re-checked
   * by `dirOk` to be a real directory, the inode the one created) is removed, and the node is
   * to be made at its name. Nothing is pending afterwards.
   */
  take(
    abs: (rel: string) => string,
    dirOk: (parent: string, entry: string) => boolean,
  ): NodeToMake[] {
    const out: NodeToMake[] = [];
    for (const [rel, { h, ino }] of this.byPath) {
      const [parent] = splitParent(rel);
      if (!dirOk(parent, h.path)) continue;
      const path = abs(rel);
      const st = fs.lstatSync(path, { throwIfNoEntry: false });
      if (st === undefined || !st.isFile() || st.ino !== ino) continue;
      fs.unlinkSync(path);
      const kind = h.type as NodeSpec['kind'];
      out.push({ spec: { path, kind, major: h.devmajor, minor: h.devminor }, h });
    }
    this.byPath.clear();
    return out;
  }
}

/** Give nodes just made their entries' owner, mode and times. */
export function nodesMade(nodes: readonly NodeToMake[]): void {
  for (const { spec, h } of nodes) {
    try {
      fs.lchownSync(spec.path, h.uid, h.gid);
      fs.chmodSync(spec.path, h.mode); // a node we just made, not a symlink
      fs.lutimesSync(spec.path, h.mtime, h.mtime);
    } catch (e) {
      throw ioError(h.path, e);
    }
  }
}
