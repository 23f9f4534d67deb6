import { createHash, Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Digest, UnsafeEntryError } from '@strata/oci';
import { cleanEntryPath, EntryType, TarHeader, parseTarStream } from '@strata/layer';

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';
const EMPTY_DIGEST = `sha256:${createHash('sha256').digest('hex')}` as Digest;

/** What a path holds in a flattened image, as far as a comparison cares. */
export interface TreeNode {
  /** A hardlink reads as what it links to (a file): it shares that inode. */
  readonly type: EntryType;
  /** Bytes of file data (0 for everything but files). */
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** A symlink's target ('' for everything else). */
  readonly link: string;
  /** sha256 of a file's data, hashed as the layer streamed by. */
  readonly digest?: Digest;
  /** `major:minor` of a character or block device. */
  readonly device?: string;
  /** A hardlink: its data is counted once, at the path it links to. */
  readonly hardlink?: boolean;
}

interface Held {
  node: TreeNode;
  /** Index of the layer that set it, for whiteouts and opaque directories of later layers. */
  layer: number;
  /** Of a file (or a hardlink to one): the entry that holds its data, and that entry's layer. */
  data?: { path: string; layer: number };
  /** The file's bytes, for a path named in FileTree.capture. */
  content?: Buffer;
}

/** Anything whose uncompressed tar can be streamed: the core's Layer, verified at EOF. */
export interface TarSource {
  openTar(): Promise<Readable>;
}

const impliedDir = (): TreeNode => ({
  type: 'dir',
  size: 0,
  mode: 0o755,
  uid: 0,
  gid: 0,
  link: '',
});

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/**
 * The flattened tree of a layer stack, in memory: path → what it holds, never the data. Layers
 * are applied in order with the OCI rules: an entry replaces the same path (a non-directory
 * replaces a directory's whole subtree), `.wh.name` hides `name` of the layers below, and
 * `.wh..wh..opq` hides everything the layers below put in its directory.
 */
export class FileTree {
  private readonly nodes = new Map<string, Held>();
  private readonly children = new Map<string, Set<string>>();
  /** Layers applied so far. */
  private layers = 0;

  /** false: the layers applied leave files' digests unset, for hashWhereNeeded to fill. */
  hashData = true;

  /**
   * Paths whose file data is kept as the layers stream by (small files a caller reads, such as
   * the dpkg status), so that reading them takes no second pass over the layers.
   */
  capture: ReadonlySet<string> = new Set();

  /** An independent copy, to apply two different stacks on top of one shared prefix. */
  clone(): FileTree {
    const t = new FileTree();
    t.hashData = this.hashData;
    t.capture = this.capture;
    for (const [k, v] of this.nodes) t.nodes.set(k, v);
    for (const [k, v] of this.children) t.children.set(k, new Set(v));
    t.layers = this.layers;
    return t;
  }

  get(rel: string): TreeNode | undefined {
    return this.nodes.get(rel)?.node;
  }

  /** The data of a file at a path named in `capture`, as the top layer holding it has it. */
  content(rel: string): Buffer | undefined {
    return this.nodes.get(rel)?.content;
  }

  paths(): IterableIterator<string> {
    return this.nodes.keys();
  }

  /** Every path and what it holds, in no particular order. */
  *entries(): IterableIterator<[string, TreeNode]> {
    for (const [k, v] of this.nodes) yield [k, v.node];
  }

  get size(): number {
    return this.nodes.size;
  }

  /**
   * Stream one layer's tar through the project's tar reader and apply it. File data is hashed
   * as it passes and dropped; the stream errors at EOF when the layer is not what its digests
   * say, and then so does this.
   */
  async apply(layer: TarSource): Promise<void> {
    const index = this.layers++;
    let hash: Hash | undefined;
    let chunks: Buffer[] | undefined;
    let current: { rel: string; held: Held } | undefined;
    await parseTarStream(await layer.openTar(), {
      header: (h) => {
        hash = undefined;
        chunks = undefined;
        current = undefined;
        const f = this.entry(h, index);
        if (f === undefined || h.type !== 'file') return;
        if (h.size > 0 && this.hashData) hash = createHash('sha256');
        if (this.capture.has(f.rel)) chunks = [];
        if (hash !== undefined || chunks !== undefined) current = f;
      },
      data: (chunk) => {
        hash?.update(chunk);
        chunks?.push(Buffer.from(chunk));
      },
      entryEnd: () => {
        if (current === undefined) return;
        const { rel, held } = current;
        // Set once its data is known; a later entry of this layer may have replaced it.
        if (this.nodes.get(rel) === held) {
          if (hash !== undefined)
            held.node = { ...held.node, digest: `sha256:${hash.digest('hex')}` as Digest };
          if (chunks !== undefined) held.content = Buffer.concat(chunks);
        }
        hash = undefined;
        chunks = undefined;
        current = undefined;
      },
    });
  }

  /** Apply one header; returns the node whose data follows, for a file. */
  private entry(h: TarHeader, layer: number): { rel: string; held: Held } | undefined {
    const rel = cleanEntryPath(h.path);
    if (rel === '') {
      if (h.type !== 'dir')
        throw new UnsafeEntryError(h.path, 'would change the type of the root directory');
      return undefined;
    }
    const parent = parentOf(rel);
    const base = rel.slice(parent === '' ? 0 : parent.length + 1);
    if (base.startsWith(WH_PREFIX)) {
      if (base === WH_OPAQUE) {
        this.hideLowerChildren(parent, layer);
        return undefined;
      }
      const name = base.slice(WH_PREFIX.length);
      if (name === '' || name === '.' || name === '..' || name.startsWith(WH_PREFIX))
        throw new UnsafeEntryError(h.path, 'whiteout names no entry inside its directory');
      this.hideLower(parent === '' ? name : `${parent}/${name}`, layer);
      return undefined;
    }
    let node: TreeNode;
    let data: Held['data'];
    if (h.type === 'link') {
      const target = cleanEntryPath(h.linkpath, h.path, 'hardlink target');
      const th = this.nodes.get(target);
      const t = th?.node;
      if (t === undefined)
        throw new UnsafeEntryError(
          h.path,
          `hardlink target ${JSON.stringify(target)} does not exist`,
        );
      if (t.type === 'dir')
        throw new UnsafeEntryError(
          h.path,
          `hardlink target ${JSON.stringify(target)} is a directory`,
        );
      if (target === rel) return undefined;
      // Which of two linked paths a tar names first is an accident of its order: both read as
      // the shared file, and only the size accounting tells them apart.
      node = { ...t, hardlink: true };
      data = th?.data;
    } else {
      node = {
        type: h.type,
        size: h.type === 'file' ? h.size : 0,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        link: h.type === 'symlink' ? h.linkpath : '',
        ...(h.type === 'file' && (h.size === 0 || this.hashData) ? { digest: EMPTY_DIGEST } : {}),
        ...(h.type === 'char' || h.type === 'block'
          ? { device: `${h.devmajor}:${h.devminor}` }
          : {}),
      };
    }
    this.ensureParent(h.path, parent, layer);
    const old = this.nodes.get(rel);
    if (old !== undefined && old.node.type === 'dir' && node.type !== 'dir') this.removeBelow(rel);
    if (h.type === 'file') data = { path: rel, layer };
    const held: Held = { node, layer, ...(data ? { data } : {}) };
    this.nodes.set(rel, held);
    this.childrenOf(parent).add(rel);
    return { rel, held };
  }

  /**
   * Fill the digests a comparison of `a` and `b` needs from the layers below them (`lower`,
   * read without hashing): of the files that are different nodes in the two trees but of one
   * size. Each layer holding such data is read again, hashing only those entries.
   */
  static async hashWhereNeeded(
    a: FileTree,
    b: FileTree,
    lower: readonly TarSource[],
  ): Promise<void> {
    const want = new Map<number, Map<string, Held[]>>();
    const need = (h: Held): void => {
      if (h.node.digest !== undefined || h.data === undefined) return;
      let byPath = want.get(h.data.layer);
      if (byPath === undefined) want.set(h.data.layer, (byPath = new Map()));
      let list = byPath.get(h.data.path);
      if (list === undefined) byPath.set(h.data.path, (list = []));
      list.push(h);
    };
    for (const [p, x] of a.nodes) {
      const y = b.nodes.get(p);
      if (y === undefined || y === x || x.node.type !== 'file' || y.node.type !== 'file') continue;
      if (x.node.size !== y.node.size) continue;
      need(x);
      need(y);
    }
    for (const [layer, byPath] of want) {
      const src = lower[layer];
      if (src === undefined) continue;
      let hash: Hash | undefined;
      let list: Held[] | undefined;
      await parseTarStream(await src.openTar(), {
        header: (h) => {
          list = h.type === 'file' ? byPath.get(cleanEntryPath(h.path)) : undefined;
          hash = list !== undefined ? createHash('sha256') : undefined;
        },
        data: (chunk) => hash?.update(chunk),
        entryEnd: () => {
          if (hash === undefined || list === undefined) return;
          const digest = `sha256:${hash.digest('hex')}` as Digest;
          for (const h of list) h.node = { ...h.node, digest };
          hash = undefined;
        },
      });
    }
  }

  private childrenOf(dir: string): Set<string> {
    let s = this.children.get(dir);
    if (s === undefined) this.children.set(dir, (s = new Set()));
    return s;
  }

  /** The parent must be a directory; a missing one is implied, as a flatten makes it. */
  private ensureParent(entry: string, parent: string, layer: number): void {
    if (parent === '') return;
    const p = this.nodes.get(parent);
    if (p !== undefined) {
      if (p.node.type !== 'dir')
        throw new UnsafeEntryError(
          entry,
          `parent ${JSON.stringify(parent)} is ${p.node.type === 'symlink' ? 'a symlink' : 'not a directory'}`,
        );
      return;
    }
    const grand = parentOf(parent);
    this.ensureParent(entry, grand, layer);
    this.nodes.set(parent, { node: impliedDir(), layer });
    this.childrenOf(grand).add(parent);
  }

  /** Hide what lower layers left at `rel`: all of it, or, under a directory this layer set, their part. */
  private hideLower(rel: string, layer: number): void {
    const h = this.nodes.get(rel);
    if (h === undefined) return;
    if (h.layer < layer) this.remove(rel);
    else if (h.node.type === 'dir') this.hideLowerChildren(rel, layer);
  }

  private hideLowerChildren(dir: string, layer: number): void {
    for (const c of [...(this.children.get(dir) ?? [])]) this.hideLower(c, layer);
  }

  private remove(rel: string): void {
    this.removeBelow(rel);
    this.nodes.delete(rel);
    this.children.get(parentOf(rel))?.delete(rel);
  }

  private removeBelow(rel: string): void {
    const kids = this.children.get(rel);
    if (kids === undefined) return;
    this.children.delete(rel);
    for (const c of kids) {
      this.removeBelow(c);
      this.nodes.delete(c);
    }
  }
}

/**
 * The flattened trees of two layer stacks. The layers they share (same diffIDs, from the bottom)
 * are read once, without hashing file data: what neither stack changes above them is one node in
 * both trees, equal without a digest. Only files both hold at one size, changed above on one
 * side, need the digest of the shared one, and only their layers are read again for it.
 */
export async function readTrees(
  a: readonly { diffId: Digest; tar: TarSource }[],
  b: readonly { diffId: Digest; tar: TarSource }[],
  capture: ReadonlySet<string> = new Set(),
): Promise<[FileTree, FileTree]> {
  let shared = 0;
  while (shared < a.length && shared < b.length && a[shared]?.diffId === b[shared]?.diffId)
    shared++;
  const base = new FileTree();
  base.capture = capture;
  base.hashData = false;
  for (const l of a.slice(0, shared)) await base.apply(l.tar);
  base.hashData = true;
  const ta = base.clone();
  for (const l of a.slice(shared)) await ta.apply(l.tar);
  const tb = base;
  for (const l of b.slice(shared)) await tb.apply(l.tar);
  await FileTree.hashWhereNeeded(
    ta,
    tb,
    a.slice(0, shared).map((l) => l.tar),
  );
  return [ta, tb];
}
