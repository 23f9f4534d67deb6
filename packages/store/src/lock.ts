import { promises as fsp } from 'node:fs';
import { LockedError, isNoSpace } from '@strata/oci';
import { tempPathFor } from './atomic';

export interface LockOptions {
  /** Give up after this long. */
  timeoutMs?: number;
  /** What the lock protects, for the error message. */
  what?: string;
}

/** Whether a process exists (EPERM means it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Holder {
  pid: number;
  since: string;
}

async function readHolder(file: string): Promise<Holder | undefined> {
  try {
    const h = JSON.parse(await fsp.readFile(file, 'utf8')) as Holder;
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The waiting of a lock's waiter: each call sleeps a little longer (with jitter, so waiters do
 * not retry in step), and throws LockedError, naming the holder, once the timeout has passed.
 */
function backoff(file: string, opts: LockOptions): (holder: Holder | undefined) => Promise<void> {
  const timeout = opts.timeoutMs ?? 60_000;
  const start = Date.now();
  let delay = 2;
  return async (holder) => {
    if (Date.now() - start > timeout) {
      const who = holder ? `by pid ${holder.pid} since ${holder.since}` : 'by another process';
      throw new LockedError(`${opts.what ?? file} is locked ${who}`, {
        hint: `remove ${file} if that process is gone`,
      });
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 100);
  };
}

/**
 * An exclusive inter-process lock: a file holding the owner's pid, linked into place (which,
 * like O_EXCL, fails when it exists). A lock whose owner process is gone is broken and taken over.
 */
export async function withFileLock<T>(
  file: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const wait = backoff(file, opts);
  const me: Holder = { pid: process.pid, since: new Date().toISOString() };
  // The holder is written beside the lock and linked into place: a process killed between
  // creating the lock and writing its pid left an empty lock that named nobody, and every
  // later taker waited for it until its timeout.
  const mine = tempPathFor(file);
  let holder: string | undefined = mine;
  try {
    await fsp.writeFile(mine, JSON.stringify(me), { flag: 'wx' });
  } catch (e) {
    // A full disk may have room for the lock's name but not for its holder: the lock is held
    // all the same (an empty lock reads as held by another process), so that a gc can still
    // run and free space; the command's own writes fail on their own paths.
    if (!isNoSpace(e)) throw e;
    holder = undefined;
  }
  try {
    await takeLock(file, holder, wait);
  } finally {
    await fsp.rm(mine, { force: true });
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(file, { force: true });
  }
}

async function takeLock(
  file: string,
  mine: string | undefined,
  wait: (holder: Holder | undefined) => Promise<void>,
): Promise<void> {
  for (;;) {
    try {
      if (mine !== undefined) await fsp.link(mine, file);
      else await (await fsp.open(file, 'wx')).close();
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = await readHolder(file);
      if (holder !== undefined && !pidAlive(holder.pid)) {
        // Break a stale lock: rename is atomic, so only one waiter wins the takeover.
        const stale = `${file}.stale-${process.pid}`;
        try {
          await fsp.rename(file, stale);
          const moved = await readHolder(stale);
          if (moved !== undefined && pidAlive(moved.pid)) {
            // A live process took the lock between our read and the rename: give it back.
            await fsp.link(stale, file).catch(() => undefined);
          }
          await fsp.rm(stale, { force: true });
        } catch {
          /* someone else broke it */
        }
        continue;
      }
      await wait(holder);
    }
  }
}

/**
 * Wait until nobody holds the lock `file` (see withFileLock), without taking it. A holder that
 * is gone counts as nobody.
 */
export async function waitForUnlock(file: string, opts: LockOptions = {}): Promise<void> {
  const wait = backoff(file, opts);
  for (;;) {
    let holder: Holder | undefined;
    try {
      holder = await readHolder(file);
      if (holder === undefined) await fsp.access(file);
    } catch {
      return; // no lock file
    }
    if (holder !== undefined && !pidAlive(holder.pid)) return;
    await wait(holder);
  }
}
