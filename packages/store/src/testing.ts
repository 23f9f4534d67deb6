/**
 * Support for tests, here and in the packages that build on the store: `@strata/store/testing`
 * (jest and `tsconfig.jest.json` map it to this file). It is not in the index, nor in the build.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Descriptor, MediaTypes } from '@strata/oci';
import { Store } from './store';

export interface TempStore {
  /** A fresh temporary folder, removed after the test: the store is its `store` folder. */
  dir: string;
  store: Store;
}

/**
 * Gives every test of the file (or of the `describe` it is called in) a new store in a fresh
 * temporary folder named after `prefix`, handed to `use` before the test and removed after it.
 */
export function withTempStore(prefix: string, use: (t: TempStore) => void): void {
  let dir: string | undefined;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), `strata-${prefix}-`));
    use({ dir, store: await Store.open(path.join(dir, 'store')) });
  });
  afterEach(async () => {
    if (dir !== undefined) await fsp.rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
}

/**
 * Takes a lease on `store` as a build does, and holds it until the function it gives is called;
 * that function resolves once the lease is let go.
 */
export async function holdLease(store: Store): Promise<() => Promise<void>> {
  let inside!: () => void;
  const held = new Promise<void>((r) => (inside = r));
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const lease = store.withLease(async () => {
    inside();
    await done;
  });
  await Promise.race([held, lease]);
  return async () => {
    finish();
    await lease;
  };
}

/** A one-layer image whose layer holds `text`: the smallest manifest a test can tag or attach to. */
export async function imageFor(store: Store, text: string): Promise<Descriptor> {
  const layer = await store.putBytes(Buffer.from(text));
  const config = await store.putJson(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } },
    MediaTypes.imageConfig,
  );
  return store.putJson(
    {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config,
      layers: [{ mediaType: MediaTypes.layerTar, digest: layer.digest, size: layer.size }],
    },
    MediaTypes.imageManifest,
  );
}
