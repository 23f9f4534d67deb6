import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  Compression,
  CorruptError,
  Digest,
  InvalidArgumentError,
  PlatformSelector,
  Role,
  StrataError,
  noSpaceAt,
} from '@strata/oci';
import {
  compressor,
  encodeTarHeader,
  TAR_END,
  tarPadding,
  TarHeader,
  unpackLayers,
} from '@strata/layer';
import { commitFile, Store } from '@strata/store';
import { interrupted, LayerEntry, mergeLayers, MergedTree, spillPath } from './merge';
import { resolveImage, ResolvedImage } from './resolve-image';
import { outputTempPattern, ownedScratch, sweepDead } from './owned-scratch';

export interface FlattenProgress {
  phase: 'index' | 'write';
  /** Uncompressed tar bytes read (index) or written (write) so far. */
  bytes: number;
  total?: number;
}

export interface FlattenOptions {
  /** Which image of a bundle to flatten (default 'rootfs'). */
  role?: Role;
  /** Of a multi-platform template, the platform's image. */
  platform?: PlatformSelector;
  /** Output compression; by default from the file name (.tar, .tar.gz/.tgz, .tar.zst/.tzst). */
  compression?: Compression;
  onProgress?: (p: FlattenProgress) => void;
  /** Directory for scratch files (the layers uncompressed); default: next to the output. */
  tmpDir?: string;
  /** Stops the flatten (an INTERRUPTED StrataError), which then removes its scratch files. */
  signal?: AbortSignal;
}

export interface FlattenResult {
  image: ResolvedImage;
  /** Entries in the flat tar. */
  entries: number;
  /** Size of the uncompressed flat tar. */
  tarBytes: number;
  /** sha256 of the uncompressed flat tar (its diffID, were it a layer). */
  diffId: Digest;
}

/** Compression implied by an output file name. */
export function compressionForPath(file: string): Compression {
  if (/\.(tar\.gz|tgz)$/.test(file)) return 'gzip';
  if (/\.(tar\.zst|tzst|tar\.zstd)$/.test(file)) return 'zstd';
  if (/\.tar$/.test(file)) return 'none';
  throw new InvalidArgumentError(
    `cannot tell the format of ${JSON.stringify(file)} from its name`,
    { hint: 'name it .tar, .tar.gz or .tar.zst' },
  );
}

const OUT_CHUNK = 1 << 20;

/**
 * Collects output into 1 MiB chunks, hashing, honouring the destination's backpressure; stops
 * (an INTERRUPTED StrataError) at the next chunk once `signal` aborts.
 */
class ChunkWriter {
  private buf = Buffer.allocUnsafe(OUT_CHUNK);
  private pos = 0;
  private readonly hash = createHash('sha256');
  bytes = 0;

  constructor(
    private readonly dest: Writable,
    private readonly onChunk?: (bytes: number) => void,
    private readonly signal?: AbortSignal,
  ) {}

  async put(b: Buffer): Promise<void> {
    let off = 0;
    while (off < b.length) {
      const n = Math.min(b.length - off, OUT_CHUNK - this.pos);
      b.copy(this.buf, this.pos, off, off + n);
      this.pos += n;
      off += n;
      if (this.pos === OUT_CHUNK) await this.flush();
    }
  }

  /** Copy `size` bytes of file `fd` from `position` on, read straight into the output buffer. */
  async copyFrom(fd: number, position: number, size: number, what: string): Promise<void> {
    let done = 0;
    while (done < size) {
      const want = Math.min(OUT_CHUNK - this.pos, size - done);
      const n = fs.readSync(fd, this.buf, this.pos, want, position + done);
      if (n === 0) throw new CorruptError(`${what}: short read`);
      this.pos += n;
      done += n;
      if (this.pos === OUT_CHUNK) await this.flush();
    }
  }

  async zeros(n: number): Promise<void> {
    if (n > 0) await this.put(Buffer.alloc(n));
  }

  async flush(): Promise<void> {
    if (this.signal?.aborted) throw interrupted();
    if (this.pos === 0) return;
    const out = this.pos === OUT_CHUNK ? this.buf : this.buf.subarray(0, this.pos);
    this.buf = Buffer.allocUnsafe(OUT_CHUNK);
    this.pos = 0;
    this.hash.update(out);
    this.bytes += out.length;
    this.onChunk?.(this.bytes);
    if (!this.dest.write(out)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          this.dest.off('error', onError);
          resolve();
        };
        const onError = (e: Error): void => {
          this.dest.off('drain', onDrain);
          reject(e);
        };
        this.dest.once('drain', onDrain);
        this.dest.once('error', onError);
      });
    }
  }

  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}` as Digest;
  }
}

interface Plan {
  /** For each output entry: the header to write, and where its body comes from. */
  items: { header: TarHeader; source?: LayerEntry }[];
  /**
   * The exact size of the tar `emit` writes: headers (PAX ones included), bodies, their padding
   * and the end blocks. It is the total of the write progress, which must not run past it.
   */
  tarBytes: number;
}

/** Turn the merged tree into headers, rewriting hardlink groups so each starts with its data. */
function plan(tree: MergedTree): Plan {
  const first = new Map<LayerEntry, string>();
  for (const e of tree.entries) if (!first.has(e.inode)) first.set(e.inode, e.rel);
  const items: Plan['items'] = [];
  for (const e of tree.entries) {
    const inode = e.inode;
    const lead = first.get(inode) as string;
    const h = inode.header;
    if (lead === e.rel) {
      const header: TarHeader = { ...h, path: h.type === 'dir' ? `${e.rel}/` : e.rel };
      if (h.type === 'file' && h.size > 0) {
        items.push({ header, source: inode });
      } else {
        items.push({ header: { ...header, size: 0 } });
      }
    } else {
      items.push({
        header: { ...h, path: e.rel, type: 'link', size: 0, linkpath: lead, xattrs: {} },
      });
    }
  }
  let tarBytes = TAR_END.length;
  for (const item of items) {
    // Encoded once more in emit: cheaper than holding every header block in memory.
    tarBytes += encodeTarHeader(item.header).length;
    if (item.source !== undefined)
      tarBytes += item.source.header.size + tarPadding(item.source.header.size);
  }
  return { items, tarBytes };
}

/** Write the planned entries, reading bodies from the layers' spill files at their offsets. */
async function emit(layerCount: number, p: Plan, w: ChunkWriter, scratch: string): Promise<void> {
  const fds = new Map<number, number>();
  try {
    for (let i = 0; i < layerCount; i++) fds.set(i, fs.openSync(spillPath(scratch, i), 'r'));
    for (const item of p.items) {
      await w.put(encodeTarHeader(item.header));
      const src = item.source;
      if (src === undefined) continue;
      const size = src.header.size;
      await w.copyFrom(
        fds.get(src.layer) as number,
        src.offset,
        size,
        `layer ${src.layer}: ${src.rel}`,
      );
      await w.zeros(tarPadding(size));
    }
    await w.put(TAR_END);
    await w.flush();
  } finally {
    for (const fd of fds.values()) fs.closeSync(fd);
  }
}

/**
 * Flatten an image's layer stack into one tar at `output` (written to a temp file, fsynced and
 * renamed into place). Two passes: the first decompresses every layer once, newest first,
 * verifying its digests, keeping the headers of what stays visible (see mergeLayers) and writing
 * its uncompressed tar to a scratch file; the second writes the visible entries sorted by path,
 * copying each body from its layer's scratch file. So each layer is decompressed once whatever
 * order its entries are in. Memory: the headers of the visible entries, plus a few MiB of
 * buffers; scratch disk: the layers' uncompressed size, next to the output unless `tmpDir` says
 * otherwise, removed however the flatten ends (`signal` stops it). The output is the same
 * bytes for the same image.
 */
export async function flattenToTar(
  store: Store,
  ref: string,
  output: string,
  opts: FlattenOptions = {},
): Promise<FlattenResult> {
  const compression = opts.compression ?? compressionForPath(output);
  const image = await resolveImage(store, ref, opts.role, opts.platform);
  const { onProgress, signal } = opts;
  if (signal?.aborted) throw interrupted();
  const done: number[] = [];
  const dir = path.dirname(path.resolve(output));
  const tmp = path.join(dir, `.${path.basename(output)}.${process.pid}.tmp`);
  const scratchDir = opts.tmpDir ?? dir;
  // Where a full disk would be: the scratch directory while the layers spill, then the output.
  let writing: { path: string; needed?: number } = { path: scratchDir };
  let scratch: string;
  try {
    // A killed flatten's scratch and partial output here are nobody's: they go first.
    await sweepDead(dir, outputTempPattern(path.basename(output)));
    scratch = await ownedScratch(scratchDir, '.strata-flatten-');
  } catch (e) {
    throw noSpaceAt(e, scratchDir);
  }
  let file: fs.WriteStream | undefined;
  try {
    const tree = await mergeLayers(
      image.layers,
      (pr) => {
        done[pr.layer] = pr.bytes;
        onProgress?.({ phase: 'index', bytes: done.reduce((a, b) => a + (b ?? 0), 0) });
      },
      scratch,
      signal,
    );
    const p = plan(tree);
    const total = p.tarBytes;
    writing = { path: dir, ...(compression === 'none' ? { needed: total } : {}) };
    file = fs.createWriteStream(tmp, { flags: 'w', mode: 0o644, highWaterMark: 1 << 20 });
    const fileDone = finished(file);
    fileDone.catch(() => undefined);
    let dest: Writable = file;
    let filterDone: Promise<void> = Promise.resolve();
    if (compression !== 'none') {
      const f = compressor(compression);
      f.stdout.pipe(file);
      f.stdout.on('error', (e) => file?.destroy(e));
      dest = f.stdin;
      filterDone = f.done;
      filterDone.catch(() => undefined);
    }
    const w = new ChunkWriter(
      dest,
      (bytes) => onProgress?.({ phase: 'write', bytes, total }),
      signal,
    );
    await emit(image.layers.length, p, w, scratch);
    dest.end();
    await filterDone;
    await fileDone;
    await commitFile(tmp, output);
    return {
      image,
      entries: p.items.length,
      tarBytes: w.bytes,
      diffId: w.digest(),
    };
  } catch (e) {
    file?.destroy();
    await fs.promises.rm(tmp, { force: true });
    throw noSpaceAt(e, writing.path, writing.needed);
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
}

export interface FlattenDirResult {
  image: ResolvedImage;
  entries: number;
}

/**
 * What flattenToDir refuses about `dir`, without writing anything: a caller that writes other
 * outputs too checks this first, so that a refused `dir` leaves none of them written. `what`
 * names it in messages (e.g. `--dir d`).
 */
export async function checkFlattenDir(dir: string, what = dir): Promise<void> {
  if (process.geteuid?.() !== 0) {
    throw new InvalidArgumentError('flattening into a directory needs root', {
      hint: 'run as root, or flatten to a tar with --rootfs',
    });
  }
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') throw new InvalidArgumentError(`${what} is not a directory`);
    throw e;
  }
  if (names.length > 0) throw new StrataError('ALREADY_EXISTS', `${what} is not empty`);
}

/**
 * Flatten into a directory by applying the layers base first with the secure unpacker (which
 * verifies every digest and refuses hostile entries). Needs root to keep owners and device
 * nodes. `dir` must not exist or be empty.
 */
export async function flattenToDir(
  store: Store,
  ref: string,
  dir: string,
  opts: {
    role?: Role;
    platform?: PlatformSelector;
    /** Compressed bytes of the layers unpacked so far (after each layer), of their total. */
    onProgress?: (bytes: number, total: number) => void;
    /** Stops the unpack (an INTERRUPTED StrataError), which then removes what it wrote. */
    signal?: AbortSignal;
  } = {},
): Promise<FlattenDirResult> {
  const image = await resolveImage(store, ref, opts.role, opts.platform);
  await checkFlattenDir(dir);
  // The first folder made (dir or a parent of it); undefined when dir was there, empty.
  const made = await fs.promises.mkdir(dir, { recursive: true });
  // The store's layers hand the unpack worker their blob files, whose digests it verifies.
  const total = image.layers.reduce((n, l) => n + l.layer.descriptor.size, 0);
  opts.onProgress?.(0, total);
  try {
    const stats = await unpackLayers(
      image.layers.map((l) => l.layer),
      dir,
      opts.onProgress && ((bytes) => opts.onProgress?.(bytes, total)),
      opts.signal,
    );
    return { image, entries: stats.reduce((a, s) => a + s.entries, 0) };
  } catch (e) {
    // A failed flatten leaves no half tree (set-uid files, symlinks, a refused entry's
    // neighbours) for someone to take as the image: dir goes back to how it was found, as a tar
    // output is only ever there whole.
    await removeWritten(dir, made);
    throw e;
  }
}

/** Undo a failed flattenToDir: remove what mkdir `made`, else empty `dir` (found empty). */
async function removeWritten(dir: string, made: string | undefined): Promise<void> {
  if (made !== undefined) {
    await fs.promises.rm(made, { recursive: true, force: true });
    return;
  }
  const names = await fs.promises.readdir(dir).catch(() => []);
  for (const n of names) await fs.promises.rm(path.join(dir, n), { recursive: true, force: true });
}
