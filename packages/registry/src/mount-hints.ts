import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Digest } from '@strata/oci';
import { writeFileAtomic } from '@strata/store';

const MAX_DIGESTS = 20000;
const MAX_PER_DIGEST = 8;

/**
 * Where blobs were last seen on registries (`digest → ["host/repo", …]`), kept next to the store
 * so that a push can try a cross-repo mount instead of an upload. Only a hint: losing it costs
 * an upload, and a wrong entry costs one refused mount.
 */
export class BlobSources {
  private constructor(
    private readonly file: string,
    private readonly map: Map<string, string[]>,
  ) {}

  static async load(storeRoot: string): Promise<BlobSources> {
    const file = path.join(storeRoot, '.strata', 'registry-sources.json');
    const map = new Map<string, string[]>();
    try {
      const doc = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
      for (const [k, v] of Object.entries(doc)) {
        if (Array.isArray(v))
          map.set(
            k,
            v.filter((x): x is string => typeof x === 'string'),
          );
      }
    } catch {
      /* missing or unreadable: start empty */
    }
    return new BlobSources(file, map);
  }

  /** Repositories on `registry` known to hold `digest`, most recent first. */
  reposFor(digest: Digest, registry: string): string[] {
    const prefix = `${registry}/`;
    return (this.map.get(digest) ?? [])
      .filter((s) => s.startsWith(prefix))
      .map((s) => s.slice(prefix.length));
  }

  record(digest: Digest, registry: string, repository: string): void {
    const entry = `${registry}/${repository}`;
    const list = (this.map.get(digest) ?? []).filter((s) => s !== entry);
    list.unshift(entry);
    this.map.delete(digest);
    this.map.set(digest, list.slice(0, MAX_PER_DIGEST));
  }

  async save(): Promise<void> {
    const entries = [...this.map.entries()].slice(-MAX_DIGESTS);
    await writeFileAtomic(this.file, JSON.stringify(Object.fromEntries(entries)));
  }
}
