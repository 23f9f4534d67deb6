import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** The dpkg status file of an overlay stack, from its lower dirs (topmost first). */
export async function statusOfLowers(lower: readonly string[]): Promise<string | undefined> {
  for (const dir of lower) {
    try {
      return await fsp.readFile(path.join(dir, 'var/lib/dpkg/status'), 'utf8');
    } catch {
      // not in this layer: look further down
    }
  }
  return undefined;
}
