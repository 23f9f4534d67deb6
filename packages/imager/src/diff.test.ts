import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  Descriptor,
  DigestMismatchError,
  ImageConfig,
  ImageManifest,
  MediaTypes,
  sha256,
  TemplateMetadata,
  validateDiffReport,
} from '@strata/oci';
import { encodeTarHeader, TAR_END, tarPadding } from '@strata/layer';
import { Store } from '@strata/store';
import { diffImages } from './diff';

function tarOf(files: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [p, body] of Object.entries(files)) {
    const type = p.endsWith('/') ? 'dir' : 'file';
    const b = Buffer.from(body);
    parts.push(
      encodeTarHeader({
        path: p,
        type,
        mode: type === 'dir' ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        size: type === 'file' ? b.length : 0,
        mtime: 0,
        linkpath: '',
        devmajor: 0,
        devminor: 0,
        xattrs: {},
      }),
    );
    if (type === 'file') parts.push(b, Buffer.alloc(tarPadding(b.length)));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

const meta = (over: Partial<TemplateMetadata>): TemplateMetadata => ({
  schemaVersion: 1,
  name: 'base',
  created: '2024-01-01T00:00:00Z',
  features: ['minbase'],
  architecture: 'amd64',
  distribution: {},
  packages: [{ name: 'libc6', version: '2.36-9', architecture: 'amd64', source: 'glibc' }],
  exclusions: [{ pattern: 'etc/hostname', reason: 'host', action: 'drop', matched: 1 }],
  layers: [],
  ...over,
});

let tmp: string;
let store: Store;
beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-diff-'));
  store = await Store.open(path.join(tmp, 'store'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function put(
  tars: Buffer[],
  strata: TemplateMetadata,
  blobs?: Buffer[],
  env?: string[],
): Promise<Descriptor> {
  const layers: Descriptor[] = [];
  for (const [i, tar] of tars.entries()) {
    const info = await store.putBytes(blobs?.[i] ?? gzipSync(tar));
    layers.push({ mediaType: MediaTypes.layerGzip, digest: info.digest, size: info.size });
  }
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) },
    strata,
    ...(env ? { config: { Env: env } } : {}),
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config: await store.putJson(config, MediaTypes.imageConfig),
    layers,
  };
  return store.putJson(manifest, MediaTypes.imageManifest);
}

const side = (ref: string, d: Descriptor) => ({ ref, image: store.image(d) });

test('two images: packages, files, sizes and metadata, in the documented shape', async () => {
  const base = tarOf({ 'etc/': '', 'etc/os-release': 'bookworm', 'usr/': '', 'usr/bin/': '' });
  const a = await put([base], meta({}));
  const b = await put(
    [base, tarOf({ 'usr/bin/curl': 'curl binary', 'etc/os-release': 'trixie' })],
    meta({
      name: 'derived',
      features: ['minbase', 'net'],
      packages: [
        { name: 'curl', version: '7.88.1-10', architecture: 'amd64', source: 'curl' },
        { name: 'libc6', version: '2.36-9+deb12u1', architecture: 'amd64', source: 'glibc' },
      ],
      baseChain: [{ name: 'base', ref: 'base:v1', digest: a.digest }],
      labels: { team: 'middleware' },
    }),
  );
  const r = await diffImages(side('base:v1', a), side('derived:1', b));
  expect(validateDiffReport(r)).toEqual({ ok: true, value: r });
  expect(r.identical).toBe(false);
  expect(r.a).toEqual({ ref: 'base:v1', digest: a.digest, platform: 'linux/amd64', name: 'base' });
  expect(r.packages.added.map((p) => p.name)).toEqual(['curl']);
  expect(r.packages.changed).toEqual([
    {
      name: 'libc6',
      architecture: 'amd64',
      old: '2.36-9',
      new: '2.36-9+deb12u1',
      direction: 'upgrade',
    },
  ]);
  expect(r.files.added.map((f) => [f.path, f.size])).toEqual([['usr/bin/curl', 11]]);
  expect(r.files.changed.map((f) => [f.path, f.changes])).toEqual([
    ['etc/os-release', ['content']],
  ]);
  expect(r.sizes.total).toEqual({ path: '', old: 8, new: 17, delta: 9 });
  expect(r.sizes.dirs).toEqual([
    { path: 'etc', old: 8, new: 6, delta: -2 },
    { path: 'usr', old: 0, new: 11, delta: 11 },
  ]);
  expect(r.metadata).toEqual({
    name: { old: 'base', new: 'derived' },
    features: { added: ['net'], removed: [] },
    exclusions: { added: [], removed: [], changed: [] },
    baseChain: { old: [], new: [{ name: 'base', ref: 'base:v1', digest: a.digest }] },
    labels: { added: { team: 'middleware' }, removed: {}, changed: {} },
    env: { added: {}, removed: {}, changed: {} },
  });
});

test('one tree imported at two times, or with another ENV, is not identical: the date and ENV say why', async () => {
  const t = tarOf({ 'etc/': '', 'etc/a': 'a' });
  const a = await put([t], meta({}), undefined, ['PATH=/usr/bin', 'A=1', 'GONE=x']);
  const later = await put([t], meta({ created: '2024-02-01T00:00:00Z' }), undefined, [
    'PATH=/usr/bin',
    'A=1',
    'GONE=x',
  ]);
  const r = await diffImages(side('x', a), side('y', later));
  expect(r.identical).toBe(false);
  expect(r.metadata.created).toEqual({ old: '2024-01-01T00:00:00Z', new: '2024-02-01T00:00:00Z' });
  expect(validateDiffReport(r).ok).toBe(true);
  const env = await put([t], meta({}), undefined, ['PATH=/opt/bin:/usr/bin', 'A=1', 'NEW=y']);
  const e = await diffImages(side('x', a), side('z', env));
  expect(e.identical).toBe(false);
  expect(e.metadata.created).toBeUndefined();
  expect(e.metadata.env).toEqual({
    added: { NEW: 'y' },
    removed: { GONE: 'x' },
    changed: { PATH: { old: '/usr/bin', new: '/opt/bin:/usr/bin' } },
  });
});

test('the same image, or the same content under two manifests, is identical', async () => {
  const t = tarOf({ 'etc/': '', 'etc/a': 'a' });
  const a = await put([t], meta({}));
  const same = await diffImages(side('x', a), side('y', a));
  expect(same.identical).toBe(true);
  expect(same.sizes.total).toEqual({ path: '', old: 1, new: 1, delta: 0 });
  // Another compression, so another manifest: the trees are compared, and agree.
  const b = await put([t], meta({}), [gzipSync(t, { level: 1 })]);
  expect(b.digest).not.toBe(a.digest);
  const r = await diffImages(side('x', a), side('z', b));
  expect(r.identical).toBe(true);
  expect(validateDiffReport(r).ok).toBe(true);
});

test('a layer that is not what its diffID says fails the diff', async () => {
  const good = tarOf({ 'a/': '', 'a/f': 'good' });
  const a = await put([good], meta({}));
  // Layers with one diffID are one layer, read once: the bad one sits on another base.
  const other = tarOf({ 'b/': '' });
  const evil = gzipSync(tarOf({ 'a/': '', 'a/f': 'evil' }));
  const bad = await put([other, good], meta({}), [gzipSync(other), evil]);
  await expect(diffImages(side('a', a), side('bad', bad))).rejects.toThrow(DigestMismatchError);
});
