/** Tree snapshots and comparison, and the default exclusions as the spec states them. */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runOk } from './processes';
import { sha256File } from './fixtures';

// ---------------------------------------------------------------------------------------------
// Tree snapshots and comparison

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';

export interface TreeEntry {
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (st_mode & 07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only. */
  size?: number;
  sha256?: string;
  /** Symlinks only. */
  target?: string;
  /** Device nodes only (st_rdev). */
  rdev?: number;
  /** Other names of the same inode inside the compared tree, sorted; absent when none. */
  links?: string[];
  /** xattr name → base64 value; absent when none. */
  xattrs?: Record<string, string>;
}

/** Tree-relative path ('' is the root; no leading './') → entry. */
export type Tree = Map<string, TreeEntry>;

function typeOf(st: fs.Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'socket';
}

/** Undo getfattr's `\ooo` escapes, which stand for raw bytes. */
function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (
      c === 0x5c &&
      i + 3 < raw.length + 0 &&
      /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString())
    ) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString(), 8));
      i += 3;
    } else if (c === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Every xattr of every inode under root, as `getfattr -R -P -h -d -m - -e base64` reports it. */
export async function readTreeXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const r = await runOk('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '.'], {
    cwd: root,
  });
  const map = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line === '') {
      cur = undefined;
    } else if (line.startsWith('# file: ')) {
      let rel = unescapeGetfattr(line.slice('# file: '.length));
      rel = rel === '.' ? '' : rel.replace(/^\.\//, '');
      cur = {};
      map.set(rel, cur);
    } else if (cur) {
      const eq = line.indexOf('=');
      const name = unescapeGetfattr(eq < 0 ? line : line.slice(0, eq));
      const v = eq < 0 ? '' : line.slice(eq + 1);
      cur[name] = v.startsWith('0s')
        ? v.slice(2)
        : Buffer.from(v.replace(/^"|"$/g, '')).toString('base64');
    }
  }
  return map;
}

/**
 * Snapshot a tree: type, mode, owner, size and sha256 of content, symlink target, device number,
 * hardlink grouping and xattrs of every entry, the root included.
 */
export async function snapshotTree(root: string): Promise<Tree> {
  const tree: Tree = new Map();
  const inodes = new Map<string, string[]>();
  const walk = (rel: string) => {
    const abs = rel === '' ? root : path.join(root, rel);
    const st = fs.lstatSync(abs);
    const e: TreeEntry = { type: typeOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (e.type === 'file') {
      e.size = st.size;
      e.sha256 = sha256File(abs);
    } else if (e.type === 'symlink') {
      e.target = fs.readlinkSync(abs);
    } else if (e.type === 'char' || e.type === 'block') {
      e.rdev = st.rdev;
    }
    if (e.type !== 'dir' && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      const group = inodes.get(key) ?? [];
      group.push(rel);
      inodes.set(key, group);
    }
    tree.set(rel, e);
    if (e.type === 'dir') {
      for (const name of fs.readdirSync(abs).sort()) walk(rel === '' ? name : `${rel}/${name}`);
    }
  };
  walk('');
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    for (const p of group) tree.get(p)!.links = group.filter((q) => q !== p).sort();
  }
  for (const [rel, attrs] of await readTreeXattrs(root)) {
    const e = tree.get(rel);
    if (e && Object.keys(attrs).length > 0) e.xattrs = attrs;
  }
  return tree;
}

/** Recompute hardlink groups after paths have been removed from a tree. */
function pruneLinks(tree: Tree): void {
  for (const e of tree.values()) {
    if (!e.links) continue;
    const kept = e.links.filter((l) => tree.has(l));
    if (kept.length > 0) e.links = kept;
    else delete e.links;
  }
}

/** Describe every difference between two trees (at most `limit`), as readable lines. */
export function diffTrees(expected: Tree, actual: Tree, limit = 60): string[] {
  const out: string[] = [];
  const fmt = (v: unknown) =>
    typeof v === 'number' ? `${v} (0o${v.toString(8)})` : JSON.stringify(v);
  const paths = new Set([...expected.keys(), ...actual.keys()]);
  for (const p of [...paths].sort()) {
    if (out.length >= limit) {
      out.push('…');
      break;
    }
    const a = expected.get(p);
    const b = actual.get(p);
    const name = p === '' ? '/' : p;
    if (!a) {
      out.push(`${name}: unexpected ${b!.type}`);
      continue;
    }
    if (!b) {
      out.push(`${name}: missing ${a.type}`);
      continue;
    }
    const keys: (keyof TreeEntry)[] = [
      'type',
      'mode',
      'uid',
      'gid',
      'size',
      'sha256',
      'target',
      'rdev',
    ];
    for (const k of keys) {
      if (a[k] !== b[k]) out.push(`${name}: ${k} expected ${fmt(a[k])}, got ${fmt(b[k])}`);
    }
    const la = JSON.stringify(a.links ?? []);
    const lb = JSON.stringify(b.links ?? []);
    if (la !== lb) out.push(`${name}: hardlinks expected ${la}, got ${lb}`);
    const xa = JSON.stringify(sortKeys(a.xattrs ?? {}));
    const xb = JSON.stringify(sortKeys(b.xattrs ?? {}));
    if (xa !== xb) out.push(`${name}: xattrs expected ${xa}, got ${xb}`);
  }
  return out;
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([x], [y]) => (x < y ? -1 : 1)));
}

// ---------------------------------------------------------------------------------------------
// Default exclusions, as the spec states them

export type ExclusionAction = 'drop' | 'empty' | 'contents';

export interface ExpectedExclusion {
  pattern: string;
  action: ExclusionAction;
  /** Folders at and under a match stay (packages own them); only what is not a folder goes. */
  keepDirs?: true;
}

/** The default exclusions of issue 2. 'contents' drops what is under a directory, not the dir. */
export const DEFAULT_EXCLUSIONS: readonly ExpectedExclusion[] = [
  { pattern: 'etc/apt/sources.list', action: 'drop' },
  { pattern: 'etc/apt/sources.list.d/*', action: 'drop' },
  { pattern: 'etc/apt/apt.conf.d/*proxy*', action: 'drop' },
  { pattern: 'etc/apt/auth.conf*', action: 'drop', keepDirs: true },
  { pattern: 'etc/resolv.conf', action: 'drop' },
  { pattern: 'etc/hosts', action: 'drop' },
  { pattern: 'etc/hostname', action: 'drop' },
  { pattern: 'var/lib/apt/lists/*', action: 'drop', keepDirs: true },
  { pattern: 'var/cache/apt/*', action: 'drop', keepDirs: true },
  { pattern: 'etc/ssh/ssh_host_*', action: 'drop' },
  { pattern: 'etc/machine-id', action: 'empty' },
  { pattern: 'var/lib/dbus/machine-id', action: 'drop' },
  { pattern: 'var/log/*', action: 'contents', keepDirs: true },
  { pattern: 'tmp/*', action: 'contents', keepDirs: true },
  { pattern: 'run/*', action: 'contents', keepDirs: true },
];

/** A shell-style glob for one path: `*` and `?` never cross '/', and do match leading dots. */
export function globRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * What a template made from `input` must contain: every path that a drop/contents pattern matches
 * (or that lies under one that does) is gone; an 'empty' match becomes an empty regular file with
 * its mode, owner and xattrs kept. Returns a new tree.
 */
export function applyExclusions(input: Tree, exclusions: readonly ExpectedExclusion[]): Tree {
  const drops = exclusions
    .filter((x) => x.action !== 'empty')
    .map((x) => ({ re: globRegExp(x.pattern), keepDirs: x.keepDirs === true }));
  const empties = exclusions.filter((x) => x.action === 'empty').map((x) => globRegExp(x.pattern));
  const out: Tree = new Map();
  for (const [p, e] of input) {
    const parts = p.split('/');
    let dropped = false;
    for (let i = 1; i <= parts.length && !dropped; i++) {
      const prefix = parts.slice(0, i).join('/');
      const rule = p === '' ? undefined : drops.find((d) => d.re.test(prefix));
      if (rule && !(rule.keepDirs && e.type === 'dir')) dropped = true;
      if (rule) break;
    }
    if (dropped) continue;
    if (p !== '' && empties.some((re) => re.test(p))) {
      const { links: _links, target: _target, rdev: _rdev, ...rest } = e;
      out.set(p, { ...rest, type: 'file', size: 0, sha256: EMPTY_SHA256 });
    } else {
      out.set(p, { ...e });
    }
  }
  pruneLinks(out);
  return out;
}

/**
 * A new build context under `parent`: its Stratafile and `files` (by path in the context; their
 * directories are made).
 */
export function buildContext(
  parent: string,
  stratafile: string,
  files: Record<string, string> = {},
): string {
  const dir = fs.mkdtempSync(path.join(parent, 'ctx-'));
  fs.writeFileSync(path.join(dir, 'Stratafile'), stratafile);
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}
