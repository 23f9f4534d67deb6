import { Readable } from 'node:stream';
import {
  Annotations,
  Descriptor,
  ImageIndex,
  MediaTypes,
  StrataError,
  TemplateMetadata,
  sha256,
} from '@strata/oci';
import { Store } from './store';
import { withTempStore } from './testing';
import { NewImage, writeBundle, writeImage } from './image-writer';

let store: Store;
withTempStore('writer', (t) => ({ store } = t));

const created = '2025-05-10T08:47:33Z';

function metadata(name: string): TemplateMetadata {
  return {
    schemaVersion: 1,
    name,
    created,
    features: [],
    architecture: 'arm64',
    distribution: {},
    packages: [],
    exclusions: [],
    layers: [],
  };
}

async function image(name: string, content: string): Promise<NewImage> {
  const blob = await store.putBlob(Readable.from([Buffer.from(content)]));
  return {
    metadata: metadata(name),
    layers: [
      {
        descriptor: { mediaType: MediaTypes.layerZstd, digest: blob.digest, size: blob.size },
        diffId: sha256(`tar of ${content}`),
        history: { created, created_by: `made ${name}` },
      },
    ],
    platform: { architecture: 'arm64', variant: 'v8' },
    env: ['PATH=/usr/bin:/bin'],
    labels: { [Annotations.title]: name },
    annotations: { [Annotations.title]: name, [Annotations.created]: created },
  };
}

test('writeImage writes a config and a manifest that carry the layers, date and platform', async () => {
  const w = await writeImage(store, await image('one', 'layer one'));
  expect(w.descriptor.platform).toEqual({ architecture: 'arm64', os: 'linux', variant: 'v8' });
  expect(w.config.created).toBe(created);
  expect(w.config.rootfs.diff_ids).toEqual([sha256('tar of layer one')]);
  expect(w.config.history).toEqual([{ created, created_by: 'made one' }]);
  expect(w.config.strata?.name).toBe('one');
  expect(await store.readManifest(w.descriptor)).toEqual(w.manifest);
  expect(await store.readConfig(w.manifest.config)).toEqual(w.config);
});

test('writeImage refuses metadata its schema rejects', async () => {
  const bad = await image('bad', 'layer bad');
  (bad.metadata as unknown as Record<string, unknown>).unknownKey = 1;
  await expect(writeImage(store, bad)).rejects.toThrow(StrataError);
  await expect(writeImage(store, bad)).rejects.toThrow(/template metadata/);
});

test('writeBundle holds the rootfs then the buildchroot, each with its role and platform', async () => {
  const rootfs = (await writeImage(store, await image('rootfs', 'r'))).descriptor;
  const bc = (await writeImage(store, await image('bc', 'b'))).descriptor;
  const d = await writeBundle(store, {
    rootfs: { descriptor: rootfs },
    buildchroot: { descriptor: bc, annotations: { 'io.strata.source': 'bc:1' } },
  });
  expect(d.mediaType).toBe(MediaTypes.imageIndex);
  const index = JSON.parse((await store.readBlob(d.digest, d.size)).toString()) as ImageIndex;
  const strip = (x: Descriptor) => ({ digest: x.digest, platform: x.platform });
  expect(index.manifests.map((m) => m.annotations)).toEqual([
    { [Annotations.role]: 'rootfs' },
    { [Annotations.role]: 'buildchroot', 'io.strata.source': 'bc:1' },
  ]);
  expect(index.manifests.map(strip)).toEqual([strip(rootfs), strip(bc)]);
  expect(index.annotations).toEqual({ 'io.strata.bundle': 'rootfs+buildchroot' });
});

test('writeImage puts the history entries of steps that made no layer among the layers', async () => {
  const img = await image('empty-steps', 'one');
  const layer = img.layers[0];
  if (!layer) throw new Error('no layer');
  const second = { ...layer, history: { created, created_by: 'RUN echo b > /b' } };
  const { manifest, config } = await writeImage(store, {
    ...img,
    layers: [layer, second],
    emptyHistory: [
      { after: 1, history: { created, created_by: 'RUN true' } },
      { after: 2, history: { created, created_by: 'RUN :' } },
    ],
  });
  expect(manifest.layers).toHaveLength(2);
  expect(config.rootfs.diff_ids).toHaveLength(2);
  expect(config.history).toEqual([
    layer.history,
    { created, created_by: 'RUN true', empty_layer: true },
    second.history,
    { created, created_by: 'RUN :', empty_layer: true },
  ]);
});
