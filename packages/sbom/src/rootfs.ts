import * as path from 'node:path/posix';
import type { Readable } from 'node:stream';
import { cleanEntryPath, TarParser } from '@strata/layer';

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
  private layers = 0;

  get(rel: string): Captured | undefined {
    return this.files.get(rel);
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
    const parser = new TarParser({
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
    const tar = await layer.openTar();
    try {
      for await (const c of tar) parser.write(c as Buffer);
    } finally {
      tar.destroy();
    }
    parser.end();
  }

  /** Hide what lower layers left at `rel` and below it. */
  private hideAt(rel: string, layer: number): void {
    const c = this.files.get(rel);
    if (c !== undefined && c.layer < layer) this.files.delete(rel);
    this.hideBelow(rel, layer);
  }

  /** Hide what lower layers left below directory `dir` ('' is the root). */
  private hideBelow(dir: string, layer: number): void {
    if (!mayHoldWanted(dir)) return;
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const [k, c] of this.files) {
      if (c.layer < layer && k.startsWith(prefix) && k !== dir) this.files.delete(k);
    }
  }
}

/** Read the wanted files of a layer stack (base first). */
export async function readRootfsFiles(layers: readonly TarSource[]): Promise<RootfsFiles> {
  const files = new RootfsFiles();
  for (const l of layers) await files.apply(l);
  return files;
}
