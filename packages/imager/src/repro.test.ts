import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  Annotations,
  Descriptor,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  MediaTypes,
  sha256,
} from '@strata/oci';
import { Store } from '@strata/store';
import { compareBuilds, compareLayerEntries, describeReproReport, jsonDifferences } from './repro';
import { tarOf, TarSpec } from '@strata/layer/testing';

let tmp: string;
let store: Store;
beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-repro-'));
  store = await Store.open(path.join(tmp, 'store'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const source = (tar: Buffer) => ({
  openTar: async () => (await import('node:stream')).Readable.from([tar]),
});

/** An image of `layers` (each a tar of its entries), its history naming each step. */
async function image(layers: Array<{ step: string; entries: TarSpec[] }>, created: string) {
  const tars = layers.map((l) => tarOf(l.entries));
  const descs: Descriptor[] = [];
  for (const t of tars) {
    const info = await store.putBytes(gzipSync(t));
    descs.push({ mediaType: MediaTypes.layerGzip, digest: info.digest, size: info.size });
  }
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    created,
    rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) },
    history: layers.map((l) => ({ created, created_by: l.step })),
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config: await store.putJson(config, MediaTypes.imageConfig),
    layers: descs,
  };
  return store.putJson(manifest, MediaTypes.imageManifest);
}

const side = (descriptor: Descriptor) => ({
  descriptor,
  image: (d: Descriptor) => store.image(d),
  index: (d: Descriptor) => store.index(d),
});

const base: TarSpec[] = [
  { path: 'etc/' },
  { path: 'etc/os-release', body: 'bookworm' },
  { path: 'usr/' },
  { path: 'usr/bin/' },
];

test('two layers that differ: each path, and how it differs', async () => {
  const a = tarOf([
    { path: 'etc/' },
    { path: 'etc/ld.so.cache', body: 'cache one' },
    { path: 'var/log/dpkg.log', body: 'log' },
    { path: 'usr/bin/tool', body: 'x', mode: 0o755 },
    { path: 'usr/lib/x.pyc', body: 'pyc', mtime: 1700000000 },
  ]);
  const b = tarOf([
    { path: 'etc/' },
    { path: 'etc/ld.so.cache', body: 'cache two' },
    { path: 'usr/bin/tool', body: 'x', mode: 0o700, uid: 1 },
    { path: 'usr/lib/x.pyc', body: 'pyc', mtime: 1700000001 },
    { path: 'etc/machine-id', body: '1234' },
  ]);
  expect(await compareLayerEntries(source(a), source(b))).toEqual([
    { path: 'etc/ld.so.cache', fields: ['content'] },
    { path: 'etc/machine-id', fields: ['only in b'] },
    { path: 'usr/bin/tool', fields: ['mode', 'owner'] },
    { path: 'usr/lib/x.pyc', fields: ['mtime'] },
    { path: 'var/log/dpkg.log', fields: ['only in a'] },
  ]);
  expect(await compareLayerEntries(source(a), source(a))).toEqual([]);
});

test('the same entries in another order: the first out of place', async () => {
  const a = tarOf([{ path: 'a' }, { path: 'b' }, { path: 'c' }]);
  const b = tarOf([{ path: 'a' }, { path: 'c' }, { path: 'b' }]);
  expect(await compareLayerEntries(source(a), source(b))).toEqual([
    { path: 'b', fields: ['order'] },
  ]);
});

test('a failed comparison names the layer, its step and its paths; equal builds name nothing', async () => {
  const step = 'INSTALL python3-minimal';
  const a = await image(
    [
      { step: 'BOOTSTRAP bookworm', entries: base },
      { step, entries: [{ path: 'usr/lib/x.pyc', body: 'one' }] },
    ],
    '2023-11-14T22:13:20Z',
  );
  const b = await image(
    [
      { step: 'BOOTSTRAP bookworm', entries: base },
      { step, entries: [{ path: 'usr/lib/x.pyc', body: 'two' }] },
    ],
    '2023-11-14T22:13:21Z',
  );
  const r = await compareBuilds(side(a), side(b));
  expect(r.same).toBe(false);
  expect(r.layers.map((l) => [l.image, l.index, l.createdBy])).toEqual([['rootfs', 1, step]]);
  expect(describeReproReport(r)).toBe(
    [
      `the two builds differ: ${a.digest} and ${b.digest}`,
      `  rootfs layer 1 (${step}): 1 entry differs:`,
      '    usr/lib/x.pyc: content',
      '  manifest: config.digest, layers[1].digest',
      '  config: created, history[0].created, history[1].created, rootfs.diff_ids[1]',
    ].join('\n'),
  );

  const same = await compareBuilds(side(a), side(a));
  expect(same).toMatchObject({ same: true, layers: [], documents: [] });
  expect(describeReproReport(same)).toBe('');
});

test('in an index, the image that differs is named by its platform and role', async () => {
  const one = await image([{ step: 'BOOTSTRAP bookworm', entries: base }], '2023-11-14T22:13:20Z');
  const two = await image(
    [{ step: 'BOOTSTRAP bookworm', entries: [...base, { path: 'etc/machine-id', body: 'x' }] }],
    '2023-11-14T22:13:20Z',
  );
  const index = async (chroot: Descriptor) => {
    const doc: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaTypes.imageIndex,
      manifests: [
        {
          ...one,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
          annotations: { [Annotations.role]: 'rootfs' },
        },
        {
          ...chroot,
          platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
          annotations: { [Annotations.role]: 'buildchroot' },
        },
      ],
    };
    return store.putJson(doc, MediaTypes.imageIndex);
  };
  const r = await compareBuilds(side(await index(one)), side(await index(two)));
  expect(r.layers).toEqual([
    expect.objectContaining({
      image: 'linux/arm64/v8 buildchroot',
      index: 0,
      createdBy: 'BOOTSTRAP bookworm',
      entries: [{ path: 'etc/machine-id', fields: ['only in b'] }],
    }),
  ]);
  expect(describeReproReport(r)).toContain(
    'linux/arm64/v8 buildchroot layer 0 (BOOTSTRAP bookworm): 1 entry differs:\n    etc/machine-id: only in b',
  );
  expect(r.documents.map((d) => d.where)).toContain('index');
});

test('jsonDifferences names leaf paths, array lengths and a capped count', () => {
  expect(
    jsonDifferences({ a: 1, b: [1, 2], c: { d: 'x' } }, { a: 1, b: [1], c: { d: 'y' } }),
  ).toEqual(['b.length', 'c.d']);
  expect(jsonDifferences({ x: [1, 2, 3] }, { x: [4, 5, 6] }, 2)).toEqual(['x[0]', 'x[1]']);
  expect(jsonDifferences({ a: 1 }, { a: 1 })).toEqual([]);
});
