import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { withFileLock } from '@strata/store';

/**
 * Where a store keeps apt's state between builds: `lists/<sources>` and `cache/<sources>` (the
 * indices and apt's parsed source cache, per sources), `archives` (downloaded .debs, shared) and
 * `check/<sources>` (the indices `strata check` downloads), and `native` (the host's dpkg set up
 * to unpack in foreign roots, see @strata/tools nativeDpkg). None of it reaches a layer; `strata
 * gc --apt-cache` drops it, and a build that needs it again remakes it.
 */
export function aptStateDir(storeRoot: string): string {
  return path.join(storeRoot, '.strata', 'apt');
}

/** The lock file of {@link AptState}, beside what it guards. */
export const APT_STATE_LOCK = '.lock';

/** A step's own copy of the apt state: the directories it binds into its root. */
export interface AptCheckout {
  lists: string;
  cache: string;
  archives: string;
  /** What each directory held when it was checked out: name → inode. */
  readonly taken: Record<AptDir, Map<string, number>>;
}

type AptDir = 'lists' | 'cache' | 'archives';
const DIRS: readonly AptDir[] = ['lists', 'cache', 'archives'];

/**
 * The store's apt state, shared by every step of every build on the store, which apt itself
 * would serialise: each apt run locks the lists and archives directories it uses, and a second
 * build's step failed on that lock. So no step uses the shared directories. A step takes its
 * own copy (hard links, made in milliseconds), and apt runs on that copy. Afterwards, what the
 * step changed goes back: new .debs are added, and lists that the step updated replace the
 * shared ones as a set, so lists and their Release files always come from one update. apt writes
 * every file it changes to a new name and renames it, so a linked file is never changed in
 * place. The lock guards only the copying, never an apt run, so builds do not wait on each other.
 */
export class AptState {
  readonly dir: string;
  constructor(storeRoot: string) {
    this.dir = aptStateDir(storeRoot);
  }

  private shared(sourcesKey: string): Record<AptDir, string> {
    return {
      lists: path.join(this.dir, 'lists', sourcesKey),
      cache: path.join(this.dir, 'cache', sourcesKey),
      archives: path.join(this.dir, 'archives'),
    };
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(path.join(this.dir, APT_STATE_LOCK), fn, {
      what: "the store's apt state",
    });
  }

  /** Copy the state for `sourcesKey` into `into/{lists,cache,archives}`. */
  async checkout(sourcesKey: string, into: string): Promise<AptCheckout> {
    const shared = this.shared(sourcesKey);
    const co = {
      lists: path.join(into, 'lists'),
      cache: path.join(into, 'cache'),
      archives: path.join(into, 'archives'),
      taken: { lists: new Map(), cache: new Map(), archives: new Map() },
    } as AptCheckout;
    await fsp.mkdir(this.dir, { recursive: true });
    await this.locked(async () => {
      for (const d of DIRS) {
        await fsp.mkdir(shared[d], { recursive: true });
        await fsp.mkdir(co[d], { recursive: true });
        for (const [name, ino] of await filesOf(shared[d])) {
          await linkOrCopy(path.join(shared[d], name), path.join(co[d], name));
          co.taken[d].set(name, ino);
        }
      }
    });
    // The inodes of the copies: the same as the shared ones unless a copy had to be made.
    for (const d of DIRS) {
      const now = await filesOf(co[d]);
      for (const name of co.taken[d].keys()) co.taken[d].set(name, now.get(name) ?? -1);
    }
    return co;
  }

  /** Give back what the step changed in its copy (see the class). */
  async checkin(sourcesKey: string, co: AptCheckout): Promise<void> {
    const shared = this.shared(sourcesKey);
    const changes = {} as Record<AptDir, { now: Map<string, number>; changed: boolean }>;
    for (const d of DIRS) {
      const now = await filesOf(co[d]);
      const before = co.taken[d];
      const changed =
        now.size !== before.size || [...now].some(([name, ino]) => before.get(name) !== ino);
      changes[d] = { now, changed };
    }
    if (!DIRS.some((d) => changes[d].changed)) return;
    await this.locked(async () => {
      for (const d of ['lists', 'cache'] as const) {
        if (!changes[d].changed) continue;
        const have = await filesOf(shared[d]);
        for (const [name, ino] of changes[d].now)
          if (co.taken[d].get(name) !== ino || !have.has(name))
            await publish(path.join(co[d], name), shared[d], name);
        for (const name of have.keys())
          if (!changes[d].now.has(name)) await fsp.rm(path.join(shared[d], name), { force: true });
      }
      // Downloaded packages only ever add: a .deb's name says its version.
      const have = await filesOf(shared.archives);
      for (const name of changes.archives.now.keys())
        if (!have.has(name)) await publish(path.join(co.archives, name), shared.archives, name);
    });
  }
}

/**
 * The regular files directly in `dir`, name → inode. apt's own lock files, unfinished downloads
 * (`partial/`) and temporary names are the step's alone.
 */
async function filesOf(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile() || e.name === 'lock' || e.name.startsWith('.tmp-')) continue;
    if (/^\.strata-index\..+/.test(e.name)) continue;
    const st = await fsp.stat(path.join(dir, e.name)).catch(() => undefined);
    if (st) out.set(e.name, st.ino);
  }
  return out;
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

/** Put `file` into `dir` as `name`, atomically replacing what is there. */
async function publish(file: string, dir: string, name: string): Promise<void> {
  const tmp = path.join(dir, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await linkOrCopy(file, tmp);
  await fsp.rename(tmp, path.join(dir, name));
}
