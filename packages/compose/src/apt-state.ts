import * as path from 'node:path';

/**
 * Where a store keeps apt's state between builds: `lists/<sources>` and `cache/<sources>` (the
 * indices and apt's parsed source cache, per sources), `archives` (downloaded .debs, shared) and
 * `check/<sources>` (the indices `strata check` downloads). None of it reaches a layer; `strata
 * gc --apt-cache` drops it.
 */
export function aptStateDir(storeRoot: string): string {
  return path.join(storeRoot, '.strata', 'apt');
}
