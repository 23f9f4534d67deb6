import * as fs from 'node:fs';
import * as path from 'node:path';
import { readXattrs, readTreeXattrs, removeXattr, XattrMap, Xattrs } from '@strata/tools';
import { DEFAULT_EXCLUSIONS, globToRegExp } from '@strata/template';
import type { ExclusionRule } from '@strata/template';

const DEVICE_IDENTITY = ['etc/ssh/ssh_host_*', 'etc/machine-id', 'var/lib/dbus/machine-id'];

/** A rule of a step's layer; `files` limits it to files, so that the directories stay. */
type StepRule = ExclusionRule & { files?: boolean };

/** The rules that drop `patterns` for one `reason`. */
const drop = (reason: string, ...patterns: string[]): StepRule[] =>
  patterns.map((pattern) => ({ pattern, reason, action: 'drop' }));
const dropFiles = (reason: string, pattern: string): StepRule => ({
  pattern,
  reason,
  action: 'drop',
  files: true,
});

/**
 * What never belongs in a step's layer: apt's lists and caches, logs, `*-old` backups, lock
 * files, and per-device identity (ssh host keys, machine ids). Applied to the overlay upper
 * directory itself, so the snapshot that later steps build on equals the layer.
 */
export const STEP_EXCLUSIONS: readonly StepRule[] = [
  dropFiles('apt indices (files)', 'var/lib/apt/lists/**'),
  dropFiles('apt package cache (files)', 'var/cache/apt/**'),
  dropFiles('logs written by the step (files)', 'var/log/**'),
  ...drop('dpkg backup files', 'var/lib/dpkg/*-old'),
  ...drop('debconf backup files', 'var/cache/debconf/*-old'),
  ...drop(
    'dpkg lock',
    'var/lib/dpkg/lock',
    'var/lib/dpkg/lock-frontend',
    'var/lib/dpkg/triggers/Lock',
  ),
  ...drop('ldconfig cache', 'var/cache/ldconfig/aux-cache'),
  // Per-device identity, as templates leave it out.
  ...DEFAULT_EXCLUSIONS.filter((r) => DEVICE_IDENTITY.includes(r.pattern)),
  ...drop('temporary files', 'tmp/**'),
];

/**
 * The rule that drops what a COPY to `dest` (absolute; a trailing `/` for a folder) would add,
 * if one does: such a copy makes an empty layer, and the step after it finds nothing there.
 */
export function copyDroppedBy(
  dest: string,
  userExcludes: readonly string[] = [],
): { pattern: string; reason: string } | undefined {
  const rel = dest.replace(/^\/+/, '');
  const probe = rel === '' || rel.endsWith('/') ? `${rel}file` : rel;
  const rules = [
    ...STEP_EXCLUSIONS.filter((r) => r.action === 'drop'),
    ...userExcludes.map((g) => ({ pattern: g, reason: 'EXCLUDE' })),
  ];
  return rules.find((r) => globToRegExp(r.pattern.replace(/^\/+/, '')).test(probe));
}

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

function isWhiteout(st: fs.Stats): boolean {
  return (st.mode & S_IFMT) === S_IFCHR && st.rdev === 0;
}

function lstat(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

function sameBytes(a: string, b: string, size: number): boolean {
  if (size === 0) return true;
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.allocUnsafe(1 << 16);
    const bb = Buffer.allocUnsafe(1 << 16);
    for (let off = 0; off < size;) {
      const na = fs.readSync(fa, ba, 0, ba.length, off);
      const nb = fs.readSync(fb, bb, 0, bb.length, off);
      if (na !== nb || na === 0 || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      off += na;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function userXattrs(x: Xattrs | undefined): string {
  if (!x) return '';
  return Object.keys(x)
    .filter((k) => !k.startsWith('trusted.overlay.'))
    .sort()
    .map((k) => `${k}=${(x[k] as Buffer).toString('base64')}`)
    .join(',');
}

export interface CleanResult {
  excluded: number;
  pruned: number;
  /** Paths each rule dropped or emptied, by pattern. */
  byPattern: Record<string, number>;
  /**
   * The xattrs of what is left in the upper directory (entries of removed paths may remain), so
   * that packing it need not read the tree's xattrs a second time.
   */
  xattrs: XattrMap;
}

/**
 * Make an overlay upper directory hold exactly what the step changed:
 * 1. drop (or empty) what STEP_EXCLUSIONS and the user's EXCLUDE globs name;
 * 2. undo copy-ups that changed nothing: files equal to what the lower layers show (type,
 *    mode, owner, content, xattrs; the mtime is ignored) and directories left empty whose
 *    lower counterpart has the same mode and owner.
 */
export async function cleanUpper(
  upper: string,
  lower: readonly string[],
  userExcludes: readonly string[] = [],
  hostFiles: readonly ExclusionRule[] = [],
): Promise<CleanResult> {
  const rules = [
    ...STEP_EXCLUSIONS.map((r) => ({ ...r, re: globToRegExp(r.pattern) })),
    // A keepDirs rule drops what is not a folder, at the paths it matches and below them.
    ...hostFiles.map((r) => ({
      ...r,
      files: r.keepDirs === true,
      re: r.keepDirs
        ? new RegExp(
            `(?:${globToRegExp(r.pattern).source})|(?:${globToRegExp(`${r.pattern}/**`).source})`,
          )
        : globToRegExp(r.pattern),
    })),
    ...userExcludes.map((g) => ({
      pattern: g,
      reason: 'EXCLUDE',
      action: 'drop' as const,
      files: false,
      re: globToRegExp(g.replace(/^\/+/, '')),
    })),
  ];
  let excluded = 0;
  const byPattern: Record<string, number> = {};
  let pruned = 0;
  const upperX = await readTreeXattrs(upper);
  const opaque = (rel: string, x: Map<string, Xattrs>) =>
    x.get(rel)?.['trusted.overlay.opaque']?.toString() === 'y';

  // Which lower level shows a path, honouring whiteouts and opaque directories. The opaque
  // marks of a path's ancestors are read for every level at once, in one spawn: a step on a
  // deep stack would otherwise pay a getfattr per level for each path it looks up.
  const lowerX = lower.map(() => new Map<string, Xattrs>());
  const ancestorsOf = (rel: string): string[] => {
    const parts = rel.split('/');
    const out: string[] = [];
    for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
    return out;
  };
  const readAncestors = async (rel: string): Promise<void> => {
    const want: Array<{ level: number; a: string; abs: string }> = [];
    // The bottom is a full tree: its opaque marks mean nothing.
    for (let level = 0; level < lower.length - 1; level++) {
      const m = lowerX[level] as Map<string, Xattrs>;
      for (const a of ancestorsOf(rel)) {
        if (m.has(a)) continue;
        const abs = path.resolve(lower[level] as string, a);
        if (lstat(abs)?.isDirectory()) want.push({ level, a, abs });
      }
    }
    if (want.length === 0) return;
    const got = await readXattrs(
      '/',
      want.map((w) => w.abs.slice(1)),
    );
    for (const w of want) lowerX[w.level]?.set(w.a, got.get(w.abs.slice(1)) ?? {});
  };
  const lowerOpaque = (level: number, rel: string): boolean =>
    ancestorsOf(rel).some(
      (a) => lowerX[level]?.get(a)?.['trusted.overlay.opaque']?.toString() === 'y',
    );
  const visible = async (rel: string): Promise<{ dir: string; st: fs.Stats } | undefined> => {
    await readAncestors(rel);
    for (let level = 0; level < lower.length; level++) {
      const dir = lower[level] as string;
      const st = lstat(path.join(dir, rel));
      if (st) return isWhiteout(st) ? undefined : { dir, st };
      if (lowerOpaque(level, rel)) return undefined;
    }
    return undefined;
  };

  // Overlayfs marks some new directories opaque; where no lower layer has the directory the
  // mark means nothing, and would only add a `.wh..wh..opq` entry to the layer.
  const idle: string[] = [];
  for (const [rel, x] of upperX) {
    if (x['trusted.overlay.opaque']?.toString() !== 'y' || rel === '') continue;
    if (!(await visible(rel))) idle.push(rel);
  }
  await removeXattr(upper, 'trusted.overlay.opaque', idle);
  for (const rel of idle) {
    const x = upperX.get(rel);
    if (x) delete x['trusted.overlay.opaque'];
  }

  // Pass 1: exclusions, depth first.
  const candidates: string[] = [];
  const dirs: string[] = [];
  const walk = (rel: string): void => {
    const abs = path.join(upper, rel);
    for (const name of fs.readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(upper, r);
      const st = fs.lstatSync(p);
      // A whiteout records a deletion from a lower layer: excluding it would resurrect the
      // lower file (e.g. REMOVE under EXCLUDE /usr/share/doc/** kept the package's docs).
      const rule = isWhiteout(st)
        ? undefined
        : rules.find((x) => x.re.test(r) && !(x.files && st.isDirectory()));
      if (rule) {
        byPattern[rule.pattern] = (byPattern[rule.pattern] ?? 0) + 1;
        if (rule.action === 'empty' && st.isFile()) {
          if (st.size > 0) fs.truncateSync(p, 0);
        } else {
          fs.rmSync(p, { recursive: true, force: true });
          excluded++;
          continue;
        }
      }
      if (st.isDirectory()) {
        if (!opaque(r, upperX)) {
          walk(r);
          dirs.push(r);
        }
      } else if (!isWhiteout(st)) candidates.push(r);
    }
  };
  walk('');

  // Pass 2: undo no-op copy-ups of files.
  const same: Array<{ rel: string; dir: string }> = [];
  for (const rel of candidates) {
    const st = fs.lstatSync(path.join(upper, rel));
    const low = await visible(rel);
    if (!low) continue;
    const l = low.st;
    if (l.mode !== st.mode || l.uid !== st.uid || l.gid !== st.gid || l.size !== st.size) continue;
    if (st.isSymbolicLink()) {
      if (fs.readlinkSync(path.join(upper, rel)) !== fs.readlinkSync(path.join(low.dir, rel)))
        continue;
    } else if (st.isFile()) {
      if (!sameBytes(path.join(upper, rel), path.join(low.dir, rel), st.size)) continue;
    } else if (l.rdev !== st.rdev) continue;
    same.push({ rel, dir: low.dir });
  }
  const byDir = new Map<string, string[]>();
  for (const s of same) byDir.set(s.dir, [...(byDir.get(s.dir) ?? []), s.rel]);
  for (const [dir, rels] of byDir) {
    const lx = await readXattrs(dir, rels);
    for (const rel of rels) {
      if (userXattrs(lx.get(rel)) !== userXattrs(upperX.get(rel))) continue;
      fs.rmSync(path.join(upper, rel));
      pruned++;
    }
  }

  // Pass 3: directories left empty and unchanged (children come before parents in `dirs`).
  for (const rel of dirs) {
    const p = path.join(upper, rel);
    if (fs.readdirSync(p).length > 0) continue;
    const st = fs.lstatSync(p);
    const low = await visible(rel);
    if (!low || !low.st.isDirectory()) continue;
    if (low.st.mode !== st.mode || low.st.uid !== st.uid || low.st.gid !== st.gid) continue;
    const ux = userXattrs(upperX.get(rel));
    if (ux !== '' && ux !== userXattrs((await readXattrs(low.dir, [rel])).get(rel))) continue;
    fs.rmdirSync(p);
    pruned++;
  }
  return { excluded, pruned, byPattern, xattrs: upperX };
}
