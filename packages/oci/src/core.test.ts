import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import {
  Annotations,
  ContentSource,
  Descriptor,
  Digest,
  DigestMismatchError,
  ImageIndex,
  InvalidArgumentError,
  MediaTypes,
  NotFoundError,
  drain,
  encodeJson,
  imageOf,
  indexOf,
  layerOf,
  requireManifest,
  resolveManifest,
  selectManifest,
  sha256,
  walkGraph,
} from './index';

function desc(mediaType: string, data: Buffer, extra: Partial<Descriptor> = {}): Descriptor {
  return { mediaType, digest: sha256(data), size: data.length, ...extra };
}

function img(role?: string, platform?: Descriptor['platform']): Descriptor {
  const data = Buffer.from(`${role}-${platform?.architecture}`);
  return desc(MediaTypes.imageManifest, data, {
    ...(role ? { annotations: { [Annotations.role]: role } } : {}),
    ...(platform ? { platform } : {}),
  });
}

const idx = (...manifests: Descriptor[]): ImageIndex => ({ schemaVersion: 2, manifests });
const amd64 = { architecture: 'amd64', os: 'linux' };
const arm64 = { architecture: 'arm64', os: 'linux' };

describe('selectManifest', () => {
  test('the manifest annotated with the role wins', () => {
    const r = img('rootfs');
    const b = img('buildchroot');
    expect(selectManifest(idx(b, r))).toEqual({ ok: true, descriptor: r });
    expect(selectManifest(idx(b, r), { role: 'buildchroot' })).toEqual({ ok: true, descriptor: b });
  });

  test('rootfs falls back to the only unannotated image, and only to it', () => {
    const plain = img();
    const b = img('buildchroot');
    expect(selectManifest(idx(plain, b))).toEqual({ ok: true, descriptor: plain });
    expect(selectManifest(idx(b))).toMatchObject({ ok: false, reason: 'none' });
    const two = idx(img(undefined, amd64), img(undefined, arm64));
    expect(selectManifest(two)).toMatchObject({ ok: false, reason: 'ambiguous' });
    // buildchroot never falls back.
    expect(selectManifest(idx(plain), { role: 'buildchroot' })).toMatchObject({ reason: 'none' });
  });

  test('a platform narrows the candidates; a descriptor without one matches any', () => {
    const a = img('rootfs', amd64);
    const b = img('rootfs', arm64);
    const v = img('rootfs', { ...arm64, variant: 'v8' });
    expect(selectManifest(idx(a, b), { platform: arm64 })).toEqual({ ok: true, descriptor: b });
    expect(selectManifest(idx(a, b))).toMatchObject({ ok: false, reason: 'ambiguous' });
    expect(selectManifest(idx(a, v), { platform: { ...arm64, variant: 'v8' } })).toEqual({
      ok: true,
      descriptor: v,
    });
    expect(selectManifest(idx(a), { platform: arm64 })).toMatchObject({ reason: 'none' });
    const bare = img('rootfs');
    expect(selectManifest(idx(bare), { platform: arm64 })).toEqual({ ok: true, descriptor: bare });
    const plainArm = img(undefined, arm64);
    expect(selectManifest(idx(img(undefined, amd64), plainArm), { platform: arm64 })).toEqual({
      ok: true,
      descriptor: plainArm,
    });
  });

  test('nested indexes and artifacts are never candidates', () => {
    const nested = desc(MediaTypes.imageIndex, Buffer.from('i'));
    const art = desc('application/vnd.example.sbom', Buffer.from('s'));
    expect(selectManifest(idx(nested, art))).toMatchObject({ ok: false, reason: 'none' });
  });

  test('requireManifest throws typed errors that say what the index holds', () => {
    expect(() => requireManifest(idx(img('rootfs')), { role: 'buildchroot' }, 'base:1')).toThrow(
      NotFoundError,
    );
    expect(() => requireManifest(idx(img('rootfs')), { role: 'buildchroot' }, 'base:1')).toThrow(
      'base:1 holds no buildchroot image (it has: rootfs)',
    );
    const two = idx(img('rootfs', amd64), img('rootfs', arm64));
    expect(() => requireManifest(two, {}, 'multi:1')).toThrow(InvalidArgumentError);
  });

  test('resolveManifest takes a plain image as the rootfs only', async () => {
    const m = img(undefined, amd64);
    const never = () => Promise.reject(new Error('not an index'));
    await expect(resolveManifest(m, {}, never, 'x')).resolves.toBe(m);
    await expect(resolveManifest(m, { role: 'buildchroot' }, never, 'x')).rejects.toThrow(
      NotFoundError,
    );
    await expect(resolveManifest(m, { platform: arm64 }, never, 'x')).rejects.toThrow(
      NotFoundError,
    );
    await expect(resolveManifest(m, { platform: arm64 }, never, 'app:1')).rejects.toThrow(
      'app:1 is an image for linux/amd64, not for linux/arm64',
    );
    const i = desc(MediaTypes.imageIndex, Buffer.from('idx'));
    const b = img('buildchroot');
    await expect(
      resolveManifest(i, { role: 'buildchroot' }, async () => idx(img('rootfs'), b), 'x'),
    ).resolves.toBe(b);
  });
});

/** An in-memory backend: blobs by digest, gzip layers. */
class MemorySource implements ContentSource {
  readonly blobs = new Map<string, Buffer>();
  put(mediaType: string, data: Buffer): Descriptor {
    const d = desc(mediaType, data);
    this.blobs.set(d.digest, data);
    return d;
  }
  putJson(mediaType: string, doc: unknown): Descriptor {
    return this.put(mediaType, encodeJson(doc));
  }
  async readBlob(d: Descriptor): Promise<Buffer> {
    const b = this.blobs.get(d.digest);
    if (!b) throw new NotFoundError(`no ${d.digest}`);
    if (sha256(b) !== d.digest) throw new DigestMismatchError(d.digest, sha256(b));
    return b;
  }
  async openBlob(d: Descriptor): Promise<Readable> {
    const b = this.blobs.get(d.digest);
    if (!b) throw new NotFoundError(`no ${d.digest}`);
    const { VerifyingStream } = await import('./index');
    return Readable.from([b.subarray(0, 7), b.subarray(7)]).pipe(
      new VerifyingStream({ digest: d.digest, size: d.size }, d.digest),
    );
  }
  async openDecompressed(d: Descriptor): Promise<Readable> {
    const gunzip = zlib.createGunzip();
    const blob = await this.openBlob(d);
    blob.on('error', (e) => gunzip.destroy(e));
    return blob.pipe(gunzip);
  }
}

/** A backend that remembers verified diffIDs, as the store does, and keeps the tars it opened. */
class KnowingSource extends MemorySource {
  readonly known = new Map<string, Digest>();
  readonly opened: Readable[] = [];
  async knownDiffId(d: Descriptor): Promise<Digest | undefined> {
    return this.known.get(d.digest);
  }
  override async openDecompressed(d: Descriptor): Promise<Readable> {
    const tar = await super.openDecompressed(d);
    this.opened.push(tar);
    return tar;
  }
}

function sampleImage(src: MemorySource, tars: Buffer[]) {
  const layers = tars.map((t) => src.put(MediaTypes.layerGzip, zlib.gzipSync(t)));
  const config = src.putJson(MediaTypes.imageConfig, {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) },
  });
  const manifest = src.putJson(MediaTypes.imageManifest, {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config,
    layers,
  });
  return { manifest, config, layers };
}

async function collect(s: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

describe('Image and Layer over a content source', () => {
  test('an image reads its manifest, config and lazy layers', async () => {
    const src = new MemorySource();
    const tars = [Buffer.alloc(3000, 1), Buffer.alloc(5000, 2)];
    const s = sampleImage(src, tars);
    const image = imageOf(src, s.manifest);
    expect((await image.config()).architecture).toBe('amd64');
    const layers = await image.layers();
    expect(layers).toHaveLength(2);
    expect(await layers[1]!.diffId()).toBe(sha256(tars[1]!));
    expect(sha256(await collect(await layers[1]!.openTar()))).toBe(sha256(tars[1]!));
    expect(sha256(await collect(await layers[0]!.open()))).toBe(
      sha256(src.blobs.get(s.layers[0]!.digest)!),
    );
  });

  test('two consumers of one layer each get a stream of their own, and both verify', async () => {
    const src = new MemorySource();
    const tar = Buffer.alloc(200_000, 7);
    const [layer] = await imageOf(src, sampleImage(src, [tar]).manifest).layers();
    const [a, b] = await Promise.all([layer!.openTar(), layer!.openTar()]);
    expect(a).not.toBe(b);
    const [x, y] = await Promise.all([collect(a), collect(b)]);
    expect(sha256(x)).toBe(sha256(tar));
    expect(sha256(y)).toBe(sha256(tar));
  });

  test('a tar that does not hash to its diffID errors at EOF', async () => {
    const src = new MemorySource();
    const s = sampleImage(src, [Buffer.alloc(100, 1)]);
    const wrong = layerOf(src, s.layers[0]!, sha256('something else'));
    await expect(drain(await wrong.openTar())).rejects.toBeInstanceOf(DigestMismatchError);
  });

  test('a corrupt blob fails both ways of reading it', async () => {
    const src = new MemorySource();
    const s = sampleImage(src, [Buffer.alloc(100, 1)]);
    src.blobs.set(s.layers[0]!.digest, zlib.gzipSync(Buffer.alloc(100, 2)));
    const [layer] = await imageOf(src, s.manifest).layers();
    await expect(drain(await layer!.open())).rejects.toBeInstanceOf(DigestMismatchError);
    await expect(drain(await layer!.openTar())).rejects.toBeInstanceOf(DigestMismatchError);
  });

  test('a diffID the backend knows spares hashing the tar, and a corrupt blob is still refused', async () => {
    const src = new KnowingSource();
    const tar = Buffer.alloc(100_000, 3);
    const s = sampleImage(src, [tar]);
    src.known.set(s.layers[0]!.digest, sha256(tar));
    const [layer] = await imageOf(src, s.manifest).layers();
    const read = await layer!.openTar();
    // The backend's own stream, with no diffID hasher piped behind it.
    expect(read).toBe(src.opened.at(-1));
    expect(sha256(await collect(read))).toBe(sha256(tar));
    src.blobs.set(s.layers[0]!.digest, zlib.gzipSync(Buffer.alloc(100_000, 4)));
    await expect(drain(await layer!.openTar())).rejects.toBeInstanceOf(DigestMismatchError);
  });

  test("a known diffID that is not the config's vouches for nothing", async () => {
    const src = new KnowingSource();
    const tar = Buffer.alloc(100, 1);
    const s = sampleImage(src, [tar]);
    src.known.set(s.layers[0]!.digest, sha256(tar));
    const wrong = layerOf(src, s.layers[0]!, sha256('something else'));
    const read = await wrong.openTar();
    expect(read).not.toBe(src.opened.at(-1));
    await expect(drain(read)).rejects.toBeInstanceOf(DigestMismatchError);
  });

  test('without a diffID one is computed once from the tar', async () => {
    const src = new MemorySource();
    const tar = Buffer.alloc(1000, 9);
    const d = src.put(MediaTypes.layerGzip, zlib.gzipSync(tar));
    const l = layerOf(src, d);
    expect(await l.diffId()).toBe(sha256(tar));
    expect(sha256(await collect(await l.openTar()))).toBe(sha256(tar));
  });

  test('an index opens the images it names', async () => {
    const src = new MemorySource();
    const s = sampleImage(src, [Buffer.alloc(10, 1)]);
    const i = src.putJson(MediaTypes.imageIndex, idx({ ...s.manifest }));
    const index = indexOf(src, i);
    const [m] = (await index.indexManifest()).manifests;
    expect((await (await index.image(m!)).manifest()).layers).toHaveLength(1);
  });
});

describe('walkGraph', () => {
  test('walks index → manifests → blobs, children first, each node once', async () => {
    const src = new MemorySource();
    const a = sampleImage(src, [Buffer.alloc(10, 1), Buffer.alloc(10, 2)]);
    const b = sampleImage(src, [Buffer.alloc(10, 1)]);
    const root = src.putJson(MediaTypes.imageIndex, idx(a.manifest, b.manifest, a.manifest));
    const fetched: string[] = [];
    const g = await walkGraph(root, async (d) => {
      fetched.push(d.digest);
      return src.readBlob(d);
    });
    expect(g.manifests.map((m) => m.descriptor.digest)).toEqual([
      a.manifest.digest,
      b.manifest.digest,
      root.digest,
    ]);
    expect(fetched).toHaveLength(3);
    // Two configs, two distinct layers (the first layer is shared).
    expect(g.blobs.size).toBe(4);
  });

  test('a root that is not a manifest is a blob; foreign layers can be skipped', async () => {
    const src = new MemorySource();
    const blob = src.put(MediaTypes.layerGzip, Buffer.from('x'));
    expect([...(await walkGraph(blob, () => Promise.reject(new Error()))).blobs.keys()]).toEqual([
      blob.digest,
    ]);
    const foreign: Descriptor = {
      mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
      digest: sha256('f'),
      size: 1,
      urls: ['https://example.com/f'],
    };
    const config = src.putJson(MediaTypes.imageConfig, {});
    const m = src.putJson(MediaTypes.imageManifest, {
      schemaVersion: 2,
      config,
      layers: [foreign],
    });
    const fetch = (d: Descriptor) => src.readBlob(d);
    expect((await walkGraph(m, fetch)).blobs.has(foreign.digest)).toBe(true);
    expect((await walkGraph(m, fetch, { skipForeign: true })).blobs.has(foreign.digest)).toBe(
      false,
    );
  });

  test('a malformed descriptor is named by its JSON path, with what is wrong with it', async () => {
    const src = new MemorySource();
    const layer = src.put(MediaTypes.layerGzip, Buffer.from('l'));
    const config = src.putJson(MediaTypes.imageConfig, {});
    const m = src.putJson(MediaTypes.imageManifest, {
      schemaVersion: 2,
      config,
      layers: [layer, layer, { ...layer, size: 2 ** 62 }],
    });
    await expect(walkGraph(m, (d) => src.readBlob(d))).rejects.toThrow(
      `invalid manifest ${m.digest}: layers[2].size: larger than Number.MAX_SAFE_INTEGER (9007199254740991)`,
    );
    for (const [doc, why] of [
      [{ schemaVersion: 2, config: 'x', layers: [] }, 'config: not an object'],
      [
        { schemaVersion: 2, config, layers: [{ ...layer, size: -1 }] },
        'layers[0].size: -1 is negative',
      ],
      [
        { schemaVersion: 2, config, layers: [{ ...layer, size: 1.5 }] },
        'layers[0].size: 1.5 is not a whole number',
      ],
      [
        { schemaVersion: 2, config, layers: [{ ...layer, size: '1' }] },
        'layers[0].size: not a number',
      ],
      [
        { schemaVersion: 2, config: { ...config, mediaType: 1 }, layers: [] },
        'config.mediaType: not a string',
      ],
    ] as const) {
      const bad = src.putJson(MediaTypes.imageManifest, doc);
      await expect(walkGraph(bad, (d) => src.readBlob(d))).rejects.toThrow(
        `invalid manifest ${bad.digest}: ${why}`,
      );
    }
    const index = src.putJson(MediaTypes.imageIndex, {
      schemaVersion: 2,
      manifests: [m, { ...m, digest: 'sha256:abc' }],
    });
    await expect(walkGraph(index, (d) => src.readBlob(d))).rejects.toThrow(
      `invalid manifest ${index.digest}: manifests[1].digest: not a digest (sha256:<64 hex>)`,
    );
  });

  test('a malformed manifest is an InvalidDocumentError', async () => {
    const src = new MemorySource();
    const m = src.putJson(MediaTypes.imageManifest, { schemaVersion: 2, layers: [] });
    await expect(walkGraph(m, (d) => src.readBlob(d))).rejects.toMatchObject({
      code: 'INVALID_DOCUMENT',
    });
  });
});
