import { createReadStream, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// Loaded on first use: only save and load need it, and it is slow to load.
const tarStream = () => import('tar-stream');
import {
  Annotations,
  CorruptError,
  Descriptor,
  ImageIndex,
  InvalidArgumentError,
  MediaTypes,
  NotFoundError,
  PlatformSelector,
  assertValid,
  digestHex,
  graphDigests,
  encodeJson,
  isDigest,
  parseJson,
  validateIndex,
  validateOciLayout,
} from '@strata/oci';
import { fsyncDir, tempPathFor } from './atomic';
import { normalizeTag } from './refs';
import type { Store } from './store';
import * as path from 'node:path';

/**
 * Write one image (and everything it reaches) as an OCI archive: a tar of an OCI image
 * layout, which `skopeo inspect oci-archive:FILE` reads. Written atomically. With `platform`,
 * of a multi-platform template only that platform's rootfs image (as selectManifest picks it).
 */
export async function saveArchive(
  store: Store,
  ref: string,
  outFile: string,
  platform?: PlatformSelector,
): Promise<Descriptor> {
  const tagged = await store.resolve(ref);
  const desc = platform
    ? {
        ...(await store.selectImage(tagged, { platform }, ref)).descriptor,
        ...(tagged.annotations ? { annotations: tagged.annotations } : {}),
      }
    : tagged;
  const blobs = [...graphDigests(await store.graph(desc)).values()].sort((a, b) =>
    a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0,
  );
  const name = desc.annotations?.[Annotations.refName];
  const top: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (name) top.annotations = { [Annotations.refName]: name };
  const index: ImageIndex = { schemaVersion: 2, manifests: [top] };

  const pack = (await tarStream()).pack();
  const tmp = tempPathFor(path.resolve(outFile));
  const fh = await fsp.open(tmp, 'wx', 0o644);
  const header = (name: string, size: number, type: 'file' | 'directory' = 'file') => ({
    name,
    size,
    type,
    mode: type === 'directory' ? 0o755 : 0o644,
    mtime: new Date(0),
    uid: 0,
    gid: 0,
  });
  const writing = pipeline(pack, fh.createWriteStream({ flush: true }));
  try {
    const small = (n: string, data: Buffer) =>
      new Promise<void>((res, rej) =>
        pack.entry(header(n, data.length), data, (e) => (e ? rej(e) : res())),
      );
    await small('oci-layout', encodeJson({ imageLayoutVersion: '1.0.0' }));
    await small('index.json', encodeJson(index));
    pack.entry(header('blobs/', 0, 'directory'));
    pack.entry(header('blobs/sha256/', 0, 'directory'));
    for (const b of blobs) {
      const entry = pack.entry(header(`blobs/sha256/${digestHex(b.digest)}`, b.size));
      await pipeline(await store.openBlob(b.digest, b.size), entry);
    }
    pack.finalize();
    await writing; // the stream fsyncs (flush) and closes the file
    await fsp.rename(tmp, outFile);
    await fsyncDir(path.dirname(path.resolve(outFile)));
  } catch (e) {
    pack.destroy();
    await writing.catch(() => undefined);
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  return desc;
}

export interface LoadedImage {
  ref: string | undefined;
  descriptor: Descriptor;
}

/**
 * Load an OCI archive into the store. Every blob is verified against the digest its name
 * claims before it becomes visible. Images are tagged with `tag` (only when the archive
 * holds one image) or with the name the archive carries.
 */
export async function loadArchive(
  store: Store,
  input: string | Readable,
  tag?: string,
): Promise<LoadedImage[]> {
  if (typeof input === 'string') {
    try {
      await fsp.access(input);
    } catch {
      throw new NotFoundError(`archive ${input} does not exist`);
    }
  }
  const src = typeof input === 'string' ? createReadStream(input) : input;
  // Until the pipeline takes over, an early error (unreadable file) must not go unhandled.
  let early: unknown;
  const onEarly = (e: unknown) => (early = e);
  src.on('error', onEarly);
  const extract = (await tarStream()).extract();
  let index: ImageIndex | undefined;
  let sawLayout = false;
  const readAll = async (s: AsyncIterable<unknown>, max: number) => {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of s) {
      n += (c as Buffer).length;
      if (n > max) throw new CorruptError('archive document too large');
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  };
  await store.withLease(async () => {
    src.off('error', onEarly);
    if (early !== undefined) throw early;
    const feeding = pipeline(src, extract);
    try {
      for await (const entry of extract) {
        const name = entry.header.name.replace(/^\.\//, '');
        if (entry.header.type === 'directory') {
          entry.resume();
          continue;
        }
        if (name === 'oci-layout') {
          assertValid(
            validateOciLayout,
            parseJson(await readAll(entry, 4096), 'oci-layout'),
            'oci-layout',
          );
          sawLayout = true;
        } else if (name === 'index.json') {
          index = assertValid(
            validateIndex,
            parseJson(await readAll(entry, 4 << 20), 'index.json'),
            'index.json',
          );
        } else {
          const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
          if (!m || entry.header.type !== 'file') {
            entry.resume();
            continue;
          }
          const digest = `sha256:${m[1]}`;
          if (!isDigest(digest)) throw new CorruptError(`bad blob name ${name}`);
          await store.putBlob(entry as AsyncIterable<Buffer>, {
            digest,
            size: entry.header.size ?? 0,
          });
        }
      }
      await feeding;
    } catch (e) {
      src.destroy();
      await feeding.catch(() => undefined);
      throw e;
    }
    if (!sawLayout || index === undefined) {
      throw new CorruptError('not an OCI archive: oci-layout or index.json is missing');
    }
  });
  const idx = index as ImageIndex;
  if (tag !== undefined && idx.manifests.length !== 1) {
    throw new InvalidArgumentError(
      `the archive holds ${idx.manifests.length} images; -t needs exactly one`,
    );
  }
  const out: LoadedImage[] = [];
  for (const d of idx.manifests) {
    for (const [digest] of await store.reachable(d)) {
      if (!(await store.hasBlob(digest))) {
        throw new NotFoundError(`archive is incomplete: blob ${digest} is missing`);
      }
    }
    const archived = d.annotations?.[Annotations.refName];
    let ref: string | undefined;
    if (tag !== undefined) ref = normalizeTag(tag);
    else if (archived !== undefined) {
      try {
        ref = normalizeTag(archived);
      } catch {
        ref = undefined;
      }
    }
    const clean: Descriptor = {
      mediaType: d.mediaType ?? MediaTypes.imageManifest,
      digest: d.digest,
      size: d.size,
    };
    if (d.platform) clean.platform = d.platform;
    if (ref !== undefined) await store.tag(ref, clean);
    out.push({ ref, descriptor: clean });
  }
  return out;
}
