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
  readonly blobDir: string;
  readonly indexPath: string;
  readonly ingestDir: string;
  readonly leaseDir: string;
  /** GC roots besides tags: one JSON file per root holding `{ descriptors: Descriptor[] }`. */
  readonly rootsDir: string;
  /** One file per layer blob, named by its hex digest, holding the blob's verified diffID. */
  readonly diffIdDir: string;
  /** Views of layer stacks by kind (stack-views.ts), each named by its top layer's blob. */
  readonly stackViewDir: string;
  readonly lockPath: string;
  /** Held by a gc that deletes cache entries or snapshots; a new lease waits for it. */
  readonly gcLockPath: string;
  /** The store's settings file (optional). */
  readonly configPath: string;

  /** Strata's own files (`.strata`): only its owner may enter (see Store.open). */
  readonly ownDir: string;

  constructor(readonly root: string) {
    this.ownDir = path.join(root, '.strata');
    const own = (name: string): string => path.join(this.ownDir, name);
    this.blobDir = path.join(root, 'blobs', 'sha256');
    this.indexPath = path.join(root, 'index.json');
    this.ingestDir = own('ingest');
    this.leaseDir = own('leases');
    this.rootsDir = own('roots');
    this.diffIdDir = own('diffids');
    this.stackViewDir = own('stack-views');
    this.lockPath = own('index.lock');
    this.gcLockPath = own('gc.lock');
    this.configPath = own('config.json');
  }
}
