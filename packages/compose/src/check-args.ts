/**
 * The build args a check runs with: those given, else those the build's lock recorded, else the
 * Stratafile's defaults.
 */

import * as path from 'node:path';
import { PlatformSelector } from '@strata/oci';
import { debianArchitectureOf } from '@strata/debian';
import { lockPathFor, readLockFile } from './lockfile';
import { platformArgs } from './platform';
import { parseStratafile } from './stratafile';

/**
 * The build args to check `text` (the Stratafile at `file`) with, and a note for each value taken
 * from the build's lock. The build's --build-arg values are in its lock: a check without them
 * takes them from there, else every step an ARG reaches would look stale for a reason it does not
 * say.
 */
export async function checkArgs(
  text: string,
  file: string,
  given: Record<string, string>,
  platform: PlatformSelector | undefined,
): Promise<{ buildArgs: Record<string, string>; notes: string[] }> {
  const notes: string[] = [];
  const defaults = {
    ...platformArgs(platform),
    ...given,
  };
  const locked = await lockedArgValues(file, platform);
  const declared = argDefaults(text, file, defaults);
  const fromLock: Record<string, string> = {};
  for (const [name, value] of Object.entries(locked.args)) {
    if (Object.hasOwn(given, name) || !declared.has(name) || declared.get(name) === value) continue;
    fromLock[name] = value;
    notes.push(
      `ARG ${name}: ${path.basename(locked.file)} has ${JSON.stringify(value)}, which the check uses (the Stratafile's default is ${declared.get(name) === undefined ? 'unset' : JSON.stringify(declared.get(name))}); --build-arg ${name}=… to check another value`,
    );
  }
  return { buildArgs: { ...defaults, ...fromLock, ...given }, notes };
}

/**
 * The ARG values the lock next to `file` recorded (of `platform`'s own lock first, as a build
 * for it writes one), where every stage that declares an ARG agrees on one value.
 */
async function lockedArgValues(
  file: string,
  platform: PlatformSelector | undefined,
): Promise<{ file: string; args: Record<string, string> }> {
  const candidates = [
    ...(platform ? [lockPathFor(file, debianArchitectureOf(platform))] : []),
    lockPathFor(file),
  ];
  for (const lockFile of candidates) {
    const lock = await readLockFile(lockFile).catch(() => undefined);
    if (!lock) continue;
    const seen = new Map<string, string | null>();
    const split = new Set<string>();
    for (const stage of lock.stages)
      for (const [k, v] of Object.entries(stage.args ?? {})) {
        if (seen.has(k) && seen.get(k) !== v) split.add(k);
        seen.set(k, v);
      }
    const args: Record<string, string> = {};
    for (const [k, v] of seen) if (v !== null && !split.has(k)) args[k] = v;
    return { file: lockFile, args };
  }
  return { file: lockPathFor(file), args: {} };
}

/** The value each ARG the stages declare has without a --build-arg of its own (undefined: unset). */
function argDefaults(
  text: string,
  file: string,
  args: Record<string, string>,
): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  const sf = parseStratafile(text, file, args, { unresolvedBases: true });
  for (const stage of sf.stages)
    for (const ins of stage.steps) if (ins.kind === 'ARG') out.set(ins.name, ins.value);
  return out;
}
