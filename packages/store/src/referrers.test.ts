import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Annotations, ArtifactTypes, MediaTypes, parseJson, sha256 } from '@strata/oci';
import type { Descriptor, ImageManifest } from '@strata/oci';
import { loadArchive, saveArchive } from './archive';
import { ARCHIVE_REFERRERS, EMPTY_CONFIG, SUBJECT_ANNOTATION } from './referrers';
import { Store } from './store';
import { imageFor, withTempStore } from './testing';

let dir: string;
let store: Store;
withTempStore('referrers', (t) => ({ dir, store } = t));

const DEBS = ArtifactTypes.debs;
const run = promisify(execFile);

/** Two small files in the temp folder, as `attach` takes them. */
async function files(tag: string) {
  const out = [];
  for (const name of ['b_1.0_all.deb', 'a_1.0_all.deb']) {
    const p = path.join(dir, `${tag}-${name}`);
    await fsp.writeFile(p, `${tag} ${name}`);
    out.push({ path: p, mediaType: MediaTypes.debianPackage, title: name });
  }
  return out;
}

async function manifestOf(d: Descriptor): Promise<ImageManifest> {
  return parseJson(await store.readBlob(d.digest), d.digest) as ImageManifest;
}

test('attach writes an OCI 1.1 artifact: empty config, titled layers sorted, the subject', async () => {
  const img = await imageFor(store, 'one');
  await store.tag('img:1', img);
  const tagged = await store.resolve('img:1');
  const a = await store.attach(tagged, DEBS, await files('x'), { 'io.example.note': 'n' });
  expect(a).toMatchObject({ mediaType: MediaTypes.imageManifest, artifactType: DEBS });
  expect(a.annotations).toEqual({ 'io.example.note': 'n' });
  const m = await manifestOf(a);
  expect(m.artifactType).toBe(DEBS);
  expect(m.config).toEqual(EMPTY_CONFIG);
  expect((await store.readBlob(EMPTY_CONFIG.digest)).toString()).toBe('{}');
  expect(sha256(Buffer.from('{}'))).toBe(EMPTY_CONFIG.digest);
  expect(m.layers.map((l) => l.annotations?.[Annotations.title])).toEqual([
    'a_1.0_all.deb',
    'b_1.0_all.deb',
  ]);
  expect(m.layers.every((l) => l.mediaType === MediaTypes.debianPackage)).toBe(true);
  expect((await store.readBlob(m.layers[0]!.digest)).toString()).toBe('x a_1.0_all.deb');
  // The subject is the manifest, without the tag's annotations.
  expect(m.subject).toEqual({ mediaType: img.mediaType, digest: img.digest, size: img.size });

  expect(await store.referrers(img.digest)).toEqual([a]);
  expect(await store.referrers(img.digest, DEBS)).toEqual([a]);
  expect(await store.referrers(img.digest, 'application/x-other')).toEqual([]);
  // Records are not tags.
  expect((await store.list()).map((t) => t.ref)).toEqual(['img:1']);
});

test('attaching the same set twice gives the same digest and one record', async () => {
  const img = await imageFor(store, 'one');
  await store.tag('img:1', img);
  const a = await store.attach(img, DEBS, await files('x'));
  const again = await store.attach(img, DEBS, (await files('x')).reverse());
  expect(again.digest).toBe(a.digest);
  const records = (await store.readIndex()).manifests.filter(
    (d) => d.annotations?.[SUBJECT_ANNOTATION] !== undefined,
  );
  expect(records).toHaveLength(1);
  const other = await store.attach(img, DEBS, await files('y'));
  expect(other.digest).not.toBe(a.digest);
  expect((await store.referrers(img.digest)).map((d) => d.digest).sort()).toEqual(
    [a.digest, other.digest].sort(),
  );
});

test('attaching with replace drops the other artifacts of its type on that subject, and only those', async () => {
  const img = await imageFor(store, 'one');
  const other = await imageFor(store, 'two');
  await store.tag('img:1', img);
  await store.tag('img:2', other);
  const SOURCES = ArtifactTypes.sources;
  const debs = await store.attach(img, DEBS, await files('d'));
  const onOther = await store.attach(other, SOURCES, await files('o'));
  const first = await store.attach(img, SOURCES, await files('x'), undefined, { replace: true });
  const second = await store.attach(img, SOURCES, await files('y'), undefined, { replace: true });
  expect(second.digest).not.toBe(first.digest);
  expect((await store.referrers(img.digest, SOURCES)).map((d) => d.digest)).toEqual([
    second.digest,
  ]);
  expect((await store.referrers(img.digest, DEBS)).map((d) => d.digest)).toEqual([debs.digest]);
  expect((await store.referrers(other.digest)).map((d) => d.digest)).toEqual([onOther.digest]);
  // The same bundle again: still one record.
  await store.attach(img, SOURCES, await files('y'), undefined, { replace: true });
  expect(await store.referrers(img.digest, SOURCES)).toHaveLength(1);
});

test('a file the store holds is attached as its blob: the same artifact, and held against gc', async () => {
  const img = await imageFor(store, 'one');
  await store.tag('img:1', img);
  const byPath = await store.attach(img, DEBS, await files('x'));
  const layers = (await manifestOf(byPath)).layers;
  // Aged, as a blob no tag reached for a while would be: attaching must hold it again.
  const old = new Date(Date.now() - 86_400_000);
  for (const l of layers) await fsp.utimes((await store.blobFile(l.digest)).path, old, old);
  const byBlob = await store.attach(
    img,
    DEBS,
    layers.map((l) => ({
      blob: { digest: l.digest, size: l.size },
      mediaType: l.mediaType,
      title: l.annotations?.[Annotations.title] ?? '',
    })),
  );
  expect(byBlob.digest).toBe(byPath.digest);
  for (const l of layers)
    expect((await fsp.stat((await store.blobFile(l.digest)).path)).mtimeMs).toBeGreaterThan(
      old.getTime() + 1000,
    );
  const absent = { digest: sha256('not stored'), size: 10 };
  await expect(
    store.attach(img, DEBS, [{ blob: absent, mediaType: MediaTypes.debianPackage, title: 'z' }]),
  ).rejects.toMatchObject({ code: 'NOT_FOUND' });
  const wrongSize = { digest: layers[0]!.digest, size: layers[0]!.size + 1 };
  await expect(
    store.attach(img, DEBS, [{ blob: wrongSize, mediaType: MediaTypes.debianPackage, title: 'z' }]),
  ).rejects.toThrow(/size/i);
});

test('attach refuses a subject the store lacks and two files of one title', async () => {
  const img = await imageFor(store, 'one');
  const missing = { ...img, digest: sha256('nothing') };
  await expect(store.attach(missing, DEBS, await files('x'))).rejects.toMatchObject({
    code: 'NOT_FOUND',
  });
  const [f] = await files('x');
  await expect(store.attach(img, DEBS, [f!, f!])).rejects.toThrow(
    /titled a_1.0_all.deb|titled b_1.0_all.deb/,
  );
});

test('an index works as a subject as well as a manifest', async () => {
  const img = await imageFor(store, 'one');
  const index = await store.putJson(
    { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [img] },
    MediaTypes.imageIndex,
  );
  await store.tag('tmpl:1', index);
  const onIndex = await store.attach(index, DEBS, await files('i'));
  const onImage = await store.attach(img, DEBS, await files('m'));
  expect(await store.referrers(index.digest)).toEqual([onIndex]);
  expect(await store.referrers(img.digest)).toEqual([onImage]);
  const reached = await store.reachable(index);
  for (const d of [onIndex, onImage]) {
    expect(reached.has(d.digest)).toBe(true);
    for (const l of (await manifestOf(d)).layers) expect(reached.has(l.digest)).toBe(true);
  }
});

test('gc keeps an artifact exactly while its subject is kept, and drops its record with it', async () => {
  const img = await imageFor(store, 'one');
  const kept = await imageFor(store, 'two');
  await store.tag('img:1', img);
  await store.tag('img:2', kept);
  const a = await store.attach(img, DEBS, await files('x'));
  const layers = (await manifestOf(a)).layers;
  const b = await store.attach(kept, DEBS, await files('y'));

  expect((await store.gc()).removed).toBe(0);
  expect(await store.hasBlob(a.digest)).toBe(true);
  for (const l of layers) expect(await store.hasBlob(l.digest)).toBe(true);

  await store.untag('img:1');
  const dry = await store.gc({ dryRun: true });
  expect(dry.blobs.map((x) => x.digest)).toEqual(expect.arrayContaining([a.digest, img.digest]));
  expect(await store.referrers(img.digest)).toEqual([a]);

  const r = await store.gc();
  expect(r.blobs.map((x) => x.digest)).toEqual(
    expect.arrayContaining([a.digest, img.digest, ...layers.map((l) => l.digest)]),
  );
  expect(await store.hasBlob(a.digest)).toBe(false);
  expect(await store.referrers(img.digest)).toEqual([]);
  // The other subject's artifact, and the empty config they share, stay.
  expect(await store.referrers(kept.digest)).toEqual([b]);
  expect(await store.hasBlob(b.digest)).toBe(true);
  expect(await store.hasBlob(EMPTY_CONFIG.digest)).toBe(true);
  expect((await store.fsck()).problems).toEqual([]);
});

test('fsck checks artifacts: a missing file of one, and a record whose subject is gone', async () => {
  const img = await imageFor(store, 'one');
  await store.tag('img:1', img);
  const a = await store.attach(img, DEBS, await files('x'));
  expect((await store.fsck()).problems).toEqual([]);
  const layer = (await manifestOf(a)).layers[0]!;
  await fsp.rm(store.blobPath(layer.digest));
  expect((await store.fsck()).problems).toEqual(
    expect.arrayContaining([expect.stringContaining(`missing blob ${layer.digest}`)]),
  );
  await fsp.rm(store.blobPath(img.digest));
  expect((await store.fsck()).problems).toEqual(
    expect.arrayContaining([`artifact ${a.digest}: its subject ${img.digest} is missing`]),
  );
});

test('save and load carry the artifacts attached to the image and to the index', async () => {
  const img = await imageFor(store, 'one');
  const index = await store.putJson(
    { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [img] },
    MediaTypes.imageIndex,
  );
  await store.tag('tmpl:1', index);
  const onIndex = await store.attach(index, DEBS, await files('i'));
  const onImage = await store.attach(img, DEBS, await files('m'));
  const file = path.join(dir, 'tmpl.tmpl.img');
  await saveArchive(store, 'tmpl:1', file);

  const other = await Store.open(path.join(dir, 'other'));
  const loaded = await loadArchive(other, file);
  expect(loaded.map((l) => l.ref)).toEqual(['tmpl:1']);
  expect(await other.referrers(index.digest)).toEqual([onIndex]);
  expect(await other.referrers(img.digest)).toEqual([onImage]);
  expect((await other.list()).map((t) => t.ref)).toEqual(['tmpl:1']);
  expect((await other.fsck()).problems).toEqual([]);
  const layer = (await manifestOf(onImage)).layers[0]!;
  expect((await other.readBlob(layer.digest)).toString()).toBe('m a_1.0_all.deb');
  // -t names the one image, not the artifacts beside it.
  const third = await Store.open(path.join(dir, 'third'));
  expect((await loadArchive(third, file, 'again:1')).map((l) => l.ref)).toEqual(['again:1']);

  // index.json lists the image alone (skopeo then takes it unasked); the records are beside it.
  const unpacked = path.join(dir, 'unpacked');
  await fsp.mkdir(unpacked);
  await run('tar', ['-xf', file, '-C', unpacked]);
  const top = JSON.parse(await fsp.readFile(path.join(unpacked, 'index.json'), 'utf8'));
  expect(top.manifests.map((d: Descriptor) => d.digest)).toEqual([index.digest]);
  const beside = JSON.parse(await fsp.readFile(path.join(unpacked, ARCHIVE_REFERRERS), 'utf8'));
  expect(beside.manifests.map((d: Descriptor) => d.digest).sort()).toEqual(
    [onIndex.digest, onImage.digest].sort(),
  );
  // An archive that recorded them in index.json, as strata save once did, loads them too.
  top.manifests.push(...beside.manifests);
  await fsp.writeFile(path.join(unpacked, 'index.json'), JSON.stringify(top));
  await fsp.rm(path.join(unpacked, ARCHIVE_REFERRERS));
  const older = path.join(dir, 'older.tmpl.img');
  await run('tar', ['-cf', older, '-C', unpacked, 'oci-layout', 'blobs', 'index.json']);
  const fourth = await Store.open(path.join(dir, 'fourth'));
  expect((await loadArchive(fourth, older)).map((l) => l.ref)).toEqual(['tmpl:1']);
  expect(await fourth.referrers(img.digest)).toEqual([onImage]);
});
