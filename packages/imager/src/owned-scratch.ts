/**
 * Scratch directories and temp files that name the process that made them, so that what a
 * killed flatten or image left (hundreds of MB of uncompressed layers next to the output) is
 * recognised as nobody's and removed by the next one that works in that directory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pidAlive } from '@strata/store';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A fresh directory `<prefix><pid>-XXXXXX` in `dir`, after sweeping dead owners' ones. */
export async function ownedScratch(dir: string, prefix: string): Promise<string> {
  await sweepDead(dir, new RegExp(`^${escape(prefix)}(\\d+)-[A-Za-z0-9]{6}$`));
  return fs.promises.mkdtemp(path.join(dir, `${prefix}${process.pid}-`));
}

/**
 * Remove the entries of `dir` whose name `pattern` matches, its first group being the pid of a
 * process that is gone. One that cannot be removed is left for the user: it is not in the way.
 */
export async function sweepDead(dir: string, pattern: RegExp): Promise<void> {
  const names = await fs.promises.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    await fs.promises
      .rm(path.join(dir, name), { recursive: true, force: true })
      .catch(() => undefined);
  }
}

/** The pattern of the temp files `.<name>.<pid>.tmp` that an output `name` is written through. */
export function outputTempPattern(name: string): RegExp {
  return new RegExp(`^\\.${escape(name)}\\.(\\d+)\\.tmp$`);
}
