import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { MediaTypes, sha256 } from '@strata/oci';
import { Store } from '@strata/store';
import { withTempStore } from '@strata/store/testing';
import { CacheEntry, cacheRootName, peekCache, readCache, writeCache } from './cache';

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
  if (!entry.layer) throw new Error('no layer');
  const blob = store.blobPath(entry.layer.digest);
  await fsp.truncate(blob, 500);
  expect(await readCache(store, entry.key)).toBeUndefined();
  await fsp.rm(blob);
  expect(await readCache(store, entry.key)).toBeUndefined();
});

test('a step that changed nothing is cached as making no layer, and a layer that went missing is not taken for that', async () => {
  const key = sha256('RUN true');
  const empty: CacheEntry = {
    key,
    emptyLayer: true,
    record: { createdBy: 'RUN true', cacheKey: key },
    packages: [],
    created: '2024-01-01T00:00:00Z',
  };
  await writeCache(store, empty);
  expect(await readCache(store, key)).toEqual(empty);
  // An entry that names no layer and does not say it made none is damaged: a miss.
  const { emptyLayer: _, ...lost } = empty;
  await writeCache(store, lost);
  expect(await readCache(store, key)).toBeUndefined();
});

test('peeking at an entry (what check does) leaves its gc age alone; reading it for a build renews it', async () => {
  const entry = await entryWithLayer(Buffer.alloc(100, 'peek'));
  const root = path.join(store.paths.rootsDir, `${cacheRootName(entry.key)}.json`);
  const old = new Date('2020-01-01T00:00:00Z');
  await fsp.utimes(root, old, old);
  expect(await peekCache(store, entry.key)).toEqual(entry);
  expect((await fsp.stat(root)).mtime).toEqual(old);
  expect(await readCache(store, entry.key)).toEqual(entry);
  expect((await fsp.stat(root)).mtime.getTime()).toBeGreaterThan(old.getTime());
});
