import { promises as fsp } from 'node:fs';
import { MediaTypes, sha256 } from '@strata/oci';
import { Store } from '@strata/store';
import { withTempStore } from '@strata/store/testing';
import { CacheEntry, readCache, writeCache } from './cache';

let store: Store;
withTempStore('cache', (t) => ({ store } = t));

async function entryWithLayer(data: Buffer): Promise<CacheEntry> {
  const info = await store.putBytes(data);
  const layer = { mediaType: MediaTypes.layerTar, digest: info.digest, size: info.size };
  const key = sha256('RUN echo 2 > /b');
  const entry: CacheEntry = {
    key,
    layer,
    diffId: info.digest,
    record: { diffId: info.digest, createdBy: 'RUN echo 2 > /b', cacheKey: key },
    packages: [],
    created: '2024-01-01T00:00:00Z',
  };
  await writeCache(store, entry);
  return entry;
}

test('a cache entry whose layer blob has the wrong size is a miss, so the step runs again', async () => {
  const entry = await entryWithLayer(Buffer.alloc(1000, 'layer'));
  expect(await readCache(store, entry.key)).toEqual(entry);
  await fsp.truncate(store.blobPath(entry.layer.digest), 500);
  expect(await readCache(store, entry.key)).toBeUndefined();
  await fsp.rm(store.blobPath(entry.layer.digest));
  expect(await readCache(store, entry.key)).toBeUndefined();
});
