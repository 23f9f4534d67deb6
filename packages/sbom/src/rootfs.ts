import { createHash } from 'node:crypto';
import * as path from 'node:path/posix';
import type { Readable } from 'node:stream';
import type { Descriptor, Digest } from '@strata/oci';
import { cleanEntryPath, parseTarStream } from '@strata/layer';

/** Anything whose uncompressed tar can be streamed: the core's Layer, verified at EOF. */
export interface TarSource {
  openTar(): Promise<Readable>;
}

/** A file or symlink of the flattened rootfs that an SBOM reads, and the layer that set it. */
export interface Captured {
  /** Index of the layer (0 = base) whose entry is the one the flattened tree holds. */
  layer: number;
  /** A file's data; undefined for a symlink. */
  data?: Buffer;
  /** A symlink's target. */
  link?: string;
}

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';

/**
 * The paths an SBOM needs: dpkg's status and per-package md5sums, each package's copyright
 * file (or its doc directory, which Debian lets be a symlink to another package's), and
 * os-release. Everything else in the layers streams past without being kept.
 */
export function wanted(rel: string): boolean {
  if (rel === 'var/lib/dpkg/status') return true;
  if (rel === 'etc/os-release' || rel === 'usr/lib/os-release') return true;
  if (rel.startsWith('var/lib/dpkg/info/'))
    return rel.endsWith('.md5sums') && !rel.slice(18).includes('/');
  if (rel.startsWith('usr/share/doc/')) {
    const rest = rel.slice(14);
    const slash = rest.indexOf('/');
    return slash < 0 || rest.slice(slash) === '/copyright';
  }
  return false;
}

const WANTED_DIRS = new Set([
  '',
  'etc',
  'usr',
  'usr/lib',
  'usr/share',
  'usr/share/doc',
  'var',
  'var/lib',
  'var/lib/dpkg',
  'var/lib/dpkg/info',
]);

/** Whether a wanted path can be below directory `rel`. */
function mayHoldWanted(rel: string): boolean {
  return WANTED_DIRS.has(rel) || (rel.startsWith('usr/share/doc/') && !rel.slice(14).includes('/'));
}

/**
 * The wanted files of a flattened layer stack, read as the layers stream by, never unpacked.
 * The OCI rules apply as a flatten would: a later entry replaces a path, `.wh.name` hides what
 * lower layers put at `name` and below, `.wh..wh..opq` hides what lower layers put in its
 * directory, and a file or symlink put over a directory hides what was below it.
 */
export class RootfsFiles {
  private readonly files = new Map<string, Captured>();
  /**
   * Copyright files that a later layer hid (a package it removed): the licence of a package
   * that only a lower layer's blob still holds.
   */
  private readonly hidden = new Map<string, Captured>();
  private layers = 0;

  /** The state after the layers applied so far, to be restored by `restore`. */
  save(): Buffer {
    const files = [...this.files].map(([rel, c]) =>
      c.data !== undefined
        ? [rel, c.layer, 'd', c.data.toString('base64')]
        : [rel, c.layer, 'l', c.link],
    );
    for (const [rel, c] of this.hidden) files.push([rel, c.layer, 'h', c.data?.toString('base64')]);
    return Buffer.from(JSON.stringify({ v: VIEW_VERSION, layers: this.layers, files }));
  }

  /**
   * The state `save` gave after `layers` layers, or undefined when `data` is not one (another
   * version, another depth, or damaged): the caller then reads the layers.
   */
  static restore(data: Buffer, layers: number): RootfsFiles | undefined {
    let doc: { v?: unknown; layers?: unknown; files?: unknown };
    try {
      doc = JSON.parse(data.toString('utf8')) as typeof doc;
    } catch {
      return undefined;
    }
    if (doc?.v !== VIEW_VERSION || doc.layers !== layers || !Array.isArray(doc.files))
      return undefined;
    const out = new RootfsFiles();
    out.layers = layers;
    for (const f of doc.files as unknown[]) {
      if (!Array.isArray(f) || f.length !== 4) return undefined;
      const [rel, layer, kind, value] = f as [unknown, unknown, unknown, unknown];
      if (typeof rel !== 'string' || typeof value !== 'string') return undefined;
      if (typeof layer !== 'number' || !Number.isInteger(layer) || layer < 0 || layer >= layers)
        return undefined;
      if (kind === 'd') out.files.set(rel, { layer, data: Buffer.from(value, 'base64') });
      else if (kind === 'h') out.hidden.set(rel, { layer, data: Buffer.from(value, 'base64') });
      else if (kind === 'l') out.files.set(rel, { layer, link: value });
      else return undefined;
    }
    return out;
  }

  get(rel: string): Captured | undefined {
    return this.files.get(rel);
  }

  /** The copyright file a later layer hid at `rel`, if one did. */
  hiddenFile(rel: string): Captured | undefined {
    return this.hidden.get(rel);
  }

  *entries(): IterableIterator<[string, Captured]> {
    yield* this.files;
  }

  /**
   * The file at `rel` after following symlinks (relative or absolute, inside the rootfs) in it
   * and its parents, as far as they were captured; undefined when there is none.
   */
  resolve(rel: string, hops = 0): Captured | undefined {
    if (hops > 16) return undefined;
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const c = this.files.get(prefix);
      if (c?.link === undefined) continue;
      const target = c.link.startsWith('/')
        ? c.link.slice(1)
        : path.join(path.dirname(prefix), c.link);
      const next = path.normalize([target, ...parts.slice(i)].join('/'));
      if (next.startsWith('..')) return undefined;
      return this.resolve(next, hops + 1);
    }
    const c = this.files.get(rel);
    return c?.data !== undefined ? c : undefined;
  }

  /** Stream one layer's tar through the project's tar reader and apply it. */
  async apply(layer: TarSource): Promise<void> {
    const index = this.layers++;
    let chunks: Buffer[] | undefined;
    let current: string | undefined;
    await parseTarStream(await layer.openTar(), {
      header: (h) => {
        chunks = undefined;
        current = undefined;
        const rel = cleanEntryPath(h.path);
        if (rel === '') return;
        const slash = rel.lastIndexOf('/');
        const dir = slash < 0 ? '' : rel.slice(0, slash);
        const base = rel.slice(slash + 1);
        if (base.startsWith(WH_PREFIX)) {
          if (base === WH_OPAQUE) this.hideBelow(dir, index);
          else {
            const hidden = dir === '' ? base.slice(4) : `${dir}/${base.slice(4)}`;
            this.hideAt(hidden, index);
          }
          return;
        }
        if (h.type !== 'dir') this.hideBelow(rel, index);
        if (!wanted(rel)) return;
        if (h.type === 'file') {
          chunks = [];
          current = rel;
          if (h.size === 0) this.files.set(rel, { layer: index, data: Buffer.alloc(0) });
        } else if (h.type === 'symlink') {
          this.files.set(rel, { layer: index, link: h.linkpath });
        } else if (h.type === 'link') {
          const target = this.files.get(cleanEntryPath(h.linkpath, h.path, 'hardlink target'));
          if (target?.data !== undefined) this.files.set(rel, { layer: index, data: target.data });
          else this.files.delete(rel);
        } else {
          this.files.delete(rel);
        }
      },
      // Body chunks are views into the parser's input: copied to keep.
      data: (chunk) => chunks?.push(Buffer.from(chunk)),
      entryEnd: () => {
        if (chunks !== undefined && current !== undefined)
          this.files.set(current, { layer: index, data: Buffer.concat(chunks) });
        chunks = undefined;
        current = undefined;
      },
    });
  }

  /** Hide what lower layers left at `rel` and below it. */
  private hideAt(rel: string, layer: number): void {
    const c = this.files.get(rel);
    if (c !== undefined && c.layer < layer) this.drop(rel, c);
    this.hideBelow(rel, layer);
  }

  private drop(rel: string, c: Captured): void {
    this.files.delete(rel);
    if (c.data !== undefined && rel.startsWith('usr/share/doc/') && rel.endsWith('/copyright'))
      this.hidden.set(rel, c);
  }

  /** Hide what lower layers left below directory `dir` ('' is the root). */
  private hideBelow(dir: string, layer: number): void {
    if (!mayHoldWanted(dir)) return;
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const [k, c] of this.files) {
      if (c.layer < layer && k.startsWith(prefix) && k !== dir) this.drop(k, c);
    }
  }
}

/** The version of what `RootfsFiles.save` writes; part of every view's key. */
const VIEW_VERSION = 2;

/**
 * Where the state of a stack read so far is kept and found again: a store's stack views. The
 * key is made over the digests of every layer up to `top`, so a view is found only for the same
 * layers in the same order.
 */
export interface RootfsViews {
  read(top: Digest, key: string): Promise<Buffer | undefined>;
  write(top: Digest, key: string, data: Buffer): Promise<void>;
}

/** The view key of each prefix of a stack: keys[i] covers layers 0..i. */
function chainKeys(layers: ReadonlyArray<{ descriptor: Descriptor }>): string[] {
  const h = createHash('sha256').update(`strata rootfs files v${VIEW_VERSION}\n`);
  return layers.map((l) => h.update(`${l.descriptor.digest}\n`).copy().digest('hex'));
}

/**
 * Read the wanted files of a layer stack (base first). With `views`, the longest prefix of the
 * stack that has a view is restored instead of read, and the state after the first layer (a
 * template's base, on which many builds start) and after the last are kept for the next read.
 */
export async function readRootfsFiles(
  layers: ReadonlyArray<TarSource & { descriptor?: Descriptor }>,
  views?: RootfsViews,
): Promise<RootfsFiles> {
  const described = layers.every((l) => l.descriptor !== undefined);
  const stack = layers as ReadonlyArray<TarSource & { descriptor: Descriptor }>;
  const keys = views && described ? chainKeys(stack) : [];
  let files = new RootfsFiles();
  let from = 0;
  for (let i = keys.length; i >= 1; i--) {
    const data = await views!.read(stack[i - 1]!.descriptor.digest, keys[i - 1]!);
    const restored = data && RootfsFiles.restore(data, i);
    if (restored) {
      [files, from] = [restored, i];
      break;
    }
  }
  for (let i = from; i < layers.length; i++) {
    await files.apply(layers[i]!);
    if (keys.length > 0 && (i === 0 || i === layers.length - 1)) {
      // A view is a cache: one that cannot be written is read again next time.
      await views!
        .write(stack[i]!.descriptor.digest, keys[i]!, files.save())
        .catch(() => undefined);
    }
  }
  return files;
}
