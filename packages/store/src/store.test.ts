import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import {
  Digest,
  sha256,
  DigestMismatchError,
  MediaTypes,
  SizeMismatchError,
  NotFoundError,
  StrataError,
} from '@strata/oci';
import type { FileHandle } from 'node:fs/promises';
import { Store } from './store';
import { holdLease, imageFor, withTempStore } from './testing';
import { normalizeTag } from './refs';
import { copyToFile } from './ingest';
import { removeUnlessTouched } from './gc';
import { saveArchive, loadArchive } from './archive';

const run = promisify(execFile);
let dir: string;
let store: Store;
withTempStore('store', (t) => ({ dir, store } = t));

async function readAll(s: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function ingestFiles(): Promise<string[]> {
  return fsp.readdir(path.join(store.root, '.strata', 'ingest'));
}

test('lays out an OCI image layout', async () => {
  expect(JSON.parse(await fsp.readFile(path.join(store.root, 'oci-layout'), 'utf8'))).toEqual({
    imageLayoutVersion: '1.0.0',
  });
  expect(await store.readIndex()).toEqual({ schemaVersion: 2, manifests: [] });
});

test('ingests by digest, idempotently', async () => {
  const data = Buffer.from('hello strata');
  const a = await store.putBytes(data);
  expect(a.digest).toBe(sha256(data));
  expect(await fsp.readFile(store.blobPath(a.digest))).toEqual(data);
  const b = await store.putBytes(data, { digest: a.digest, size: data.length });
  expect(b).toEqual(a);
  expect(await ingestFiles()).toEqual([]);
});

test('putting bytes the store holds writes nothing and refreshes the blob mtime (for gc)', async () => {
  const data = Buffer.from('held already');
  const { digest } = await store.putBytes(data);
  const old = new Date(Date.now() - 3600_000);
  await fsp.utimes(store.blobPath(digest), old, old);
  const before = await fsp.stat(store.blobPath(digest));
  expect(await store.putBytes(data)).toEqual({ digest, size: data.length });
  const after = await fsp.stat(store.blobPath(digest));
  expect(after.ino).toBe(before.ino);
  expect(after.mtimeMs).toBeGreaterThan(old.getTime() + 1000);
  expect(await ingestFiles()).toEqual([]);
});

/** Flip one byte in the middle of a stored blob: same size, another hash. */
async function damage(digest: Digest): Promise<void> {
  const p = store.blobPath(digest);
  const buf = await fsp.readFile(p);
  const i = buf.length >> 1;
  buf[i] = (buf[i] as number) ^ 0xff;
  await fsp.writeFile(p, buf);
}

test('putting a blob over a damaged copy of it replaces the copy', async () => {
  const data = Buffer.from('a layer, as a rebuild or a new template create writes it again');
  const { digest } = await store.putBlob(Readable.from([data]));
  await damage(digest);
  expect((await store.fsck()).problems).toHaveLength(1);
  expect(await store.putBlob(Readable.from([data]))).toEqual({ digest, size: data.length });
  expect((await fsp.readFile(store.blobPath(digest))).equals(data)).toBe(true);
  expect((await store.fsck()).problems).toEqual([]);
  expect(await ingestFiles()).toEqual([]);
});

test('putting bytes over a damaged copy of them replaces the copy', async () => {
  const data = Buffer.from('{"a manifest":"or a config"}');
  const { digest } = await store.putBytes(data);
  await damage(digest);
  expect(await store.putBytes(data, { digest, size: data.length })).toEqual({
    digest,
    size: data.length,
  });
  expect(await store.readBlob(digest, data.length)).toEqual(data);
  await fsp.truncate(store.blobPath(digest), 3);
  await store.putBytes(data);
  expect(await store.readBlob(digest, data.length)).toEqual(data);
});

test('a digest or size mismatch stores nothing', async () => {
  const data = Buffer.from('payload');
  const wrong = sha256('other');
  await expect(store.putBytes(data, { digest: wrong })).rejects.toBeInstanceOf(DigestMismatchError);
  await expect(store.putBytes(data, { size: 3 })).rejects.toBeInstanceOf(SizeMismatchError);
  await expect(store.putBytes(data, { size: 30 })).rejects.toBeInstanceOf(SizeMismatchError);
  expect(await store.hasBlob(wrong)).toBe(false);
  expect(await store.hasBlob(sha256(data))).toBe(false);
  expect(await ingestFiles()).toEqual([]);
});

test('a failing source stores nothing', async () => {
  async function* broken() {
    yield Buffer.from('part');
    throw new Error('connection reset');
  }
  await expect(store.putBlob(Readable.from(broken()))).rejects.toThrow('connection reset');
  expect(await fsp.readdir(path.join(store.root, 'blobs', 'sha256'))).toEqual([]);
  expect(await ingestFiles()).toEqual([]);
});

test('ingests a stream of many small chunks across write batches and write-behind syncs byte for byte', async () => {
  const data = Buffer.alloc(17 * 1024 * 1024 + 123);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) >> 3;
  async function* chunks() {
    for (let off = 0; off < data.length; off += 1000) yield data.subarray(off, off + 1000);
  }
  const info = await store.putBlob(chunks(), { digest: sha256(data), size: data.length });
  expect(info.size).toBe(data.length);
  expect((await fsp.readFile(store.blobPath(info.digest))).equals(data)).toBe(true);
});

test('a failed write-behind sync fails the copy (Linux reports a writeback error only once)', async () => {
  const fh = {
    writev: async (bufs: Buffer[]) => ({
      bytesWritten: bufs.reduce((a, b) => a + b.length, 0),
      buffers: bufs,
    }),
    datasync: async () => {
      throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    },
  } as unknown as FileHandle;
  // Enough for two syncs: the first one's error surfaces when the second is due.
  const mib = Buffer.alloc(1 << 20, 7);
  async function* chunks() {
    for (let i = 0; i < 160; i++) yield mib;
  }
  await expect(copyToFile(chunks(), fh, 0, () => undefined)).rejects.toThrow('EIO');
});

describe('partial blobs', () => {
  const data = Buffer.alloc(3 * 1024 * 1024 + 17, 'strata-partial-');
  const expected = { digest: sha256(data), size: data.length };
  async function* from(buf: Buffer, fail = false) {
    for (let off = 0; off < buf.length; off += 65536) yield buf.subarray(off, off + 65536);
    if (fail) throw new Error('connection reset');
  }

  test('keeps what arrived before a failure and resumes in a later call', async () => {
    const cut = 2 * 1024 * 1024 + 5;
    await expect(
      store.withPartial(expected, (p) => p.append(from(data.subarray(0, cut), true), 0)),
    ).rejects.toThrow('connection reset');
    expect(await store.hasBlob(expected.digest)).toBe(false);
    await store.withPartial(expected, async (p) => {
      expect(await p.length()).toBe(cut);
      expect(await p.append(from(data.subarray(cut)), cut)).toBe(data.length);
      await p.commit();
    });
    expect((await store.readBlob(expected.digest)).equals(data)).toBe(true);
    expect(await ingestFiles()).toEqual([]);
  });

  test('a partial that does not verify is emptied and removed, nothing is stored', async () => {
    const bad = Buffer.from(data);
    bad[1000] = (bad[1000] as number) ^ 1;
    await expect(
      store.withPartial(expected, async (p) => {
        await p.append(from(bad), 0);
        await p.commit();
      }),
    ).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.hasBlob(expected.digest)).toBe(false);
    expect(await ingestFiles()).toEqual([]);
  });

  test('committing a blob that is there already keeps it and refreshes its mtime (for gc)', async () => {
    await store.putBlob(from(data), expected);
    const old = new Date(Date.now() - 3600_000);
    await fsp.utimes(store.blobPath(expected.digest), old, old);
    await store.withPartial(expected, async (p) => {
      await p.append(from(data), 0);
      await p.commit();
    });
    const st = await fsp.stat(store.blobPath(expected.digest));
    expect(st.mtimeMs).toBeGreaterThan(old.getTime() + 1000);
    expect(await ingestFiles()).toEqual([]);
  });

  test('more bytes than the blob has is refused', async () => {
    await expect(
      store.withPartial(expected, (p) => p.append(from(Buffer.concat([data, data])), 0)),
    ).rejects.toBeInstanceOf(SizeMismatchError);
    expect(await store.hasBlob(expected.digest)).toBe(false);
  });

  test('gc drops a partial nobody is fetching, and keeps one that is being fetched', async () => {
    await expect(
      store.withPartial(expected, (p) => p.append(from(data.subarray(0, 100_000), true), 0)),
    ).rejects.toThrow('connection reset');
    expect(await ingestFiles()).toEqual([expect.stringMatching(/\.partial$/)]);
    expect((await store.gc()).bytesFreed).toBe(100_000);
    expect(await ingestFiles()).toEqual([]);
    await store.withPartial(expected, async (p) => {
      await p.append(from(data.subarray(0, 5000)), 0);
      const gc = await store.gc();
      expect(gc.bytesFreed).toBe(0);
      expect(await p.length()).toBe(5000);
    });
  });

  test('two fetches of one digest take turns', async () => {
    const order: string[] = [];
    const one = (name: string) =>
      store.withPartial(expected, async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, 30));
        order.push(`${name}-`);
      });
    await Promise.all([one('a'), one('b')]);
    // Either may win the lock (under load b can); what matters is that they do not overlap.
    expect(['a+ a- b+ b-', 'b+ b- a+ a-']).toContain(order.join(' '));
  });
});

test('blobFile names a stored blob after checking that it is there with its size', async () => {
  const data = Buffer.from('on disk');
  const { digest } = await store.putBytes(data);
  expect(await store.blobFile(digest, data.length)).toEqual({
    path: store.blobPath(digest),
    size: data.length,
  });
  expect((await store.blobFile(digest)).size).toBe(data.length);
  await expect(store.blobFile(digest, 3)).rejects.toBeInstanceOf(SizeMismatchError);
  await expect(store.blobFile(sha256('absent'))).rejects.toBeInstanceOf(NotFoundError);
  await expect(store.openBlob(sha256('absent'))).rejects.toBeInstanceOf(NotFoundError);
});

test('reads verify the digest at EOF', async () => {
  const { digest } = await store.putBytes(Buffer.from('original'));
  await fsp.writeFile(store.blobPath(digest), 'tampered');
  await expect(store.readBlob(digest)).rejects.toBeInstanceOf(DigestMismatchError);
  await expect(store.readBlob(digest, 3)).rejects.toBeInstanceOf(SizeMismatchError);
  await expect(store.readBlob(sha256('absent'))).rejects.toBeInstanceOf(NotFoundError);
  const stream = await store.openBlob(digest);
  await expect(
    (async () => {
      for await (const _ of stream) void _;
    })(),
  ).rejects.toBeInstanceOf(DigestMismatchError);
  const fsck = await store.fsck();
  expect(fsck.problems.join('\n')).toContain(digest);
});

test('a layer whose diffID is recorded still has its blob verified when read as a tar', async () => {
  const tar = Buffer.alloc(4096, 1);
  const blob = gzipSync(tar);
  const layer = await store.putBytes(blob);
  const config = await store.putJson(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tar)] } },
    MediaTypes.imageConfig,
  );
  const manifest = await store.putJson(
    {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config,
      layers: [{ mediaType: MediaTypes.layerGzip, digest: layer.digest, size: layer.size }],
    },
    MediaTypes.imageManifest,
  );
  await store.recordDiffId(layer.digest, sha256(tar));
  const [l] = await store.image(manifest).layers();
  expect(sha256(await readAll(await l!.openTar()))).toBe(sha256(tar));
  // Other content of the same size, which decompresses to a valid tar of the same length.
  const other = gzipSync(Buffer.alloc(4096, 2));
  expect(other.length).toBe(blob.length);
  await fsp.writeFile(store.blobPath(layer.digest), other);
  await expect(readAll(await l!.openTar())).rejects.toBeInstanceOf(DigestMismatchError);
});

test('tag returns what the tag named before, so a move can be reported', async () => {
  const a = await imageFor(store, 'layer-a');
  const b = await imageFor(store, 'layer-b');
  expect(await store.tag('app:1', a)).toBeUndefined();
  expect((await store.tag('app:1', a))?.digest).toBe(a.digest);
  expect((await store.tag('app:1', b))?.digest).toBe(a.digest);
  expect((await store.resolve('app:1')).digest).toBe(b.digest);
});

test('tagging what a tag names already leaves index.json as it is', async () => {
  const a = await imageFor(store, 'layer-a');
  const b = await imageFor(store, 'layer-b');
  await store.tag('app:1', a);
  await store.tag('app:2', b);
  const indexPath = path.join(dir, 'store', 'index.json');
  const before = await fsp.stat(indexPath);
  expect((await store.tag('app:1', a))?.digest).toBe(a.digest);
  expect((await fsp.stat(indexPath)).ino).toBe(before.ino);
  expect((await store.list()).map((t) => t.ref)).toEqual(['app:1', 'app:2'].map(normalizeTag));
});

test('tags, lists, resolves, untags and collects garbage', async () => {
  const m = await imageFor(store, 'layer-1');
  await store.tag('base', m);
  await store.tag('base:v2', m);
  expect((await store.list()).map((e) => e.ref)).toEqual(['base:latest', 'base:v2']);
  expect((await store.resolve('base')).digest).toBe(m.digest);
  expect((await store.resolve(`base@${m.digest}`)).digest).toBe(m.digest);
  await store.untag('base:latest');
  expect((await store.gc()).removed).toBe(0);
  await store.untag('base:v2');
  await expect(store.resolve('base:v2')).rejects.toBeInstanceOf(NotFoundError);
  const gc = await store.gc();
  expect(gc.removed).toBe(3);
  expect(gc.bytesFreed).toBeGreaterThan(0);
  expect(await fsp.readdir(path.join(store.root, 'blobs', 'sha256'))).toEqual([]);
});

test('bare hex resolves a tagged image by its digest or a unique start of it; a tag of that name wins', async () => {
  const a = await imageFor(store, 'hex-a');
  const b = await imageFor(store, 'hex-b');
  await store.tag('a:1', a);
  await store.tag('b:1', b);
  const hexA = a.digest.slice(7);
  expect((await store.resolve(hexA)).digest).toBe(a.digest);
  expect((await store.resolve(hexA.slice(0, 12))).digest).toBe(a.digest);
  await expect(store.resolve(hexA.slice(0, 5))).rejects.toBeInstanceOf(NotFoundError);
  // A tag of that name wins over the digest.
  await store.tag(hexA.slice(0, 8), b);
  expect((await store.resolve(hexA.slice(0, 8))).digest).toBe(b.digest);
});

test('a registry reference the store lacks says to pull it; a local one, to list', async () => {
  const remote = await store.resolve('127.0.0.1:5000/acme/base:1').catch((e: unknown) => e);
  expect(remote).toBeInstanceOf(NotFoundError);
  expect((remote as NotFoundError).hint).toBe(
    'pull it first: strata pull 127.0.0.1:5000/acme/base:1',
  );
  const local = await store.resolve('acme/base:1').catch((e: unknown) => e);
  expect((local as NotFoundError).hint).toBe('see `strata ls` for what the store holds');
});

test('a ref that is a file path never gets the pull hint', async () => {
  const file = path.join(dir, 'app1.tmpl.img');
  await fsp.writeFile(file, 'not an archive');
  for (const ref of ['./app1.tmpl.img', 'app1.tmpl.img', file, 'out/app.tmpl.img']) {
    const e = await store.resolve(ref).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NotFoundError);
    expect((e as NotFoundError).message).toBe(
      `no image ${ref} in the store ${store.root}: ${ref} is a file`,
    );
    expect((e as NotFoundError).hint).toBe(
      `load it into the store first: strata load ${ref} -t NAME`,
    );
  }
  // A path that exists, without the extension.
  const plain = path.join(dir, 'app.tar');
  await fsp.writeFile(plain, '');
  expect(((await store.resolve(plain).catch((x: unknown) => x)) as NotFoundError).hint).not.toMatch(
    /pull/,
  );
});

test('untagAll removes all the refs or, when one names nothing, none of them', async () => {
  const m = await imageFor(store, 'layer-untag');
  await store.tag('a:1', m);
  await store.tag('b', m);
  for (const refs of [
    ['a:1', 'missing'],
    ['missing', 'a:1'],
  ]) {
    await expect(store.untagAll(refs)).rejects.toThrow(/no image missing in the store/);
    expect((await store.list()).map((e) => e.ref)).toEqual(['a:1', 'b:latest']);
  }
  const removed = await store.untagAll(['b', 'a:1', 'b:latest']);
  expect(removed.map((r) => r.ref)).toEqual(['b:latest', 'a:1']);
  expect(await store.list()).toEqual([]);
});

test("a ref that is exactly an entry's ref name names it, before a tag is normalised", async () => {
  const m = await imageFor(store, 'layer-bare-name');
  const other = await imageFor(store, 'layer-bare-other');
  // As skopeo and umoci write `oci:DIR:x`: a ref name without a tag.
  const annotations = { 'org.opencontainers.image.ref.name': 'x' };
  await fsp.writeFile(
    path.join(store.root, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...m, annotations }] }),
  );
  await store.tag('x:latest', other);
  expect((await store.resolve('x')).digest).toBe(m.digest);
  expect((await store.resolve('x:latest')).digest).toBe(other.digest);
  expect((await store.untagAll(['x'])).map((r) => r.ref)).toEqual(['x']);
  expect((await store.resolve('x')).digest).toBe(other.digest);
});

test('remembers verified diffIDs per blob; gc drops a record with its blob', async () => {
  const kept = await imageFor(store, 'layer-kept');
  await store.tag('kept', kept);
  const keptLayer = (await store.readManifest(kept)).layers[0]!.digest;
  const gone = await store.putBytes(Buffer.from('layer-gone'));
  const id = (n: number) => `sha256:${String(n).repeat(64)}` as Digest;
  expect(await store.knownDiffId(keptLayer)).toBeUndefined();
  await store.recordDiffId(keptLayer, id(1));
  await store.recordDiffId(gone.digest, id(2));
  expect(await store.knownDiffId(keptLayer)).toBe(id(1));
  expect(await store.knownDiffId(gone.digest)).toBe(id(2));
  await expect(store.recordDiffId(keptLayer, 'md5:xyz' as never)).rejects.toMatchObject({
    code: 'INVALID_ARGUMENT',
  });
  // A record that is not a diffID is not believed.
  await fsp.writeFile(path.join(store.root, '.strata', 'diffids', keptLayer.slice(7)), 'junk');
  expect(await store.knownDiffId(keptLayer)).toBeUndefined();
  await store.recordDiffId(keptLayer, id(1));
  expect((await store.gc()).removed).toBe(1);
  expect(await store.knownDiffId(keptLayer)).toBe(id(1));
  expect(await store.knownDiffId(gone.digest)).toBeUndefined();
});

test('gc keeps blobs written under a live lease', async () => {
  await store.withLease(async () => {
    const { digest } = await store.putBytes(Buffer.from('in flight'));
    expect((await store.gc()).removed).toBe(0);
    expect(await store.hasBlob(digest)).toBe(true);
  });
  expect((await store.gc()).removed).toBe(1);
});

test('gc keeps a blob that an operation touched after gc looked at it, and removes an untouched one', async () => {
  const lease = Date.now();
  const old = new Date(lease - 60_000);
  const blobDir = path.dirname(store.blobPath(sha256(Buffer.from('x'))));
  const ingest = path.join(store.root, '.strata', 'ingest');
  const touched = (await store.putBytes(Buffer.from('touched since'))).digest;
  const untouched = (await store.putBytes(Buffer.from('not touched'))).digest;
  await fsp.utimes(store.blobPath(untouched), old, old);
  // gc saw both as old; then a pull skipping `touched` as present refreshed it
  await fsp.utimes(store.blobPath(touched), old, old);
  expect(await store.holdsBlob(touched)).toBe(true);
  expect(await removeUnlessTouched(store.blobPath(touched), ingest, lease)).toBe(false);
  expect(await removeUnlessTouched(store.blobPath(untouched), ingest, lease)).toBe(true);
  expect(await store.hasBlob(touched)).toBe(true);
  expect(await store.hasBlob(untouched)).toBe(false);
  expect(await fsp.readdir(ingest)).toEqual([]);
  expect((await fsp.readdir(blobDir)).sort()).toEqual([touched.slice(7)]);
});

test('a touch after gc set a blob aside finds no blob, so the operation writes it again', async () => {
  const data = Buffer.from('set aside');
  const { digest } = await store.putBytes(data);
  const old = new Date(Date.now() - 60_000);
  await fsp.utimes(store.blobPath(digest), old, old);
  const ingest = path.join(store.root, '.strata', 'ingest');
  await fsp.rename(store.blobPath(digest), path.join(ingest, 'aside'));
  expect(await store.holdsBlob(digest)).toBe(false);
  await fsp.rm(path.join(ingest, 'aside'));
  await store.putBytes(data, { digest, size: data.length });
  expect(await store.readBlob(digest)).toEqual(data);
});

test('a blob lease keeps an image whose tag went while it is read', async () => {
  const m = await imageFor(store, 'leased');
  await store.tag('leased', m);
  const all = [...(await store.reachable(m)).keys()];
  const old = new Date(Date.now() - 60_000);
  for (const d of all) await fsp.utimes(store.blobPath(d), old, old);
  await store.withImageLease(m, async () => {
    await store.untag('leased');
    expect((await store.gc()).removed).toBe(0);
    for (const d of all) expect(await store.hasBlob(d)).toBe(true);
  });
  expect((await store.gc()).removed).toBe(all.length);
});

test('a stack view is kept until gc takes its top layer', async () => {
  const m = await imageFor(store, 'viewed');
  await store.tag('viewed', m);
  const top = (await store.readManifest(m)).layers[0]!.digest;
  const key = 'a'.repeat(64);
  expect(await store.readStackView('sbom-rootfs', top, key)).toBeUndefined();
  await store.writeStackView('sbom-rootfs', top, key, Buffer.from('view'));
  expect((await store.readStackView('sbom-rootfs', top, key))?.toString()).toBe('view');
  await store.gc();
  expect((await store.readStackView('sbom-rootfs', top, key))?.toString()).toBe('view');
  await store.untag('viewed');
  await store.gc();
  expect(await store.readStackView('sbom-rootfs', top, key)).toBeUndefined();
  await expect(store.writeStackView('../x', top, key, Buffer.from(''))).rejects.toThrow();
});

test('fsck reports a missing blob', async () => {
  const m = await imageFor(store, 'gone');
  await store.tag('x', m);
  const man = await store.readManifest(m);
  await fsp.rm(store.blobPath(man.layers[0]!.digest));
  const r = await store.fsck();
  expect(r.problems.some((p) => p.includes('missing blob'))).toBe(true);
});

/** A one-layer image (layer `text`) whose config lists `diffIds`; tagged `tag`. */
async function imageWithDiffIds(tag: string, text: string, diffIds: Digest[]) {
  const layer = await store.putBytes(Buffer.from(text));
  const config = await store.putJson(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } },
    MediaTypes.imageConfig,
  );
  const m = await store.putJson(
    {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config,
      layers: [{ mediaType: MediaTypes.layerTar, digest: layer.digest, size: layer.size }],
    },
    MediaTypes.imageManifest,
  );
  await store.tag(tag, m);
  return { m, layer };
}

test('fsck reports diff_ids of the wrong count, and one that differs from the recorded diffID', async () => {
  const other = `sha256:${'e'.repeat(64)}` as Digest;
  await imageWithDiffIds('two:1', 'two diff ids', [other, other]);
  const { layer } = await imageWithDiffIds('lies:1', 'lying diff id', [other]);
  // An earlier unpack hashed the layer's tar: its diffID is the blob's own digest (a plain tar).
  await store.recordDiffId(layer.digest, layer.digest);
  const { problems } = await store.fsck();
  expect(problems).toEqual([
    expect.stringMatching(/^two:1: image sha256:[a-f0-9]{64}: 1 layers but 2 diff_ids$/),
    expect.stringContaining(`lies:1: image sha256:`),
  ]);
  expect(problems[1]).toContain(`layer 0 (${layer.digest}) unpacks to ${layer.digest}`);
});

test('load refuses an image whose config lists another number of diff_ids than it has layers', async () => {
  const other = `sha256:${'e'.repeat(64)}` as Digest;
  const { m } = await imageWithDiffIds('two:1', 'two diff ids', [other, other]);
  const file = path.join(dir, 'two.tmpl.img');
  await saveArchive(store, 'two:1', file);
  const target = await Store.open(path.join(dir, 'target'));
  const e = await loadArchive(target, file).catch((x: unknown) => x);
  expect((e as Error).message).toBe(
    `invalid image ${m.digest}: its manifest has 1 layers but its config 2 diff_ids`,
  );
  expect(await target.list()).toEqual([]);
});

test('load refuses a layout with a symbolic link in it, and quotes nothing it points to', async () => {
  const m = await imageFor(store, 'linked layout');
  await store.tag('linked:1', m);
  const file = path.join(dir, 'linked.tmpl.img');
  await saveArchive(store, 'linked:1', file);
  const secret = path.join(dir, 'secret');
  await fsp.writeFile(secret, 'root:*:20299:0:99999:7:::\n');
  const target = await Store.open(path.join(dir, 'target'));
  const manifest = await store.readManifest(m);
  for (const name of [
    'index.json',
    'oci-layout',
    `blobs/sha256/${manifest.layers[0]!.digest.slice(7)}`,
  ]) {
    const layout = path.join(dir, `layout-${name.replace(/\//g, '_')}`);
    await fsp.mkdir(layout);
    await promisify(execFile)('tar', ['-xf', file, '-C', layout]);
    await fsp.rm(path.join(layout, name));
    await fsp.symlink(secret, path.join(layout, name));
    const e = await loadArchive(target, layout).catch((x: unknown) => x);
    expect((e as Error).message).toBe(
      `layout ${layout}: ${name} is a symbolic link; a layout being loaded may hold none`,
    );
  }
  // A folder of the layout that is a link is refused too.
  const layout = path.join(dir, 'layout-blobs');
  await fsp.mkdir(layout);
  await promisify(execFile)('tar', ['-xf', file, '-C', layout]);
  await fsp.rename(path.join(layout, 'blobs'), path.join(dir, 'blobs-elsewhere'));
  await fsp.symlink(path.join(dir, 'blobs-elsewhere'), path.join(layout, 'blobs'));
  await expect(loadArchive(target, layout)).rejects.toThrow(/: blobs is a symbolic link/);
  expect(await target.list()).toEqual([]);
});

test("a layout's index.json that is not JSON is said to be so, without quoting it", async () => {
  const m = await imageFor(store, 'not json');
  await store.tag('nj:1', m);
  const file = path.join(dir, 'nj.tmpl.img');
  await saveArchive(store, 'nj:1', file);
  const layout = path.join(dir, 'layout-nj');
  await fsp.mkdir(layout);
  await promisify(execFile)('tar', ['-xf', file, '-C', layout]);
  await fsp.writeFile(path.join(layout, 'index.json'), 'root:*:20299:0:99999:7:::\n');
  const target = await Store.open(path.join(dir, 'target'));
  await expect(loadArchive(target, layout)).rejects.toThrow(
    new RegExp(`^invalid ${layout}: index.json: not valid JSON$`),
  );
});

test('load says why it does not tag an image with an invalid name the archive carries', async () => {
  const m = await imageFor(store, 'named oddly');
  await store.tag('odd:1', m);
  const file = path.join(dir, 'odd.tmpl.img');
  await saveArchive(store, 'odd:1', file);
  const target = await Store.open(path.join(dir, 'target'));
  for (const [name, why] of [
    ['UPPER:1', 'repository must be lowercase path components of [a-z0-9._-]'],
    ['../../evil:1', 'repository must be lowercase path components of [a-z0-9._-]'],
  ] as const) {
    const layout = path.join(dir, `layout-${name.replace(/[/.:]/g, '_')}`);
    await fsp.mkdir(layout);
    await promisify(execFile)('tar', ['-xf', file, '-C', layout]);
    const indexFile = path.join(layout, 'index.json');
    const index = JSON.parse(await fsp.readFile(indexFile, 'utf8')) as {
      manifests: { annotations: Record<string, string> }[];
    };
    index.manifests[0]!.annotations['org.opencontainers.image.ref.name'] = name;
    await fsp.writeFile(indexFile, JSON.stringify(index));
    const loaded = await loadArchive(target, layout);
    expect(loaded).toEqual([
      {
        ref: undefined,
        descriptor: expect.objectContaining({ digest: m.digest }),
        warning: `not tagging ${m.digest} with the name the archive gives it, ${JSON.stringify(name)}: ${why}`,
      },
    ]);
  }
  expect(await target.list()).toEqual([]);
});

test('load of a truncated archive says so, naming stdin when it came from there', async () => {
  const m = await imageFor(store, 'cut short');
  await store.tag('cut:1', m);
  const file = path.join(dir, 'cut.tmpl.img');
  await saveArchive(store, 'cut:1', file);
  const truncated = path.join(dir, 'truncated.tmpl.img');
  await fsp.writeFile(truncated, (await fsp.readFile(file)).subarray(0, 1536));
  const target = await Store.open(path.join(dir, 'target'));
  const why = 'is truncated: it ends before the end of its tar, so the archive is incomplete';
  await expect(loadArchive(target, truncated)).rejects.toThrow(`${truncated} ${why}`);
  await expect(loadArchive(target, Readable.from([await fsp.readFile(truncated)]))).rejects.toThrow(
    new RegExp(`^stdin ${why}$`),
  );
  const text = path.join(dir, 'text.tmpl.img');
  await fsp.writeFile(text, 'not a tar at all\n');
  await expect(loadArchive(target, Readable.from([await fsp.readFile(text)]))).rejects.toThrow(
    /^stdin is not an OCI archive or image layout: it is not a tar$/,
  );
  expect(await fsp.readdir(path.join(target.root, '.strata', 'ingest'))).toEqual([]);
  expect(await target.list()).toEqual([]);
});

test('normalises tags', () => {
  expect(normalizeTag('acme/base')).toBe('acme/base:latest');
  expect(normalizeTag('acme/base:1.0')).toBe('acme/base:1.0');
  expect(() => normalizeTag('Bad Name')).toThrow();
});

test('save and load round-trip with identical digests', async () => {
  const m = await imageFor(store, 'portable');
  await store.tag('portable:1', m);
  const file = path.join(dir, 'p.tmpl.img');
  await saveArchive(store, 'portable:1', file);
  const other = await Store.open(path.join(dir, 'other'));
  const loaded = await loadArchive(other, file, 'copy:1');
  expect(loaded[0]!.descriptor.digest).toBe(m.digest);
  expect((await other.resolve('copy:1')).digest).toBe(m.digest);
  expect((await other.fsck()).problems).toEqual([]);
  const again = await loadArchive(other, file);
  expect(again[0]!.ref).toBe('portable:1');
});

test('a save is reproducible, and load reads an archive from a stream', async () => {
  const m = await imageFor(store, 'streamed');
  await store.tag('streamed:1', m);
  const [a, b] = [path.join(dir, 'a.tmpl.img'), path.join(dir, 'b.tmpl.img')];
  await saveArchive(store, 'streamed:1', a);
  await saveArchive(store, 'streamed:1', b);
  expect(sha256(await fsp.readFile(b))).toBe(sha256(await fsp.readFile(a)));
  const other = await Store.open(path.join(dir, 'streamed'));
  const loaded = await loadArchive(other, Readable.from([await fsp.readFile(a)]));
  expect(loaded).toEqual([{ ref: 'streamed:1', descriptor: expect.objectContaining(m) }]);
  expect((await other.fsck()).problems).toEqual([]);
  expect(await fsp.readdir(path.join(other.root, '.strata', 'ingest'))).toEqual([]);
});

test('load refuses an archive with a corrupt or a missing blob, and tags nothing', async () => {
  const m = await imageFor(store, 'damaged layer bytes');
  await store.tag('damaged:1', m);
  const file = path.join(dir, 'damaged.tmpl.img');
  await saveArchive(store, 'damaged:1', file);
  const bytes = await fsp.readFile(file);
  const at = bytes.indexOf('damaged layer bytes');
  bytes[at] = 0x44; // 'D'
  const corrupt = path.join(dir, 'corrupt.tmpl.img');
  await fsp.writeFile(corrupt, bytes);
  const other = await Store.open(path.join(dir, 'damaged'));
  await expect(loadArchive(other, corrupt)).rejects.toBeInstanceOf(DigestMismatchError);
  // The layer's entry renamed: the archive lacks it.
  const layerHex = sha256(Buffer.from('damaged layer bytes')).slice('sha256:'.length);
  const renamed = Buffer.from(
    bytes.toString('latin1').replace(`blobs/sha256/${layerHex}`, `blobs/sha256/${'f'.repeat(64)}`),
    'latin1',
  );
  const missing = path.join(dir, 'missing.tmpl.img');
  await fsp.writeFile(missing, renamed);
  await expect(loadArchive(other, missing)).rejects.toBeInstanceOf(NotFoundError);
  expect((await other.readIndex()).manifests).toEqual([]);
});

test('two processes tagging at once lose nothing', async () => {
  const dist = path.resolve(__dirname, '..', 'dist', 'index.js');
  await fsp.access(dist); // `npm test` builds first
  const m = await imageFor(store, 'shared');
  const script = (prefix: string) => `
    const { Store } = require(${JSON.stringify(dist)});
    (async () => {
      const s = await Store.open(${JSON.stringify(store.root)});
      for (let i = 0; i < 25; i++) await s.tag('${prefix}' + i, ${JSON.stringify(m)});
    })().catch((e) => { console.error(e); process.exit(1); });`;
  await Promise.all(['a', 'b', 'c'].map((p) => run(process.execPath, ['-e', script(p)])));
  const refs = (await store.list()).map((e) => e.ref);
  expect(refs).toHaveLength(75);
});

test('gc keeps what a root reaches until the root goes', async () => {
  const m = await imageFor(store, 'cached');
  await store.putRoot('cache-1', { descriptors: [m], note: 'x' });
  expect((await store.gc()).removed).toBe(0);
  expect((await store.getRoot('cache-1'))?.note).toBe('x');
  expect(await store.removeRoots()).toBe(1);
  expect((await store.gc()).removed).toBe(3);
});

test('gc --dry-run reports what it would remove and removes nothing', async () => {
  const m = await imageFor(store, 'doomed');
  const before = (await store.listBlobs()).map((b) => b.digest).sort();
  const dry = await store.gc({ dryRun: true });
  expect(dry.removed).toBe(3);
  expect(dry.blobs.map((b) => b.digest).sort()).toEqual(before);
  expect((await store.listBlobs()).map((b) => b.digest).sort()).toEqual(before);
  expect(await store.hasBlob(m.digest)).toBe(true);
  const real = await store.gc();
  expect(real.bytesFreed).toBe(dry.bytesFreed);
  expect(await store.listBlobs()).toEqual([]);
});

test('gc drops the roots it is told to drop, with what only they reached', async () => {
  const a = await imageFor(store, 'root a');
  const b = await imageFor(store, 'root b');
  await store.putRoot('cache-a', { descriptors: [a] });
  await store.putRoot('cache-b', { descriptors: [b] });
  const dry = await store.gc({ dryRun: true, dropRoots: ['cache-a'] });
  expect(dry.blobs.map((x) => x.digest)).toContain(a.digest);
  expect(await store.getRoot('cache-a')).toBeDefined();
  const r = await store.gc({ dropRoots: ['cache-a'] });
  expect(r.removed).toBe(3);
  expect(await store.getRoot('cache-a')).toBeUndefined();
  expect(await store.hasBlob(a.digest)).toBe(false);
  expect(await store.hasBlob(b.digest)).toBe(true);
  expect((await store.listRoots()).map((x) => x.name)).toEqual(['cache-b']);
});

test('the store config: defaults without a file, the file when there is one, an error when it is wrong', async () => {
  expect(await store.config()).toEqual({ gc: { keepUnusedBytes: 0, keepUnusedDays: 7 } });
  await fsp.writeFile(store.configPath, JSON.stringify({ gc: { keepUnusedBytes: 1048576 } }));
  expect(await store.config()).toEqual({ gc: { keepUnusedBytes: 1048576, keepUnusedDays: 7 } });
  await fsp.writeFile(store.configPath, JSON.stringify({ gc: { keepUnusedBytes: -1 } }));
  await expect(store.config()).rejects.toMatchObject({ code: 'INVALID_DOCUMENT' });
  await fsp.writeFile(store.configPath, JSON.stringify({ gc: { keepUnused: 1 } }));
  await expect(store.config()).rejects.toThrow(/additional properties/);
});

test('a lease taken while gc holds its lock waits for it; gc sees a lease taken before', async () => {
  const order: string[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const gc = store.withGcLock(async (busy) => {
    order.push(`gc busy=${busy}`);
    await held;
    order.push('gc done');
  });
  await new Promise((r) => setTimeout(r, 50));
  const lease = store.withLease(async () => {
    order.push('lease');
  });
  await new Promise((r) => setTimeout(r, 200));
  expect(order).toEqual(['gc busy=false']);
  release();
  await Promise.all([gc, lease]);
  expect(order).toEqual(['gc busy=false', 'gc done', 'lease']);

  const endLease = await holdLease(store);
  expect(await store.withGcLock(async (busy) => busy)).toBe(true);
  await endLease();
  expect(await store.withGcLock(async (busy) => busy)).toBe(false);
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = execFile('true');
  const pid = child.pid as number;
  await new Promise((resolve) => child.on('exit', resolve));
  return pid;
}

test('gc removes the unpacked rootfs a killed template create left, not a running one’s', async () => {
  const ingest = path.join(store.root, '.strata', 'ingest');
  const rootfs = async (name: string): Promise<string> => {
    const d = path.join(ingest, name);
    await fsp.mkdir(path.join(d, 'usr', 'bin'), { recursive: true });
    await fsp.writeFile(path.join(d, 'usr', 'bin', 'su'), Buffer.alloc(1000));
    await fsp.chmod(path.join(d, 'usr', 'bin', 'su'), 0o4755);
    return d;
  };
  const dead = await rootfs(`rootfs-${await deadPid()}-0123456789ab`);
  const running = await rootfs(`rootfs-1-0123456789ab`);
  const older = await rootfs('rootfs-AbC123'); // named without a pid, as mkdtemp did
  const release = await holdLease(store);
  try {
    // A live lease may be the create that made the folder without a pid: it stays.
    const dry = await store.gc({ dryRun: true });
    expect(dry.partials).toEqual({ count: 1, bytes: 1000 });
    expect((await store.gc()).partials).toEqual({ count: 1, bytes: 1000 });
    expect((await fsp.readdir(ingest)).sort()).toEqual(
      [path.basename(older), path.basename(running)].sort(),
    );
    expect(await fsp.readdir(ingest)).not.toContain(path.basename(dead));
  } finally {
    await release();
  }
  expect((await store.gc()).partials).toEqual({ count: 1, bytes: 1000 });
  expect(await fsp.readdir(ingest)).toEqual([path.basename(running)]);
});

test('gc refuses while a tag’s manifest is damaged, naming the tag and the way out', async () => {
  const broken = await imageFor(store, 'broken layer');
  await store.tag('ib:1', broken);
  await store.tag('ok:1', await imageFor(store, 'sound layer'));
  await fsp.writeFile(store.blobPath(broken.digest), 'garbage\n');
  const blobs = await store.allBlobs();
  const e = (await store.gc().catch((err: unknown) => err)) as StrataError;
  expect(e).toBeInstanceOf(StrataError);
  expect(e.message).toMatch(/^gc cannot tell what ib:1 uses: blob sha256:[a-f0-9]{64}: size/);
  expect(e.hint).toContain('strata fsck');
  expect(e.hint).toContain('strata rm ib:1');
  expect(await store.allBlobs()).toEqual(blobs);
});

test('a damaged index.json is an error naming its path', async () => {
  await fsp.writeFile(path.join(store.root, 'index.json'), '{"schemaVersion": 2, "manif');
  await expect(store.readIndex()).rejects.toThrow(
    `invalid ${path.join(store.root, 'index.json')}:`,
  );
});

test('fsck says each problem on one line, the digest once, with the tags that use the blob', async () => {
  const img = await imageFor(store, 'shared layer');
  await store.tag('a:1', img);
  await store.tag('b:1', img);
  const m = JSON.parse((await store.readBlob(img.digest)).toString()) as {
    config: { digest: Digest };
    layers: Array<{ digest: Digest }>;
  };
  const layer = m.layers[0]!.digest;
  await damage(layer);
  await fsp.rm(store.blobPath(m.config.digest));
  const loose = await store.putBytes(Buffer.from('no tag uses this'));
  await damage(loose.digest);
  const { problems } = await store.fsck();
  expect(problems.sort()).toEqual(
    [
      `corrupt blob ${layer}: its content does not match its digest; used by a:1, b:1`,
      `corrupt blob ${loose.digest}: its content does not match its digest; used by no tag (gc removes it)`,
      `missing blob ${m.config.digest}; used by a:1, b:1`,
    ].sort(),
  );
  // A damaged manifest is the problem of the tag whose walk it stops.
  await fsp.writeFile(store.blobPath(img.digest), 'garbage\n');
  expect((await store.fsck()).problems).toContain(
    `corrupt blob ${img.digest}: its content does not match its digest; used by a:1, b:1`,
  );
});

describe("the store's own folder", () => {
  // The test's temporary folder is 0700: nobody could not reach the store there anyway.
  const parents: string[] = [];
  afterEach(() => Promise.all(parents.splice(0).map((p) => fsp.rm(p, { recursive: true }))));

  /** A store under a folder every user may enter, as a store under /var/lib is. */
  async function openIn(prepare?: (root: string) => Promise<void>): Promise<string> {
    const parent = await fsp.mkdtemp('/var/tmp/strata-store-perm-');
    parents.push(parent);
    await fsp.chmod(parent, 0o755);
    const root = path.join(parent, 'store');
    await prepare?.(root);
    await Store.open(root);
    return root;
  }
  const modeOf = async (p: string) => (await fsp.stat(p)).mode & 0o7777;

  test('is made 0700, so no other user reaches its snapshots', async () => {
    const root = await openIn();
    expect(await modeOf(path.join(root, '.strata'))).toBe(0o700);
    const snapshot = path.join(root, '.strata', 'snapshots', 'x', 'fs', 'tmp');
    await fsp.mkdir(snapshot, { recursive: true, mode: 0o755 });
    await fsp.chmod(snapshot, 0o1777);
    // As nobody: the snapshot's world-writable /tmp is out of reach.
    const asNobody = (cmd: string[]) =>
      run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...cmd]).then(
        () => 'ok',
        (e: { stderr: string }) => e.stderr,
      );
    expect(await asNobody(['ls', root])).toBe('ok');
    expect(await asNobody(['touch', path.join(snapshot, 'planted')])).toMatch(/Permission denied/);
  });

  test('of a store made before, with 0755, is closed up when the store is opened', async () => {
    const root = await openIn(async (r) => {
      await fsp.mkdir(path.join(r, '.strata', 'snapshots'), { recursive: true });
      await fsp.chmod(path.join(r, '.strata'), 0o755);
    });
    expect(await modeOf(path.join(root, '.strata'))).toBe(0o700);
  });
});
