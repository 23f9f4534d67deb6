import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { StrataError, UnsafeEntryError } from '@strata/oci';
import { cleanEntryPath, TarHeader, TarParser } from '@strata/layer';
import { copyToFile } from '@strata/store';
import type { ImageLayer } from './resolve-image';

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';

/** One entry of a layer, as indexed by the first pass. */
export interface LayerEntry {
  /** Root-relative path, cleaned, without a trailing '/'. */
  readonly rel: string;
  readonly header: TarHeader;
  /** Index of the layer in the stack (0 = base). */
  readonly layer: number;
  /** Offset of the body in the uncompressed tar, and so in its spill file (-1: no body). */
  offset: number;
  /**
   * For a hardlink: the entry holding the inode (a non-link, possibly hidden by an upper layer).
   * For everything else: the entry itself.
   */
  inode: LayerEntry;
}

/** The merged tree: every visible entry, in output order. */
export interface MergedTree {
  entries: LayerEntry[];
  /** Entries read from each layer (index = layer). */
  layerEntries: number[];
  /** Bytes of uncompressed tar read from each layer. */
  layerBytes: number[];
}

export interface MergeProgress {
  layer: number;
  bytes: number;
}

/**
 * Byte-wise order of paths compared component by component ('/' sorts before every other byte),
 * which is the order packTree writes: a directory, then its subtree, then its next sibling.
 */
export function comparePaths(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 0x2f) return -1;
    if (y === 0x2f) return 1;
    if (x >= 0xd800 || y >= 0xd800) {
      // UTF-16 order differs from UTF-8 order above the BMP: compare encoded bytes.
      const ba = Buffer.from(a.slice(i).replace(/\//g, '\0'), 'utf8');
      const bb = Buffer.from(b.slice(i).replace(/\//g, '\0'), 'utf8');
      return Buffer.compare(ba, bb);
    }
    x = x | 0;
    y = y | 0;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** What the layers above the one being read hide. */
class UpperState {
  /** Paths that upper layers set (any type) or whited out. */
  readonly seen = new Set<string>();
  /** Paths whose whole subtree upper layers hide: non-directories and whiteouts. */
  readonly subtree = new Set<string>();
  /** Directories made opaque by upper layers: everything strictly below is hidden. */
  readonly opaque = new Set<string>();

  hides(rel: string): boolean {
    if (this.seen.has(rel)) return true;
    if (this.subtree.size === 0 && this.opaque.size === 0) return false;
    let p = rel;
    for (;;) {
      const i = p.lastIndexOf('/');
      p = i < 0 ? '' : p.slice(0, i);
      if (this.opaque.has(p) || this.subtree.has(p)) return true;
      if (p === '') return false;
    }
  }
}

/** Everything one layer says, indexed; whiteouts kept apart from entries. */
interface LayerIndex {
  entries: Map<string, LayerEntry>;
  whiteouts: Set<string>;
  opaque: Set<string>;
  links: LayerEntry[];
  count: number;
  bytes: number;
}

async function indexLayer(
  layer: ImageLayer,
  onProgress?: (p: MergeProgress) => void,
  spill?: string,
  signal?: AbortSignal,
): Promise<LayerIndex> {
  const out: LayerIndex = {
    entries: new Map(),
    whiteouts: new Set(),
    opaque: new Set(),
    links: [],
    count: 0,
    bytes: 0,
  };
  let chunkBase = 0;
  let chunkOffset = 0;
  let current: LayerEntry | undefined;
  const parser = new TarParser({
    header: (h) => {
      out.count++;
      current = undefined;
      const rel = cleanEntryPath(h.path);
      if (rel === '') {
        if (h.type !== 'dir')
          throw new UnsafeEntryError(h.path, 'would change the type of the root directory');
        return; // the root's own metadata is not part of a flat tar
      }
      const slash = rel.lastIndexOf('/');
      const base = rel.slice(slash + 1);
      const parent = slash < 0 ? '' : rel.slice(0, slash);
      if (base.startsWith(WH_PREFIX)) {
        if (base === WH_OPAQUE) {
          out.opaque.add(parent);
          return;
        }
        const name = base.slice(WH_PREFIX.length);
        if (name === '' || name === '.' || name === '..' || name.startsWith(WH_PREFIX)) {
          throw new UnsafeEntryError(h.path, 'whiteout names no entry inside its directory');
        }
        out.whiteouts.add(parent === '' ? name : `${parent}/${name}`);
        return;
      }
      const e: LayerEntry = {
        rel,
        header: h,
        layer: layer.index,
        offset: -1,
        inode: undefined as unknown as LayerEntry,
      };
      e.inode = e;
      if (h.type === 'link') {
        const target = cleanEntryPath(h.linkpath, h.path, 'hardlink target');
        if (target === '') throw new UnsafeEntryError(h.path, 'hardlink to the root directory');
        h.linkpath = target;
        const t = out.entries.get(target);
        if (t !== undefined) {
          if (t.inode.header.type === 'dir') {
            throw new UnsafeEntryError(
              h.path,
              `hardlink target ${JSON.stringify(target)} is a directory`,
            );
          }
          if (target !== rel) e.inode = t.inode;
        } else {
          out.links.push(e); // resolved against lower layers after the merge
        }
        if (target === rel) return; // a link to itself changes nothing
      }
      h.path = rel;
      out.entries.set(rel, e);
      if (h.type === 'file' && h.size > 0) current = e;
    },
    data: (chunk) => {
      if (current !== undefined) {
        current.offset = chunkBase + (chunk.byteOffset - chunkOffset);
        current = undefined;
      }
    },
    entryEnd: () => undefined,
  });
  const tar: Readable = await layer.openTar();
  // The read stops at once, not at the layer's end: a layer may be hundreds of MB.
  const stop = (): void => {
    tar.destroy(interrupted());
  };
  signal?.addEventListener('abort', stop, { once: true });
  let last = 0;
  const consume = (chunk: Buffer): void => {
    chunkOffset = chunk.byteOffset;
    parser.write(chunk);
    chunkBase += chunk.length;
    if (onProgress && chunkBase - last >= 4 << 20) {
      last = chunkBase;
      onProgress({ layer: layer.index, bytes: chunkBase });
    }
  };
  try {
    if (signal?.aborted) throw interrupted();
    if (spill === undefined) {
      for await (const c of tar) consume(c as Buffer);
    } else {
      const fh = await fsp.open(spill, 'wx', 0o600);
      try {
        await copyToFile(tar, fh, 0, consume);
      } finally {
        await fh.close();
      }
    }
  } catch (e) {
    tar.destroy();
    throw e;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  parser.end();
  out.bytes = chunkBase;
  onProgress?.({ layer: layer.index, bytes: chunkBase });
  return out;
}

/** What a flatten that `signal` stopped throws. */
export function interrupted(): StrataError {
  return new StrataError('INTERRUPTED', 'flatten interrupted');
}

/** Where `mergeLayers` keeps the uncompressed tar of layer `i` when given a spill directory. */
export function spillPath(dir: string, i: number): string {
  return path.join(dir, `layer-${i}.tar`);
}

/**
 * First pass of a flatten: read every layer to its end (which verifies its digest and diffID),
 * newest first, keeping only the entries no upper layer hides (ggcr's mutate.extract rules:
 * an upper entry hides the same path, an upper non-directory or whiteout hides the subtree, an
 * upper opaque directory hides everything below it). Bodies are not kept: only headers and
 * their offsets; with `spillDir`, each layer's uncompressed tar is also written there (see
 * spillPath), so that the bodies can be read back at those offsets. Hostile entries are refused with UnsafeEntryError: absolute paths, '..'
 * components, whiteouts that name nothing, hardlinks that climb out or point at nothing or at a
 * directory, and entries that would be written through a symlink or a non-directory. When
 * `signal` aborts, the layer being read stops and the merge throws an INTERRUPTED StrataError.
 */
export async function mergeLayers(
  layers: readonly ImageLayer[],
  onProgress?: (p: MergeProgress) => void,
  spillDir?: string,
  signal?: AbortSignal,
): Promise<MergedTree> {
  const upper = new UpperState();
  const merged = new Map<string, LayerEntry>();
  const layerEntries: number[] = new Array<number>(layers.length).fill(0);
  const layerBytes: number[] = new Array<number>(layers.length).fill(0);
  /** Per layer, cross-layer hardlinks to resolve once the lower layers are known. */
  const pending: LayerEntry[][] = [];
  /** What each layer holds, path → entry, kept only for layers with cross-layer links above. */
  const indexes: (Map<string, LayerEntry> | undefined)[] = [];
  let needLower = false;
  for (let i = layers.length - 1; i >= 0; i--) {
    const idx = await indexLayer(
      layers[i] as ImageLayer,
      onProgress,
      spillDir === undefined ? undefined : spillPath(spillDir, i),
      signal,
    );
    layerEntries[i] = idx.count;
    layerBytes[i] = idx.bytes;
    for (const [rel, e] of idx.entries) {
      if (!upper.hides(rel)) merged.set(rel, e);
    }
    pending[i] = idx.links;
    if (needLower) indexes[i] = idx.entries;
    if (idx.links.length > 0) needLower = true;
    if (i === 0) break;
    for (const [rel, e] of idx.entries) {
      upper.seen.add(rel);
      if (e.header.type !== 'dir') upper.subtree.add(rel);
    }
    for (const rel of idx.whiteouts) {
      upper.seen.add(rel);
      upper.subtree.add(rel);
    }
    for (const rel of idx.opaque) upper.opaque.add(rel);
  }
  resolveCrossLayerLinks(pending, indexes, layers.length);
  return { ...finish(merged), layerEntries, layerBytes };
}

/**
 * A hardlink to a path its own layer does not hold links to whatever the layers below left at
 * that path. Resolve that bottom-up, replaying each layer's effect on the paths that matter.
 */
function resolveCrossLayerLinks(
  pending: LayerEntry[][],
  indexes: (Map<string, LayerEntry> | undefined)[],
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    for (const link of pending[i] ?? []) {
      const target = link.header.linkpath;
      let found: LayerEntry | undefined;
      for (let j = i - 1; j >= 0 && found === undefined; j--) {
        found = indexes[j]?.get(target);
      }
      // The nearest lower layer that holds the path made the inode the link shares. (A whiteout
      // of the path in a layer in between is not replayed here: umoci would then fail the link.)
      if (found === undefined) {
        throw new UnsafeEntryError(
          link.header.path,
          `hardlink target ${JSON.stringify(target)} does not exist`,
        );
      }
      if (found.inode.header.type === 'dir') {
        throw new UnsafeEntryError(
          link.header.path,
          `hardlink target ${JSON.stringify(target)} is a directory`,
        );
      }
      link.inode = found.inode;
    }
  }
}

/** Check parents, add implied directories, sort, and rewrite hardlink groups. */
function finish(merged: Map<string, LayerEntry>): { entries: LayerEntry[] } {
  for (const e of merged.values()) {
    let p = parentOf(e.rel);
    while (p !== '') {
      const parent = merged.get(p);
      if (parent !== undefined) {
        const t = parent.inode.header.type;
        if (t === 'symlink') {
          throw new UnsafeEntryError(
            e.header.path,
            `parent ${JSON.stringify(p)} is a symlink (from layer ${parent.layer})`,
          );
        }
        if (t !== 'dir') {
          throw new UnsafeEntryError(
            e.header.path,
            `parent ${JSON.stringify(p)} is not a directory (from layer ${parent.layer})`,
          );
        }
        break;
      }
      const d: LayerEntry = {
        rel: p,
        header: {
          path: p,
          type: 'dir',
          mode: 0o755,
          uid: 0,
          gid: 0,
          size: 0,
          mtime: 0,
          linkpath: '',
          devmajor: 0,
          devminor: 0,
          xattrs: {},
        },
        layer: -1,
        offset: -1,
        inode: undefined as unknown as LayerEntry,
      };
      d.inode = d;
      merged.set(p, d);
      p = parentOf(p);
    }
  }
  const entries = [...merged.values()];
  entries.sort((a, b) => comparePaths(a.rel, b.rel));
  return { entries };
}
