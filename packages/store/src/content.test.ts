import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import {
  Annotations,
  CorruptError,
  Descriptor,
  DigestMismatchError,
  InvalidArgumentError,
  Layer,
  MediaTypes,
  drain,
  sha256,
} from '@strata/oci';
import { openArchive } from './archive-content';
import { storeContent } from './content';
import { saveArchive } from './archive';
import { Store } from './store';
import { withTempStore } from './testing';

let dir: string;
let store: Store;
withTempStore('content', (t) => ({ dir, store } = t));

async function collect(s: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** Not a real tar: the core never parses it, it only decompresses and hashes it. */
function tarOf(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

async function putImage(
  tars: Array<{ tar: Buffer; c: 'gzip' | 'zstd' | 'none' }>,
  diffIds = tars.map((t) => sha256(t.tar)),
) {
  const layers: Descriptor[] = [];
  for (const { tar, c } of tars) {
    const blob =
      c === 'gzip'
        ? zlib.gzipSync(tar)
        : c === 'zstd'
          ? execFileSync('zstd', ['-q', '-c'], { input: tar })
          : tar;
    const info = await store.putBytes(blob);
    const mediaType =
      c === 'gzip'
        ? MediaTypes.layerGzip
        : c === 'zstd'
          ? MediaTypes.layerZstd
          : MediaTypes.layerTar;
    layers.push({ mediaType, ...info });
  }
  const config = await store.putJson(
    {
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: diffIds },
    },
    MediaTypes.imageConfig,
  );
  const manifest = await store.putJson(
    { schemaVersion: 2, mediaType: MediaTypes.imageManifest, config, layers },
    MediaTypes.imageManifest,
  );
  return { manifest, layers };
}

describe('the store as a backend', () => {
  test('layers open lazily and verify; every compression reads back', async () => {
    const tars = [
      { tar: tarOf(1, 300_000), c: 'zstd' as const },
      { tar: tarOf(2, 200_000), c: 'gzip' as const },
      { tar: tarOf(3, 5_000), c: 'none' as const },
    ];
    const { manifest } = await putImage(tars);
    const layers = await store.image(manifest).layers();
    for (const [i, l] of layers.entries()) {
      expect(sha256(await collect(await l.openTar()))).toBe(sha256(tars[i]!.tar));
      expect(await l.diffId()).toBe(sha256(tars[i]!.tar));
    }
  });

  test('two consumers reading one layer at once each get their own stream, and both verify', async () => {
    const tar = tarOf(4, 3 << 20);
    const { manifest } = await putImage([{ tar, c: 'zstd' }]);
    const [layer] = (await store.image(manifest).layers()) as [Layer];
    const [a, b, c] = await Promise.all([layer.openTar(), layer.openTar(), layer.open()]);
    const [x, y, z] = await Promise.all([collect(a), collect(b), collect(c)]);
    expect(sha256(x)).toBe(sha256(tar));
    expect(sha256(y)).toBe(sha256(tar));
    expect(sha256(z)).toBe(layer.descriptor.digest);
  });

  test('a corrupt blob fails every reader, at the latest at EOF', async () => {
    const tar = tarOf(5, 100_000);
    const { manifest, layers } = await putImage([{ tar, c: 'gzip' }]);
    // Another valid gzip stream of the same length would still be caught by the digests.
    const file = store.blobPath(layers[0]!.digest);
    const bytes = await fsp.readFile(file);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 0xff;
    await fsp.chmod(file, 0o644);
    await fsp.writeFile(file, bytes);
    const [layer] = (await store.image(manifest).layers()) as [Layer];
    const results = await Promise.allSettled([
      layer.openTar().then(drain),
      layer.openTar().then(drain),
      layer.open().then(drain),
    ]);
    for (const r of results) expect(r.status).toBe('rejected');
    await expect(layer.open().then(drain)).rejects.toBeInstanceOf(DigestMismatchError);
  });

  test.each(['zstd', 'gzip'] as const)(
    'a damaged small %s blob fails as a digest mismatch with the fsck hint, even when read late',
    async (c) => {
      const { layers } = await putImage([{ tar: tarOf(11, 4000), c }]);
      const d = layers[0]!;
      const file = store.blobPath(d.digest);
      const bytes = await fsp.readFile(file);
      const i = bytes.length >> 1;
      bytes[i] = (bytes[i] as number) ^ 0xff;
      await fsp.writeFile(file, bytes);
      const content = storeContent(store);
      // The decompressor fails on such a blob within milliseconds: several runs, and a reader
      // that starts only after that, must each get the one error, never an unhandled event.
      for (let run = 0; run < 6; run++) {
        const tar = await content.openDecompressed(d, c);
        await new Promise((resolve) => setTimeout(resolve, 100));
        const e = (await drain(tar).then(
          () => undefined,
          (err: unknown) => err,
        )) as DigestMismatchError;
        expect(e).toBeInstanceOf(DigestMismatchError);
        expect(e.message).toContain(`blob ${d.digest}`);
        expect(e.hint).toContain('strata fsck');
      }
    },
  );

  test('a blob of the right digest that is not valid zstd is a CorruptError naming its whole digest', async () => {
    const info = await store.putBytes(Buffer.from('not zstd at all, but stored as such'));
    const d = { mediaType: MediaTypes.layerZstd, ...info };
    const tar = await storeContent(store).openDecompressed(d, 'zstd');
    const e = (await drain(tar).then(
      () => undefined,
      (err: unknown) => err,
    )) as CorruptError;
    expect(e).toBeInstanceOf(CorruptError);
    expect(e.message).toContain(`blob ${d.digest} is not valid zstd data`);
    expect(e.message).not.toContain(`${d.digest.slice(-20)} :`);
  });

  test('a tar whose diffID differs from the config fails at EOF', async () => {
    const { manifest } = await putImage([{ tar: tarOf(6, 10_000), c: 'gzip' }], [sha256('x')]);
    const [layer] = (await store.image(manifest).layers()) as [Layer];
    await expect(layer.openTar().then(drain)).rejects.toBeInstanceOf(DigestMismatchError);
  });

  test('roles resolve by the one rule; two unannotated images are ambiguous', async () => {
    const a = (await putImage([{ tar: tarOf(7, 10), c: 'none' }])).manifest;
    const b = (await putImage([{ tar: tarOf(8, 10), c: 'none' }])).manifest;
    const role = (d: Descriptor, r: string) => ({ ...d, annotations: { [Annotations.role]: r } });
    const bundle = await store.putJson(
      { schemaVersion: 2, manifests: [role(a, 'rootfs'), role(b, 'buildchroot')] },
      MediaTypes.imageIndex,
    );
    expect((await store.imageOfRole(bundle))?.digest).toBe(a.digest);
    expect((await store.imageOfRole(bundle, 'buildchroot'))?.digest).toBe(b.digest);
    const one = await store.putJson({ schemaVersion: 2, manifests: [a] }, MediaTypes.imageIndex);
    expect((await store.imageOfRole(one))?.digest).toBe(a.digest);
    expect(await store.imageOfRole(one, 'buildchroot')).toBeUndefined();
    const two = await store.putJson({ schemaVersion: 2, manifests: [a, b] }, MediaTypes.imageIndex);
    await expect(store.imageOfRole(two)).rejects.toBeInstanceOf(InvalidArgumentError);
    const picked = await store.selectImage(bundle, { role: 'buildchroot' }, 'bundle:1');
    expect(picked.descriptor.digest).toBe(b.digest);
  });
});

describe('an OCI archive as a backend', () => {
  test('reads a saved image in place, layers verified, concurrently', async () => {
    const tars = [
      { tar: tarOf(9, 400_000), c: 'zstd' as const },
      { tar: tarOf(10, 100_000), c: 'gzip' as const },
    ];
    const { manifest } = await putImage(tars);
    await store.tag('arch:1', manifest);
    const file = path.join(dir, 'a.tmpl.img');
    await saveArchive(store, 'arch:1', file);
    const archive = await openArchive(file);
    expect(archive.index.manifests[0]?.digest).toBe(manifest.digest);
    const image = await archive.selectImage({});
    expect((await image.config()).architecture).toBe('amd64');
    const layers = await image.layers();
    const reads = await Promise.all(
      [...layers, ...layers].map(async (l) => collect(await l.openTar())),
    );
    expect(reads.map((r) => sha256(r))).toEqual([...tars, ...tars].map((t) => sha256(t.tar)));
    expect(sha256(await collect(await layers[0]!.open()))).toBe(layers[0]!.descriptor.digest);
  });
});
