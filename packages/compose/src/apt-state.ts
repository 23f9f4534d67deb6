import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { withFileLock } from '@strata/store';

/**
 * Where a store keeps apt's state between builds: `lists/<sources>` (the indices, per sources),
 * `archives` (downloaded .debs, shared) and `check/<sources>` (the indices `strata check`
 * downloads), and `native` (the host's dpkg set up to unpack in foreign roots, see @strata/tools
 * nativeDpkg). None of it reaches a layer; `strata gc --apt-cache` drops it, and a build that
 * needs it again remakes it.
 */
export function aptStateDir(storeRoot: string): string {
  return path.join(storeRoot, '.strata', 'apt');
}

/** The lock file of {@link AptState}, beside what it guards. */
export const APT_STATE_LOCK = '.lock';

/**
 * Marks apt state that only ever received verified files. State without it came from a Strata
 * that published whatever a step left in its copy, so it is dropped rather than trusted.
 */
export const APT_VERIFIED_MARK = '.verified-v1';

/** A step's own view of the apt state: the directories it binds into its root. */
export interface AptCheckout {
  lists: string;
  /** apt's source package cache: the step's alone, never shared (apt trusts what it finds). */
  cache: string;
  archives: string;
  /**
   * The shared files as they were at checkout (hard links, `lists/` and `archives/`), for the
   * view's symlinks to point at; a step sees them only read-only (see {@link AptState.checkout}).
   */
  snapshot: string;
  /** Where the view's symlinks point instead of `snapshot`, if anywhere (the path in the step). */
  readonly linkedAt: string | undefined;
  /** What each directory held when it was checked out: name → inode of the snapshot's file. */
  readonly taken: Record<AptDir, Map<string, number>>;
}

type AptDir = 'lists' | 'archives';
const DIRS: readonly AptDir[] = ['lists', 'archives'];

/** What the build knows for sure about the mirror, to check a step's lists against. */
export interface AptTrust {
  /** The sha256s of the suites' Release (or InRelease) files, as the build fetched them. */
  releases: readonly string[];
}

/**
 * The store's apt state, shared by every step of every build on the store. apt itself would
 * serialise it (each apt run locks the lists and archives directories it uses, and a second
 * build's step failed on that lock), so no step uses the shared directories: a step gets its own
 * view, and what it adds goes back only once checked.
 *
 * A step runs code of the build's author (a RUN, or an apt-get a RUN replaced), so nothing it
 * does may change what another step reads as apt's verified state. Its view is a directory of
 * symlinks into a read-only snapshot of the shared files (hard links, made in milliseconds):
 * apt replaces a file by renaming a new one over the symlink, and a write into a file fails
 * instead of reaching the store's copy. What the step leaves goes back only where it checks out:
 * lists as a set, when every Release file in it is one the build fetched itself and every index
 * has the hash such a Release file gives it; .debs one by one, when a verified index lists the
 * .deb's hash under its name. apt trusts the lists it finds and a cached .deb of the right size,
 * so nothing else is ever shared, apt's parsed source cache included. The lock guards only the
 * copying, never an apt run, so builds do not wait on each other.
 */
export class AptState {
  readonly dir: string;
  constructor(storeRoot: string) {
    this.dir = aptStateDir(storeRoot);
  }

  private shared(sourcesKey: string): Record<AptDir, string> {
    return {
      lists: path.join(this.dir, 'lists', sourcesKey),
      archives: path.join(this.dir, 'archives'),
    };
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(path.join(this.dir, APT_STATE_LOCK), fn, {
      what: "the store's apt state",
    });
  }

  /**
   * Make a view of the state for `sourcesKey` in `into/{lists,cache,archives}`. With `linkedAt`,
   * the view's files are symlinks to `<linkedAt>/<dir>/<name>`, where the caller mounts
   * `snapshot` read-only; without it, they are hard links to the shared files, for a tool that
   * runs no code of the build's author (mmdebstrap).
   */
  async checkout(sourcesKey: string, into: string, linkedAt?: string): Promise<AptCheckout> {
    const shared = this.shared(sourcesKey);
    const co: AptCheckout = {
      lists: path.join(into, 'lists'),
      cache: path.join(into, 'cache'),
      archives: path.join(into, 'archives'),
      snapshot: path.join(into, 'snapshot'),
      linkedAt,
      taken: { lists: new Map(), archives: new Map() },
    };
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.mkdir(co.cache, { recursive: true });
    await this.locked(async () => {
      await this.dropUnverified();
      for (const d of DIRS) {
        const snap = path.join(co.snapshot, d);
        await fsp.mkdir(shared[d], { recursive: true });
        await fsp.mkdir(snap, { recursive: true });
        await fsp.mkdir(co[d], { recursive: true });
        for (const name of (await filesOf(shared[d])).keys())
          await linkOrCopy(path.join(shared[d], name), path.join(snap, name));
      }
    });
    for (const d of DIRS) {
      const snap = path.join(co.snapshot, d);
      for (const [name, ino] of await filesOf(snap)) {
        co.taken[d].set(name, ino);
        if (linkedAt === undefined) await fsp.link(path.join(snap, name), path.join(co[d], name));
        else await fsp.symlink(path.posix.join(linkedAt, d, name), path.join(co[d], name));
      }
    }
    return co;
  }

  /**
   * Give back what the step added to its view and what checks out (see the class): the lists
   * only with `trust`, the .debs that a verified index lists.
   */
  async checkin(sourcesKey: string, co: AptCheckout, trust: AptTrust | undefined): Promise<void> {
    const shared = this.shared(sourcesKey);
    const lists = await this.viewOf(co, 'lists');
    const listsChanged =
      lists.added.size > 0 || [...co.taken.lists.keys()].some((n) => !lists.kept.has(n));
    const lists2 = listsChanged && trust ? await verifiedLists(lists, trust) : undefined;
    const archives = await this.viewOf(co, 'archives');
    if (!lists2 && archives.added.size === 0) return;
    await this.locked(async () => {
      if (!(await exists(path.join(this.dir, APT_VERIFIED_MARK)))) return;
      if (lists2) {
        await fsp.mkdir(shared.lists, { recursive: true });
        const have = await filesOf(shared.lists);
        for (const [name, file] of lists2) await publish(file, shared.lists, name);
        for (const name of have.keys())
          if (!lists2.has(name)) await fsp.rm(path.join(shared.lists, name), { force: true });
      }
      if (archives.added.size === 0) return;
      // Downloaded packages only ever add: a .deb's name says its version.
      const have = await filesOf(shared.archives);
      const fresh = [...archives.added].filter(([name]) => !have.has(name));
      if (fresh.length === 0) return;
      const indices = [
        ...(lists2 ? lists2.values() : [...lists.kept.values()]),
        ...(await this.sharedIndices()),
      ].filter((f) => /_Packages$/.test(f));
      const listed = await debsListed(
        indices,
        new Map(await Promise.all(fresh.map(async ([n, f]) => [n, await sha256Of(f)] as const))),
      );
      for (const [name, file] of fresh)
        if (listed.has(name)) await publish(file, shared.archives, name);
    });
  }

  /**
   * The files of a view: `kept` (still the snapshot's: a symlink into it or a link to it) and
   * `added` (anything else the step left as a regular file), name → host path.
   */
  private async viewOf(
    co: AptCheckout,
    d: AptDir,
  ): Promise<{ kept: Map<string, string>; added: Map<string, string> }> {
    const kept = new Map<string, string>();
    const added = new Map<string, string>();
    const entries = await fsp.readdir(co[d], { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (skipped(e.name)) continue;
      const file = path.join(co[d], e.name);
      const snap = path.join(co.snapshot, d, e.name);
      if (e.isSymbolicLink()) {
        const to = await fsp.readlink(file).catch(() => '');
        if (co.linkedAt !== undefined && to === path.posix.join(co.linkedAt, d, e.name))
          if (co.taken[d].has(e.name)) kept.set(e.name, snap);
        continue;
      }
      if (!e.isFile()) continue;
      const st = await fsp.lstat(file).catch(() => undefined);
      if (!st) continue;
      if (co.taken[d].get(e.name) === st.ino) kept.set(e.name, snap);
      else added.set(e.name, file);
    }
    return { kept, added };
  }

  /** The index files of every sources' shared lists (all of them verified when published). */
  private async sharedIndices(): Promise<string[]> {
    const root = path.join(this.dir, 'lists');
    const out: string[] = [];
    for (const key of await fsp.readdir(root).catch(() => [] as string[]))
      for (const name of (await filesOf(path.join(root, key))).keys())
        out.push(path.join(root, key, name));
    return out;
  }

  /** Drop the lists, caches and .debs of a store whose state predates {@link APT_VERIFIED_MARK}. */
  private async dropUnverified(): Promise<void> {
    const mark = path.join(this.dir, APT_VERIFIED_MARK);
    if (await exists(mark)) return;
    for (const d of ['lists', 'cache', 'archives'])
      await fsp.rm(path.join(this.dir, d), { recursive: true, force: true });
    await fsp.writeFile(mark, '');
  }
}

/** apt's own lock files, unfinished downloads (`partial/`) and temporary names are the step's. */
function skipped(name: string): boolean {
  return name === 'lock' || name.startsWith('.tmp-') || /^\.strata-index\..+/.test(name);
}

/** The regular files directly in `dir`, name → inode (see {@link skipped}). */
async function filesOf(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile() || skipped(e.name)) continue;
    const st = await fsp.lstat(path.join(dir, e.name)).catch(() => undefined);
    if (st) out.set(e.name, st.ino);
  }
  return out;
}

const RELEASE = /^(.*_)(InRelease|Release)$/;

/**
 * The lists of a view that may replace the shared ones, name → host file, or undefined when
 * they do not check out. A Release file must be one of `trust`'s; an index beside it must have
 * the sha256 that the Release file gives its path (apt names a list file by its URL, `/` as
 * `_`); the marker of the mirror state (see stepCommand) must name the trusted Release files.
 * Files of sources the build cannot vouch for (its own repository) are left out, so the next
 * step updates them.
 */
async function verifiedLists(
  view: { kept: Map<string, string>; added: Map<string, string> },
  trust: AptTrust,
): Promise<Map<string, string> | undefined> {
  const files = new Map([...view.kept, ...view.added]);
  const hashes = new Map<string, string>();
  const prefixes: string[] = [];
  for (const [name, file] of files) {
    const m = RELEASE.exec(name);
    if (!m) continue;
    const text = await fsp.readFile(file);
    if (!trust.releases.includes(sha256(text))) continue;
    prefixes.push(m[1]!);
    for (const [p, h] of releaseHashes(text.toString('utf8')))
      hashes.set(m[1]! + p.replace(/\//g, '_'), h);
  }
  if (prefixes.length === 0) return undefined;
  const out = new Map<string, string>();
  for (const [name, file] of files) {
    if (name === '.strata-index') {
      const text = await fsp.readFile(file, 'utf8');
      if (!trust.releases.every((h) => text.includes(h))) return undefined;
      out.set(name, file);
      continue;
    }
    const m = RELEASE.exec(name);
    const prefix = prefixes.find((p) => name.startsWith(p));
    if (m && prefixes.includes(m[1]!)) out.set(name, file);
    else if (name.endsWith('_Release.gpg') && prefixes.includes(name.slice(0, -11)))
      out.set(name, file);
    else if (prefix === undefined) continue;
    else if (hashes.get(name) === (await sha256Of(file))) out.set(name, file);
    else return undefined;
  }
  return out;
}

/** The SHA256 section of a Release file: path → hash. */
function releaseHashes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let inSection = false;
  for (const line of text.split('\n')) {
    if (/^\S/.test(line)) inSection = line.startsWith('SHA256:');
    else if (inSection) {
      const [hash, , p] = line.trim().split(/\s+/);
      if (hash && p) out.set(p, hash.toLowerCase());
    }
  }
  return out;
}

/**
 * The names among `debs` (name → sha256) that one of `indices` lists: a stanza with that SHA256
 * whose package, version and architecture are the ones apt would name the .deb by.
 */
async function debsListed(indices: string[], debs: Map<string, string>): Promise<Set<string>> {
  const out = new Set<string>();
  for (const file of indices) {
    if (out.size === debs.size) break;
    const text = await fsp.readFile(file).catch(() => undefined);
    if (!text) continue;
    for (const [name, hash] of debs) {
      if (out.has(name)) continue;
      const at = text.indexOf(`\nSHA256: ${hash}\n`);
      if (at < 0) continue;
      const start = text.lastIndexOf('\n\n', at) + 1;
      const end = text.indexOf('\n\n', at);
      const stanza = text.subarray(start, end < 0 ? text.length : end).toString('utf8');
      const field = (f: string) => new RegExp(`^${f}: *(.*)$`, 'm').exec(stanza)?.[1]?.trim();
      const parts = [field('Package'), field('Version'), field('Architecture')];
      if (parts.every((p) => p !== undefined) && name === `${parts.map(aptQuote).join('_')}.deb`)
        out.add(name);
    }
  }
  return out;
}

/** apt's QuoteString(s, "_:") for the parts of an archive's file name. */
function aptQuote(s: string | undefined): string {
  let out = '';
  for (const c of s ?? '') {
    const code = c.charCodeAt(0);
    const bad = code <= 0x20 || code >= 0x7f || c === '_' || c === ':' || c === '%';
    out += bad ? `%${code.toString(16).padStart(2, '0')}` : c;
  }
  return out;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  const f = await fsp.open(file, 'r');
  try {
    for await (const chunk of f.createReadStream()) h.update(chunk as Buffer);
  } finally {
    await f.close().catch(() => undefined);
  }
  return h.digest('hex');
}

async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(
    () => true,
    () => false,
  );
}

/** Hard-link `from` as `to`, or copy it where a link cannot cross filesystems. */
export async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await fsp.link(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await fsp.copyFile(from, to);
  }
}

/**
 * Put `file` into `dir` as `name`, atomically replacing what is there. A link is safe: the step
 * that wrote it has ended, and nothing but a read-only snapshot ever links it again.
 */
async function publish(file: string, dir: string, name: string): Promise<void> {
  const [from, to] = await Promise.all([
    fsp.stat(file),
    fsp.stat(path.join(dir, name)).catch(() => undefined),
  ]);
  // Renaming a link over another link of the same file would leave both.
  if (to && to.ino === from.ino && to.dev === from.dev) return;
  const tmp = path.join(dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await linkOrCopy(file, tmp);
  await fsp.rename(tmp, path.join(dir, name));
}
