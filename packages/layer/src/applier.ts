import * as fs from 'node:fs';
import { StrataError, UnsafeEntryError } from '@strata/oci';
import { applyXattrs, makeNodes, makeNodesSync, Xattrs } from '@strata/tools';
import { PendingNodes, NodeToMake, nodesMade } from './device-nodes';
import { cleanEntryPath, ioError, splitParent } from './entry-path';
import { TarHeader } from './format';
import { TarSink } from './reader';
import type { UnpackStats } from './unpack';

const WH_PREFIX = '.wh.';
const WH_OPAQUE = '.wh..wh..opq';
const O_CREATE_FILE =
  fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** Which count of UnpackStats an entry of each type adds to. */
const COUNTED = {
  file: 'files',
  dir: 'dirs',
  symlink: 'symlinks',
  link: 'hardlinks',
  char: 'devices',
  block: 'devices',
  fifo: 'devices',
} as const satisfies Record<TarHeader['type'], keyof UnpackStats>;

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
export class LayerApplier implements TarSink {
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
  private readonly pendingNodes = new PendingNodes();
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
          break;
        }
        case 'dir':
          this.mkdir(rel, abs, h);
          break;
        case 'symlink':
          this.create(rel, () => fs.symlinkSync(h.linkpath, abs));
          fs.lchownSync(abs, h.uid, h.gid);
          fs.lutimesSync(abs, h.mtime, h.mtime);
          break;
        case 'link':
          this.hardlink(rel, abs, h);
          break;
        case 'char':
        case 'block':
        case 'fifo':
          this.reserveNode(rel, abs, h);
          break;
      }
    } catch (e) {
      throw ioError(h.path, e);
    }
    this.stats[COUNTED[h.type]]++;
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
    this.pendingNodes.forget(rel, dir);
    this.inLayer.delete(rel);
    if (!dir) return;
    const prefix = rel + '/';
    for (const k of this.dirOk) if (k.startsWith(prefix)) this.dirOk.delete(k);
    for (const k of this.dirSetgid.keys()) if (k.startsWith(prefix)) this.dirSetgid.delete(k);
    for (const k of this.pendingXattrs.keys())
      if (k.startsWith(prefix)) this.pendingXattrs.delete(k);
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

  /** A device node or FIFO: its name is reserved now, the node made later (PendingNodes). */
  private reserveNode(rel: string, abs: string, h: TarHeader): void {
    const fd = this.create(rel, () => fs.openSync(abs, O_CREATE_FILE, 0o600));
    try {
      this.pendingNodes.add(rel, h, fs.fstatSync(fd).ino);
    } finally {
      fs.closeSync(fd);
    }
  }

  private takeNodes(): NodeToMake[] {
    return this.pendingNodes.take(
      (rel) => this.abs(rel),
      (parent, entry) => this.checkDir(parent, entry),
    );
  }

  private makeNodesNow(): void {
    const nodes = this.takeNodes();
    try {
      makeNodesSync(nodes.map((n) => n.spec));
    } catch (e) {
      throw ioError(nodes[0]?.h.path ?? '?', e);
    }
    nodesMade(nodes);
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
    const nodeDirs = this.pendingNodes.parents();
    let nodes: NodeToMake[] = [];
    let making: Promise<void> | undefined;
    if (this.pendingNodes.size > 0) {
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
      nodesMade(nodes);
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
