import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import {
  Compression,
  Digest,
  DigestMismatchError,
  InvalidArgumentError,
  StrataError,
  UnsafeEntryError,
} from '@strata/oci';
import { applyXattrs, makeNodes, makeNodesSync, NodeSpec, Xattrs } from '@strata/tools';
import { inflate, InflateResult } from './inflate';
import { TarHeader } from './format';
import { TarParser, TarSink } from './reader';

export interface UnpackOptions {
  /** Fail with DigestMismatchError unless the uncompressed stream hashes to this. */
  expectedDiffId?: Digest;
  /**
   * Fail with DigestMismatchError unless the compressed blob hashes to this. Pass it whenever the
   * source bypasses a verifying store stream (for example a file path).
   */
  expectedDigest?: Digest;
}

export interface UnpackStats {
  /** sha256 of the compressed blob, as computed while unpacking. */
  digest: Digest;
  /**
   * sha256 of the uncompressed tar, as computed while unpacking; undefined when unpackLayers()
   * found it in its DiffIdRecords and did not hash the tar again.
   */
  diffId?: Digest;
  /** Size of the uncompressed tar. */
  tarBytes: number;
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  devices: number;
  whiteouts: number;
}

/** One layer of a stack for unpackLayers(): opened lazily, in order, base first. */
export interface LayerSource {
  /** The compressed blob, as a stream or as the path of a file holding it. */
  open(): Readable | string | Promise<Readable | string>;
  compression: Compression;
  expectedDiffId?: Digest;
  expectedDigest?: Digest;
}

/**
 * Where diffIDs that were verified once are remembered (a Store is one). A blob whose digest is
 * checked while it is unpacked has the diffID recorded for it, so its tar need not be hashed again.
 */
export interface DiffIdRecords {
  knownDiffId(digest: Digest): Promise<Digest | undefined>;
  recordDiffId(digest: Digest, diffId: Digest): Promise<void>;
}

interface PendingNode {
  h: TarHeader;
  /** Inode of the placeholder file. */
  ino: number;
}

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';
const O_CREATE_FILE =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/**
 * Clean a tar path into a root-relative path without '.', empty or trailing components
 * ('' is the root itself). Absolute paths and '..' components are refused, never rewritten.
 */
export function cleanEntryPath(raw: string, entry: string = raw, what = 'path'): string {
  // Most paths are clean already: no leading '/' or '.', no trailing '/', no '//', no component
  // that starts with '.', no NUL. Those are returned without splitting them.
  const first = raw.charCodeAt(0);
  if (
    first !== 0x2f &&
    first !== 0x2e &&
    raw.charCodeAt(raw.length - 1) !== 0x2f &&
    !raw.includes('/.') &&
    !raw.includes('//') &&
    !raw.includes('\0')
  ) {
    return raw;
  }
  if (raw.startsWith('/')) throw new UnsafeEntryError(entry, `absolute ${what}`);
  if (raw.includes('\0')) throw new UnsafeEntryError(entry, `NUL byte in ${what}`);
  const parts = raw.split('/');
  let clean = true;
  for (const p of parts) {
    if (p === '..') throw new UnsafeEntryError(entry, `${what} contains a '..' component`);
    if (p === '.' || p === '') clean = false;
  }
  if (clean) return raw;
  return parts.filter((p) => p !== '' && p !== '.').join('/');
}

const EUID = process.geteuid?.() ?? -1;
const EGID = process.getegid?.() ?? -1;
/** The process umask, read without changing it (process.umask() with no argument is deprecated). */
const UMASK = readUmask();

function readUmask(): number | undefined {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync('/proc/self/status', 'latin1'));
    return m?.[1] !== undefined ? parseInt(m[1], 8) : undefined;
  } catch {
    return undefined;
  }
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

function ioError(entry: string, e: unknown): StrataError {
  if (e instanceof StrataError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new StrataError('UNAVAILABLE', `unpack: ${JSON.stringify(entry)}: ${msg}`, { cause: e });
}

function splitParent(rel: string): [string, string] {
  const i = rel.lastIndexOf('/');
  return i < 0 ? ['', rel] : [rel.slice(0, i), rel.slice(i + 1)];
}

/**
 * Applies one layer's entries to a directory, synchronously, as a TarSink.
 *
 * Safety model: a path is only ever written after each of its parent components has been checked
 * with lstat to be a real directory inside the root (a cache of checked directories is
 * invalidated whenever something is removed), and the final component is created with
 * O_EXCL|O_NOFOLLOW / mkdir / symlink / link, none of which follow a symlink there. Nothing is
 * resolved through a symlink, so neither a symlink planted by an earlier entry nor one already in
 * the target can redirect a write.
 */
class LayerApplier implements TarSink {
  readonly stats: Omit<UnpackStats, 'digest' | 'diffId' | 'tarBytes'> = {
    entries: 0,
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    devices: 0,
    whiteouts: 0,
  };
  /** Entries created by this layer: whiteouts never apply to them. */
  private readonly inLayer = new Set<string>();
  private readonly pendingXattrs = new Map<string, Xattrs>();
  /** Device nodes and FIFOs still to be made, each holding its name with an empty placeholder. */
  private readonly pendingNodes = new Map<string, PendingNode>();
  private readonly dirTimes = new Map<string, number>();
  private fd = -1;
  private cur: TarHeader | undefined;
  private curSkipChown = false;
  private curSkipChmod = false;
  /** Directories known to have (true) or lack (false) the setgid bit, which new files inherit. */
  private readonly dirSetgid = new Map<string, boolean>();

  constructor(
    private readonly root: string,
    /** Root-relative paths known to be real directories; shared across layers of one stack. */
    private readonly dirOk: Set<string>,
  ) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  header(h: TarHeader): void {
    this.stats.entries++;
    const rel = cleanEntryPath(h.path);
    this.cur = h;
    if (rel === '') {
      if (h.type !== 'dir')
        throw new UnsafeEntryError(h.path, 'would change the type of the root directory');
      try {
        fs.lchownSync(this.root, h.uid, h.gid);
        fs.chmodSync(this.root, h.mode);
      } catch (e) {
        throw ioError(h.path, e);
      }
      this.dirTimes.set('', h.mtime);
      this.setXattrs('', h);
      return;
    }
    const [parent, base] = splitParent(rel);
    if (base.startsWith(WH_PREFIX)) {
      this.whiteout(h, parent, base);
      return;
    }
    this.ensureDir(parent, h.path);
    const abs = this.abs(rel);
    try {
      switch (h.type) {
        case 'file': {
          // Create with the final mode when the umask cannot alter it and there are no special
          // bits (fchown would clear setuid/setgid), and skip fchown when the new file already
          // has the right owner; both save a syscall per file.
          const simple = UMASK !== undefined && (h.mode & ~0o777) === 0 && (h.mode & UMASK) === 0;
          this.curSkipChmod = simple;
          this.curSkipChown = h.uid === EUID && h.gid === EGID && !this.parentSetgid(parent);
          this.fd = this.create(rel, () =>
            fs.openSync(abs, O_CREATE_FILE, simple ? h.mode : 0o600),
          );
          this.stats.files++;
          break;
        }
        case 'dir':
          this.mkdir(rel, abs, h);
          this.stats.dirs++;
          break;
        case 'symlink':
          this.create(rel, () => fs.symlinkSync(h.linkpath, abs));
          fs.lchownSync(abs, h.uid, h.gid);
          fs.lutimesSync(abs, h.mtime, h.mtime);
          this.stats.symlinks++;
          break;
        case 'link':
          this.hardlink(rel, abs, h);
          this.stats.hardlinks++;
          break;
        case 'char':
        case 'block':
        case 'fifo':
          this.reserveNode(rel, abs, h);
          this.stats.devices++;
          break;
      }
    } catch (e) {
      throw ioError(h.path, e);
    }
    this.inLayer.add(rel);
    if (h.type !== 'link') this.setXattrs(rel, h);
  }

  data(chunk: Buffer): void {
    let off = 0;
    try {
      while (off < chunk.length) off += fs.writeSync(this.fd, chunk, off, chunk.length - off);
    } catch (e) {
      throw ioError(this.cur?.path ?? '?', e);
    }
  }

  entryEnd(): void {
    if (this.fd < 0) return;
    const h = this.cur as TarHeader;
    const fd = this.fd;
    this.fd = -1;
    try {
      if (!this.curSkipChown) fs.fchownSync(fd, h.uid, h.gid);
      if (!this.curSkipChmod) fs.fchmodSync(fd, h.mode); // after chown, which clears setuid/setgid
      fs.futimesSync(fd, h.mtime, h.mtime);
    } catch (e) {
      throw ioError(h.path, e);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Release resources after a failure. */
  abort(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // ignore
      }
      this.fd = -1;
    }
  }

  private parentSetgid(rel: string): boolean {
    let v = this.dirSetgid.get(rel);
    if (v === undefined) {
      v = (fs.lstatSync(this.abs(rel)).mode & 0o2000) !== 0;
      this.dirSetgid.set(rel, v);
    }
    return v;
  }

  private setXattrs(rel: string, h: TarHeader): void {
    for (const _k in h.xattrs) {
      this.pendingXattrs.set(rel, h.xattrs);
      return;
    }
  }

  /**
   * Make sure `rel` is a real directory inside the root, creating missing components (0755).
   * A symlink or non-directory on the way is refused.
   */
  private ensureDir(rel: string, entry: string): void {
    if (rel === '' || this.dirOk.has(rel)) return;
    const [parent] = splitParent(rel);
    this.ensureDir(parent, entry);
    const abs = this.abs(rel);
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) {
      try {
        fs.mkdirSync(abs, 0o755);
      } catch (e) {
        throw ioError(entry, e);
      }
      this.inLayer.add(rel);
      this.dirSetgid.set(rel, false);
    } else if (st.isSymbolicLink()) {
      throw new UnsafeEntryError(entry, `parent ${JSON.stringify(rel)} is a symlink`);
    } else if (!st.isDirectory()) {
      throw new UnsafeEntryError(entry, `parent ${JSON.stringify(rel)} is not a directory`);
    }
    this.dirOk.add(rel);
  }

  /** Like ensureDir but never creates: false if (part of) the path does not exist. */
  private checkDir(rel: string, entry: string): boolean {
    if (rel === '' || this.dirOk.has(rel)) return true;
    const [parent] = splitParent(rel);
    if (!this.checkDir(parent, entry)) return false;
    const st = fs.lstatSync(this.abs(rel), { throwIfNoEntry: false });
    if (st === undefined) return false;
    if (st.isSymbolicLink())
      throw new UnsafeEntryError(entry, `parent ${JSON.stringify(rel)} is a symlink`);
    if (!st.isDirectory())
      throw new UnsafeEntryError(entry, `parent ${JSON.stringify(rel)} is not a directory`);
    this.dirOk.add(rel);
    return true;
  }

  /** Run `make` (which fails with EEXIST if the path exists); on EEXIST remove the old entry once. */
  private create<T>(rel: string, make: () => T): T {
    try {
      return make();
    } catch (e) {
      if (errno(e) !== 'EEXIST' && !(e instanceof StrataError)) throw e;
      const st = fs.lstatSync(this.abs(rel), { throwIfNoEntry: false });
      if (st === undefined) throw e;
      this.remove(rel, st);
      return make();
    }
  }

  private remove(rel: string, st: fs.Stats): void {
    const abs = this.abs(rel);
    if (st.isDirectory()) {
      fs.rmSync(abs, { recursive: true, force: true });
      this.forget(rel, true);
    } else {
      fs.unlinkSync(abs);
      this.forget(rel, false);
    }
  }

  private forget(rel: string, dir: boolean): void {
    this.dirOk.delete(rel);
    this.dirSetgid.delete(rel);
    this.pendingXattrs.delete(rel);
    this.pendingNodes.delete(rel);
    this.inLayer.delete(rel);
    if (!dir) return;
    const prefix = rel + '/';
    for (const k of this.dirOk) if (k.startsWith(prefix)) this.dirOk.delete(k);
    for (const k of this.dirSetgid.keys()) if (k.startsWith(prefix)) this.dirSetgid.delete(k);
    for (const k of this.pendingXattrs.keys())
      if (k.startsWith(prefix)) this.pendingXattrs.delete(k);
    for (const k of this.pendingNodes.keys()) if (k.startsWith(prefix)) this.pendingNodes.delete(k);
    for (const k of this.inLayer) if (k.startsWith(prefix)) this.inLayer.delete(k);
  }

  private mkdir(rel: string, abs: string, h: TarHeader): void {
    try {
      fs.mkdirSync(abs, 0o700);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      const st = fs.lstatSync(abs);
      if (!st.isDirectory()) {
        this.remove(rel, st);
        fs.mkdirSync(abs, 0o700);
      }
      // dir over dir: merge, only the metadata changes
    }
    this.dirOk.add(rel);
    fs.lchownSync(abs, h.uid, h.gid);
    fs.chmodSync(abs, h.mode); // abs is a verified real directory
    this.dirSetgid.set(rel, (h.mode & 0o2000) !== 0);
    this.dirTimes.set(rel, h.mtime);
  }

  private hardlink(rel: string, abs: string, h: TarHeader): void {
    const target = cleanEntryPath(h.linkpath, h.path, 'hardlink target');
    if (target === '') throw new UnsafeEntryError(h.path, 'hardlink to the root directory');
    const [tparent] = splitParent(target);
    if (!this.checkDir(tparent, h.path)) {
      throw new UnsafeEntryError(
        h.path,
        `hardlink target ${JSON.stringify(h.linkpath)} does not exist`,
      );
    }
    const tabs = this.abs(target);
    const tst = fs.lstatSync(tabs, { throwIfNoEntry: false });
    if (tst === undefined)
      throw new UnsafeEntryError(
        h.path,
        `hardlink target ${JSON.stringify(h.linkpath)} does not exist`,
      );
    if (tst.isDirectory())
      throw new UnsafeEntryError(
        h.path,
        `hardlink target ${JSON.stringify(h.linkpath)} is a directory`,
      );
    if (target === rel) return;
    if (this.pendingNodes.has(target)) this.makeNodesNow(); // link to the node, not its placeholder
    // link(2) does not follow a symlink in its final component, and the parents were checked.
    this.create(rel, () => fs.linkSync(tabs, abs));
  }

  /**
   * Device nodes and FIFOs need a spawned tool, and spawnSync costs tens of milliseconds per
   * node in a large process; so the name is reserved now with an empty placeholder (created like
   * any file, O_EXCL|O_NOFOLLOW) and the nodes are made in one batch by finish().
   */
  private reserveNode(rel: string, abs: string, h: TarHeader): void {
    const fd = this.create(rel, () => fs.openSync(abs, O_CREATE_FILE, 0o600));
    try {
      this.pendingNodes.set(rel, { h, ino: fs.fstatSync(fd).ino });
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Swap the pending placeholders for node specs: each placeholder still there (its parents
   * re-checked to be real directories, the inode the one we created) is removed, and the node
   * is to be made at its name.
   */
  private takeNodes(): { spec: NodeSpec; h: TarHeader }[] {
    const out: { spec: NodeSpec; h: TarHeader }[] = [];
    for (const [rel, { h, ino }] of this.pendingNodes) {
      const [parent] = splitParent(rel);
      if (!this.checkDir(parent, h.path)) continue;
      const abs = this.abs(rel);
      const st = fs.lstatSync(abs, { throwIfNoEntry: false });
      if (st === undefined || !st.isFile() || st.ino !== ino) continue;
      fs.unlinkSync(abs);
      const kind = h.type as NodeSpec['kind'];
      out.push({ spec: { path: abs, kind, major: h.devmajor, minor: h.devminor }, h });
    }
    this.pendingNodes.clear();
    return out;
  }

  private nodesMade(nodes: { spec: NodeSpec; h: TarHeader }[]): void {
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

  private makeNodesNow(): void {
    const nodes = this.takeNodes();
    try {
      makeNodesSync(nodes.map((n) => n.spec));
    } catch (e) {
      throw ioError(nodes[0]?.h.path ?? '?', e);
    }
    this.nodesMade(nodes);
  }

  private whiteout(h: TarHeader, parent: string, base: string): void {
    this.stats.whiteouts++;
    if (!this.checkDir(parent, h.path)) return; // nothing below to hide
    if (base === WH_OPAQUE) {
      this.clearLower(parent);
      return;
    }
    const name = base.slice(WH_PREFIX.length);
    if (name === '' || name === '.' || name === '..') {
      throw new UnsafeEntryError(h.path, 'whiteout names no entry inside its directory');
    }
    const rel = parent === '' ? name : `${parent}/${name}`;
    if (this.inLayer.has(rel)) return; // whiteouts only hide lower layers
    const st = fs.lstatSync(this.abs(rel), { throwIfNoEntry: false });
    if (st === undefined) return;
    try {
      this.remove(rel, st);
    } catch (e) {
      throw ioError(h.path, e);
    }
  }

  /** Opaque whiteout: remove everything below `dir` that this layer did not create. */
  private clearLower(dir: string): void {
    const abs = this.abs(dir);
    for (const name of fs.readdirSync(abs)) {
      const rel = dir === '' ? name : `${dir}/${name}`;
      const st = fs.lstatSync(`${abs}/${name}`);
      if (!this.inLayer.has(rel)) this.remove(rel, st);
      else if (st.isDirectory()) this.clearLower(rel);
    }
  }

  /**
   * Deferred work: device nodes (one spawn), xattrs (one setfattr spawn), directory mtimes. The
   * spawned tool makes the nodes while the main thread sets the times of the directories that
   * hold none; the directories that do get theirs last.
   */
  async finish(): Promise<void> {
    const nodeDirs = new Set<string>();
    let nodes: { spec: NodeSpec; h: TarHeader }[] = [];
    let making: Promise<void> | undefined;
    if (this.pendingNodes.size > 0) {
      for (const rel of this.pendingNodes.keys()) nodeDirs.add(splitParent(rel)[0]);
      nodes = this.takeNodes();
      making = makeNodes(nodes.map((n) => n.spec));
      making.catch(() => undefined); // awaited below, after the directory times
    }
    this.setDirTimes((rel) => !nodeDirs.has(rel));
    if (making !== undefined) {
      try {
        await making;
      } catch (e) {
        throw ioError(nodes[0]?.h.path ?? '?', e);
      }
      this.nodesMade(nodes);
    }
    const entries: [string, Xattrs][] = [];
    for (const [rel, x] of this.pendingXattrs) {
      const [parent] = splitParent(rel);
      if (rel !== '' && !this.checkDir(parent, rel)) continue;
      entries.push([rel, x]);
    }
    await applyXattrs(this.root, entries);
    this.setDirTimes((rel) => nodeDirs.has(rel));
  }

  private setDirTimes(which: (rel: string) => boolean): void {
    for (const [rel, t] of this.dirTimes) {
      if (!which(rel)) continue;
      if (rel !== '' && !this.dirOk.has(rel)) continue; // removed or replaced later
      try {
        fs.lutimesSync(this.abs(rel), t, t);
      } catch (e) {
        throw ioError(rel, e);
      }
    }
  }
}

async function openRoot(targetDir: string): Promise<string> {
  let root: string;
  try {
    root = await fs.promises.realpath(targetDir);
  } catch (e) {
    throw new InvalidArgumentError(`unpack target ${JSON.stringify(targetDir)} does not exist`, {
      cause: e,
    });
  }
  const st = await fs.promises.stat(root);
  if (!st.isDirectory())
    throw new InvalidArgumentError(`unpack target ${JSON.stringify(targetDir)} is not a directory`);
  return root;
}

async function applyLayer(
  source: Readable | string,
  compression: Compression,
  root: string,
  dirOk: Set<string>,
  opts: UnpackOptions & { hashDiffId: boolean },
): Promise<UnpackStats> {
  const applier = new LayerApplier(root, dirOk);
  const parser = new TarParser(applier);
  let r: InflateResult;
  try {
    // An expected diffID is always checked.
    r = await inflate(source, compression, (chunk) => parser.write(chunk), {
      diffId: opts.hashDiffId || opts.expectedDiffId !== undefined,
    });
    parser.end();
  } catch (e) {
    applier.abort();
    throw e;
  }
  if (opts.expectedDigest !== undefined && opts.expectedDigest !== r.blobDigest) {
    throw new DigestMismatchError(opts.expectedDigest, r.blobDigest, 'layer blob');
  }
  if (opts.expectedDiffId !== undefined && opts.expectedDiffId !== r.diffId) {
    throw new DigestMismatchError(opts.expectedDiffId, r.diffId ?? 'none', 'layer diffID');
  }
  await applier.finish();
  return {
    digest: r.blobDigest,
    ...(r.diffId ? { diffId: r.diffId } : {}),
    tarBytes: r.size,
    ...applier.stats,
  };
}

/**
 * Apply one layer (compressed as `compression`) onto `targetDir`, honouring OCI whiteouts and
 * refusing unsafe entries. `blob` is a stream of the compressed bytes or the path of a file
 * holding them (faster: read directly by the decompression worker). The blob digest and the
 * diffID are computed while unpacking and checked against `expectedDigest` / `expectedDiffId`; a
 * mismatch throws DigestMismatchError (the target is then partially written: unpack into a
 * scratch directory that you discard on failure).
 */
export async function unpackLayer(
  blob: Readable | string,
  compression: Compression,
  targetDir: string,
  opts: UnpackOptions = {},
): Promise<UnpackStats> {
  const root = await openRoot(targetDir);
  return applyLayer(blob, compression, root, new Set(), { ...opts, hashDiffId: true });
}

/**
 * Apply a stack of layers, base first, into `targetDir`. Layers are opened one at a time. With
 * `diffIds`, a layer whose blob digest is checked and whose expected diffID is the one recorded
 * for that blob is not hashed a second time; every diffID computed for a checked blob is recorded.
 */
export async function unpackLayers(
  layers: Iterable<LayerSource>,
  targetDir: string,
  opts: { diffIds?: DiffIdRecords } = {},
): Promise<UnpackStats[]> {
  const root = await openRoot(targetDir);
  const dirOk = new Set<string>();
  const out: UnpackStats[] = [];
  const records = opts.diffIds;
  for (const l of layers) {
    const { expectedDigest, expectedDiffId } = l;
    const known =
      records !== undefined &&
      expectedDigest !== undefined &&
      expectedDiffId !== undefined &&
      (await records.knownDiffId(expectedDigest)) === expectedDiffId;
    const blob = await l.open();
    const stats = await applyLayer(blob, l.compression, root, dirOk, {
      expectedDigest,
      ...(known ? {} : { expectedDiffId }),
      hashDiffId: !known,
    });
    if (records && expectedDigest !== undefined && stats.diffId !== undefined) {
      await records.recordDiffId(expectedDigest, stats.diffId);
    }
    out.push(stats);
  }
  return out;
}
