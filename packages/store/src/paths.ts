import * as os from 'node:os';
import * as path from 'node:path';

/** Where the store lives when neither --store nor STRATA_STORE says. */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATA_STORE) return env.STRATA_STORE;
  const data = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'strata', 'store');
}

/**
 * The files of a store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`),
 * and Strata's own scratch space under `.strata/`.
 */
export class StorePaths {
  constructor(readonly root: string) {}

  get blobDir(): string {
    return path.join(this.root, 'blobs', 'sha256');
  }
  get ingestDir(): string {
    return path.join(this.root, '.strata', 'ingest');
  }
  get indexPath(): string {
    return path.join(this.root, 'index.json');
  }
  get leaseDir(): string {
    return path.join(this.root, '.strata', 'leases');
  }
  /** GC roots besides tags: one JSON file per root holding `{ descriptors: Descriptor[] }`. */
  get rootsDir(): string {
    return path.join(this.root, '.strata', 'roots');
  }
  /** One file per layer blob, named by its hex digest, holding the blob's verified diffID. */
  get diffIdDir(): string {
    return path.join(this.root, '.strata', 'diffids');
  }
  get lockPath(): string {
    return path.join(this.root, '.strata', 'index.lock');
  }
  /** Held by a gc that deletes cache entries or snapshots; a new lease waits for it. */
  get gcLockPath(): string {
    return path.join(this.root, '.strata', 'gc.lock');
  }
  /** The store's settings file (optional). */
  get configPath(): string {
    return path.join(this.root, '.strata', 'config.json');
  }
}
