import { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { ContentSource, MediaTypes, SizeMismatchError } from '@strata/oci';
import { Store } from './store';
import { storeSink } from './sink';
import { holdLease, withTempStore } from './testing';

let store: Store;
withTempStore('sink', (t) => ({ store } = t));

/** A source that must not be asked: the store already holds what is copied. */
const unused: ContentSource = {
  readBlob: () => Promise.reject(new Error('fetched a blob the store holds')),
  openBlob: () => Promise.reject(new Error('fetched a blob the store holds')),
  openDecompressed: () => Promise.reject(new Error('fetched a blob the store holds')),
};

test('a copy that finds a blob present refreshes it, so a gc under its lease keeps it', async () => {
  // A blob no tag reaches, from long ago (a template removed earlier, say): a pull that needs
  // it again finds it present, and a gc running meanwhile must not take it from under the pull.
  const { digest, size } = await store.putBytes(Buffer.from('present already'));
  const old = new Date(Date.now() - 3600_000);
  await fsp.utimes(store.blobPath(digest), old, old);
  const release = await holdLease(store);
  try {
    const d = { mediaType: MediaTypes.layerTar, digest, size };
    expect(await storeSink(store).putBlob(d, unused)).toEqual({ outcome: 'present', bytes: 0 });
    expect((await store.gc()).removed).toBe(0);
    expect(await store.hasBlob(digest)).toBe(true);
  } finally {
    await release();
  }
  // Once the pull is over and nothing tagged it, the next gc takes it.
  expect((await store.gc()).removed).toBe(1);
});

test('a descriptor whose size disagrees with the blob the store holds is refused', async () => {
  const { digest, size } = await store.putBytes(Buffer.from('present already'));
  const d = { mediaType: MediaTypes.layerTar, digest, size: size + 10 };
  const e = await storeSink(store)
    .putBlob(d, unused)
    .catch((x: unknown) => x);
  expect(e).toBeInstanceOf(SizeMismatchError);
  expect((e as Error).message).toBe(
    `blob ${digest}: size mismatch: expected ${size + 10} bytes, got ${size}`,
  );
});

test('a copy that finds a stored blob of another size (damaged) fetches it again', async () => {
  const data = Buffer.from('a layer the pull brings');
  const { digest, size } = await store.putBytes(data);
  await fsp.truncate(store.blobPath(digest), 5);
  const d = { mediaType: MediaTypes.layerTar, digest, size };
  const source: ContentSource = {
    ...unused,
    openBlob: () => Promise.resolve(Readable.from([data])),
  };
  expect(await storeSink(store).putBlob(d, source)).toEqual({ outcome: 'downloaded', bytes: size });
  expect(await store.readBlob(digest, size)).toEqual(data);
});
