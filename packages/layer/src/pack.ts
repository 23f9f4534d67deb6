import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import { InvalidArgumentError, StrataError, UnsafeEntryError } from '@strata/oci';
import { readTreeXattrs, XattrMap, Xattrs } from '@strata/tools';
import { BLOCK, TarHeader } from './format';
import { encodeTarHeader } from './entry-writer';
import {
  ioError,
  listDir,
  major,
  minor,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from './pack-fs';

/** What the exclude hook sees: regular files, directories, everything else. */
export type EntryKind = 'file' | 'dir' | 'other';

/**
 * - 'keep': pack normally;
 * - 'drop': omit the entry (for a directory, its whole subtree);
 * - 'empty': write a zero-length regular file with the entry's metadata (a directory is kept
 *   without children, as with 'contents');
 * - 'contents': keep a directory entry but none of its children (same as 'keep' for non-dirs).
 */
export type ExcludeDecision = 'keep' | 'drop' | 'empty' | 'contents';

export interface PackOptions {
  /** Directory whose CONTENTS are packed (the root itself gets no entry). */
  root: string;
  /** Clamp mtimes to this (integer seconds): mtime = min(mtime, sourceDateEpoch). */
  sourceDateEpoch?: number;
  /** Called with the tree-relative path (no trailing '/') and kind of every entry. */
  exclude?: (relPath: string, kind: EntryKind) => ExcludeDecision;
  /**
   * Treat `root` as an overlayfs upper dir: 0/0 char devices become `.wh.<name>` whiteouts and
   * dirs with `trusted.overlay.opaque=y` get a `.wh..wh..opq` entry.
   */
  overlay?: boolean;
  /**
   * Extended attributes: true (default) reads them all with one getfattr spawn before the walk;
   * false packs none; a map supplies them (tree-relative path → xattrs).
   */
  xattrs?: boolean | XattrMap;
  /** Output chunk size in bytes (default 1 MiB). */
  bufferSize?: number;
}

const DEFAULT_BUFFER = 1 << 20;
/** Shared by headers without extended attributes; encodeTarHeader only reads it. */
const NO_XATTRS: Record<string, Buffer> = Object.freeze({});
const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

interface Frame {
  rel: string; // '' for root, else 'a/b/'
  names: string[];
  idx: number;
}

interface OpenFile {
  fd: number;
  rel: string;
  remaining: number;
  padding: number;
}

/**
 * Pack a directory tree into a deterministic tar stream (see PackOptions). Synchronous
 * filesystem calls fill a large output buffer; full buffers are pushed to the
 * consumer, honouring backpressure. Big files stream through the buffer in chunks, so memory
 * stays at a few buffers regardless of tree or file size.
 */
export function packTree(opts: PackOptions): Readable {
  return new TreePacker(opts);
}

class TreePacker extends Readable {
  private readonly root: string;
  private readonly epoch: number | undefined;
  private readonly exclude: PackOptions['exclude'];
  private readonly overlay: boolean;
  private readonly size: number;
  private xattrs: XattrMap | undefined;
  private xattrsLoading = false;

  private buf: Buffer;
  private pos = 0;
  private pushed = false;
  private done = false;
  private readonly stack: Frame[] = [];
  private file: OpenFile | undefined;
  private readonly links = new Map<string, string>();

  constructor(opts: PackOptions) {
    const size = opts.bufferSize ?? DEFAULT_BUFFER;
    super({ highWaterMark: size });
    if (
      opts.sourceDateEpoch !== undefined &&
      !(Number.isInteger(opts.sourceDateEpoch) && opts.sourceDateEpoch >= 0)
    ) {
      throw new InvalidArgumentError(
        `sourceDateEpoch must be a non-negative integer, got ${opts.sourceDateEpoch}`,
      );
    }
    if (size < 64 * 1024) throw new InvalidArgumentError('bufferSize must be at least 64 KiB');
    this.root = opts.root.replace(/\/+$/, '') || '/';
    this.epoch = opts.sourceDateEpoch;
    this.exclude = opts.exclude;
    this.overlay = opts.overlay ?? false;
    this.size = size;
    this.buf = Buffer.allocUnsafeSlow(size);
    if (opts.xattrs === false) this.xattrs = new Map();
    else if (opts.xattrs instanceof Map) this.xattrs = opts.xattrs;
  }

  override _read(): void {
    if (this.xattrs === undefined) {
      if (this.xattrsLoading) return;
      this.xattrsLoading = true;
      readTreeXattrs(this.root).then(
        (m) => {
          this.xattrs = m;
          this._read();
        },
        (e: unknown) => this.destroy(e as Error),
      );
      return;
    }
    try {
      if (
        this.stack.length === 0 &&
        !this.done &&
        this.pos === 0 &&
        this.file === undefined &&
        !this.started
      ) {
        this.started = true;
        this.stack.push({ rel: '', names: listDir(this.root, ''), idx: 0 });
      }
      this.pushed = false;
      while (!this.pushed) {
        if (this.done) {
          this.push(null);
          return;
        }
        this.step();
      }
    } catch (e) {
      this.closeFile();
      this.destroy(ioError('tree', e));
    }
  }

  private started = false;

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.closeFile();
    cb(err);
  }

  private closeFile(): void {
    if (this.file) {
      try {
        fs.closeSync(this.file.fd);
      } catch {
        // already closed
      }
      this.file = undefined;
    }
  }

  /**
   * Push the current buffer and start a fresh one. Buffers are not zero-filled: every byte up to
   * pos is written (headers, bodies, and padding zeroed by pad()), and zero-filling each 1 MiB
   * buffer would cost the main thread a pass over the whole tar.
   */
  private flush(): void {
    if (this.pos === 0) return;
    const out = this.pos === this.buf.length ? this.buf : this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafeSlow(this.size);
    this.pos = 0;
    this.pushed = true;
    this.push(out);
  }

  /** Make room for n contiguous bytes. */
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafeSlow(n);
  }

  /** Append n zero bytes (block padding, the end-of-archive blocks). */
  private pad(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }

  private step(): void {
    if (this.file) {
      this.copyFileChunk();
      return;
    }
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) {
      // end of archive: two zero blocks
      this.pad(2 * BLOCK);
      this.flush();
      this.done = true;
      return;
    }
    const name = top.names[top.idx++];
    if (name === undefined) {
      this.stack.pop();
      return;
    }
    this.entry(top.rel, name);
  }

  private clampTime(mtimeMs: number): number {
    const t = Math.floor(mtimeMs / 1000);
    return this.epoch !== undefined && t > this.epoch ? this.epoch : t;
  }

  private entry(dirRel: string, name: string): void {
    const rel = dirRel + name;
    const abs = `${this.root}/${rel}`;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch (e) {
      throw ioError(rel, e);
    }
    const fmt = st.mode & S_IFMT;
    if (fmt === S_IFSOCK) return;
    const isWhiteoutDev = this.overlay && fmt === S_IFCHR && st.rdev === 0;
    if (name.startsWith(WH_PREFIX)) {
      throw new UnsafeEntryError(rel, 'a real file named .wh.* would be read as an OCI whiteout');
    }
    const kind: EntryKind = fmt === S_IFREG ? 'file' : fmt === S_IFDIR ? 'dir' : 'other';
    let decision: ExcludeDecision = this.exclude ? this.exclude(rel, kind) : 'keep';
    if (decision === 'drop') return;
    if (kind === 'dir' && decision === 'empty') decision = 'contents';

    // One header object per entry, set field by field below: writeHeader encodes it at once, so
    // it is reused for a second header (an opaque directory's marker).
    const h: TarHeader = {
      path: rel,
      type: 'file',
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: 0,
      mtime: this.clampTime(st.mtimeMs),
      linkpath: '',
      devmajor: 0,
      devminor: 0,
      xattrs: NO_XATTRS,
    };

    if (isWhiteoutDev) {
      h.path = dirRel + WH_PREFIX + name;
      this.writeHeader(h);
      return;
    }

    const xattrs = this.entryXattrs(rel);

    if (kind === 'dir') {
      h.path = rel + '/';
      h.type = 'dir';
      h.xattrs = xattrs.attrs ?? NO_XATTRS;
      this.writeHeader(h);
      if (this.overlay && xattrs.opaque) {
        h.path = `${rel}/${WH_OPAQUE}`;
        h.type = 'file';
        h.mode = 0o644;
        h.xattrs = NO_XATTRS;
        this.writeHeader(h);
      }
      if (decision === 'keep') {
        this.stack.push({ rel: rel + '/', names: listDir(abs, rel + '/'), idx: 0 });
      }
      return;
    }

    if (st.nlink > 1 && decision !== 'empty') {
      const key = `${st.dev}:${st.ino}`;
      const first = this.links.get(key);
      if (first !== undefined) {
        h.type = 'link';
        h.linkpath = first;
        this.writeHeader(h);
        return;
      }
      this.links.set(key, rel);
    }

    h.xattrs = xattrs.attrs ?? NO_XATTRS;
    if (decision === 'empty') {
      this.writeHeader(h);
      return;
    }
    switch (fmt) {
      case S_IFREG: {
        let fd: number;
        try {
          fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
        } catch (e) {
          throw ioError(rel, e);
        }
        h.size = st.size;
        this.writeHeader(h);
        this.file = { fd, rel, remaining: st.size, padding: (BLOCK - (st.size % BLOCK)) % BLOCK };
        return;
      }
      case S_IFLNK:
        h.type = 'symlink';
        try {
          h.linkpath = fs.readlinkSync(abs);
        } catch (e) {
          throw ioError(rel, e);
        }
        this.writeHeader(h);
        return;
      case S_IFCHR:
      case S_IFBLK:
        h.type = fmt === S_IFCHR ? 'char' : 'block';
        h.devmajor = major(st.rdev);
        h.devminor = minor(st.rdev);
        this.writeHeader(h);
        return;
      case S_IFIFO:
        h.type = 'fifo';
        this.writeHeader(h);
        return;
      default:
        return;
    }
  }

  private entryXattrs(rel: string): { attrs: Xattrs | undefined; opaque: boolean } {
    const all = (this.xattrs as XattrMap).get(rel);
    if (all === undefined) return { attrs: undefined, opaque: false };
    let opaque = false;
    const attrs: Xattrs = {};
    let n = 0;
    for (const [k, v] of Object.entries(all)) {
      if (k.startsWith(OVERLAY_XATTR_PREFIX)) {
        if (k === 'trusted.overlay.opaque' && v.toString('latin1') === 'y') opaque = true;
        continue;
      }
      attrs[k] = v;
      n++;
    }
    return { attrs: n ? attrs : undefined, opaque };
  }

  private copyFileChunk(): void {
    const f = this.file as OpenFile;
    if (f.remaining > 0) {
      if (this.pos === this.buf.length) this.flush();
      const want = Math.min(f.remaining, this.buf.length - this.pos);
      let n: number;
      try {
        n = fs.readSync(f.fd, this.buf, this.pos, want, null);
      } catch (e) {
        throw ioError(f.rel, e);
      }
      if (n === 0) {
        throw new StrataError('CORRUPT', `pack: ${JSON.stringify(f.rel)} shrank while being read`);
      }
      this.pos += n;
      f.remaining -= n;
      if (this.pos === this.buf.length) this.flush();
      return;
    }
    this.pad(f.padding);
    this.closeFile();
  }

  /** Header block(s) of one entry, encoded as flatten's writer does (encodeTarHeader). */
  private writeHeader(h: TarHeader): void {
    const header = encodeTarHeader(h);
    this.ensure(header.length);
    header.copy(this.buf, this.pos);
    this.pos += header.length;
  }
}
