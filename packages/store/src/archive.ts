import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Pack } from 'tar-stream';
// Loaded on first use: only save and load need it, and it is slow to load.
const tarStream = () => import('tar-stream');
import {
  Annotations,
  ContentSink,
  CopyEvent,
  Descriptor,
  ImageIndex,
  InvalidArgumentError,
  MediaTypes,
  PlatformSelector,
  StrataError,
  copyGraph,
  digestHex,
  encodeJson,
} from '@strata/oci';
import { openArchive } from './archive-content';
import { fsyncDir, tempPathFor } from './atomic';
import { ARCHIVE_REFERRERS, isReferrerRecord, referrerRecord } from './referrers';
import { normalizeTag } from './refs';
import { counted, storeSink } from './sink';
import type { Store } from './store';

/** A tar entry of an archive: fixed owner, mode and date, so that a save is reproducible. */
function header(name: string, size: number, type: 'file' | 'directory' = 'file') {
  return {
    name,
    size,
    type,
    mode: type === 'directory' ? 0o755 : 0o644,
    mtime: new Date(0),
    uid: 0,
    gid: 0,
  };
}

function putEntry(pack: Pack, name: string, data: Buffer): Promise<void> {
  return new Promise<void>((res, rej) =>
    pack.entry(header(name, data.length), data, (e) => (e ? rej(e) : res())),
  );
}

/**
 * An archive being written as the sink of a copy: each blob and manifest becomes the tar entry
 * `blobs/sha256/<hex>`, streamed from the (verifying) source. A tar is written in order, so the
 * copy that feeds it runs one blob at a time.
 */
function archiveSink(pack: Pack, records: Descriptor[]): ContentSink<'written'> {
  const name = (d: Descriptor) => `blobs/sha256/${digestHex(d.digest)}`;
  return {
    putBlob: async (d, src, onProgress) => {
      const entry = pack.entry(header(name(d), d.size));
      const body = await src.openBlob(d);
      await pipeline(onProgress ? Readable.from(counted(body, 0, onProgress)) : body, entry);
      return { outcome: 'written', bytes: d.size };
    },
    putManifest: async (node) => {
      // An attached artifact is recorded in the archive's index.json as the store records it.
      if (node.subject !== undefined) records.push(referrerRecord(node.descriptor, node.bytes));
      await putEntry(pack, name(node.descriptor), node.bytes);
    },
  };
}

/**
 * Write one image (and everything it reaches, with the artifacts attached) as an OCI archive: a tar of an OCI image
 * layout, which `skopeo inspect oci-archive:FILE` reads. Written atomically. With `platform`,
 * of a multi-platform template only that platform's rootfs image (as selectManifest picks it).
 */
export async function saveArchive(
  store: Store,
  ref: string,
  outFile: string,
  platform?: PlatformSelector,
  onEvent?: (e: CopyEvent) => void,
  signal?: AbortSignal,
): Promise<Descriptor> {
  const tagged = await store.resolve(ref);
  const desc = platform
    ? {
        ...(await store.selectImage(tagged, { platform }, ref)).descriptor,
        ...(tagged.annotations ? { annotations: tagged.annotations } : {}),
      }
    : tagged;
  const name = desc.annotations?.[Annotations.refName];
  const top: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
  if (name) top.annotations = { [Annotations.refName]: name };
  if (desc.platform) top.platform = desc.platform;
  const records: Descriptor[] = [];

  const pack = (await tarStream()).pack();
  const tmp = tempPathFor(path.resolve(outFile));
  const fh = await fsp.open(tmp, 'wx', 0o644);
  const writing = pipeline(pack, fh.createWriteStream({ flush: true }));
  writing.catch(() => undefined); // awaited below; a pack destroyed meanwhile must not crash
  const interrupted = () => new StrataError('INTERRUPTED', 'save interrupted');
  // Destroying the pack fails the blob being copied into it, and so the save, at once.
  const stop = (): void => {
    pack.destroy(interrupted());
  };
  signal?.addEventListener('abort', stop, { once: true });
  try {
    if (signal?.aborted) throw interrupted();
    await putEntry(pack, 'oci-layout', encodeJson({ imageLayoutVersion: '1.0.0' }));
    pack.entry(header('blobs/', 0, 'directory'));
    pack.entry(header('blobs/sha256/', 0, 'directory'));
    // The lease holds what is saved from a gc, even if its tag goes meanwhile.
    await store.withImageLease(desc, () =>
      copyGraph(store.content, archiveSink(pack, records), desc, {
        jobs: 1,
        ...(onEvent ? { onEvent } : {}),
      }),
    );
    // The artifacts the copy met are recorded beside index.json, not in it: with one entry
    // there, skopeo and umoci read `oci-archive:FILE` without being told which image.
    if (records.length > 0) {
      const attached: ImageIndex = { schemaVersion: 2, manifests: records };
      await putEntry(pack, ARCHIVE_REFERRERS, encodeJson(attached));
    }
    // index.json goes last.
    const index: ImageIndex = { schemaVersion: 2, manifests: [top] };
    await putEntry(pack, 'index.json', encodeJson(index));
    pack.finalize();
    await writing; // the stream fsyncs (flush) and closes the file
    await fsp.rename(tmp, outFile);
    await fsyncDir(path.dirname(path.resolve(outFile)));
  } catch (e) {
    pack.destroy();
    await writing.catch(() => undefined);
    await fh.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    // The copy into a destroyed pack fails in the stream's words; the cause is the signal.
    throw signal?.aborted ? interrupted() : e;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
  return desc;
}

export interface LoadedImage {
  ref: string | undefined;
  descriptor: Descriptor;
  /** Why the name the archive carries for the image was not used as its tag. */
  warning?: string;
}

/**
 * Load an OCI archive, or an OCI image layout directory (`skopeo copy … oci:DIR`), into the
 * store: a copy from it, opened in place as a backend of the core, into the store's sink, for
 * each image its index lists. Every blob is verified against its digest before it becomes
 * visible, and blobs the store has are not copied. Images are tagged with `tag` (only when the
 * archive holds one image) or with the name the archive carries (`x` as `x:latest`). An archive
 * read from a stream is first written to a scratch file of the store, since a copy reads blobs
 * in the order of the graph, not of the tar.
 */
export async function loadArchive(
  store: Store,
  input: string | Readable,
  tag?: string,
  onEvent?: (e: CopyEvent) => void,
): Promise<LoadedImage[]> {
  return store.withLease(async () => {
    let spooled: string | undefined;
    try {
      let file: string;
      if (typeof input === 'string') file = input;
      else {
        spooled = path.join(store.paths.ingestDir, path.basename(tempPathFor('archive')));
        await pipeline(input, createWriteStream(spooled, { flags: 'wx' }));
        file = spooled;
      }
      const archive = await openArchive(file, spooled === undefined ? file : 'stdin');
      // Attached artifacts come with their subjects' copies, not as images of their own.
      const manifests = archive.index.manifests.filter((d) => !isReferrerRecord(d));
      if (tag !== undefined && manifests.length !== 1) {
        throw new InvalidArgumentError(
          `the archive holds ${manifests.length} images; -t needs exactly one`,
        );
      }
      const sink = storeSink(store);
      const out: LoadedImage[] = [];
      for (const d of manifests) {
        await copyGraph(archive.content, sink, d, { jobs: 1, ...(onEvent ? { onEvent } : {}) });
        const descriptor = cleanDescriptor(d);
        // An archive from another tool may name no platform: the image's config does.
        if (descriptor.platform === undefined) {
          const platform = await store.platformOf(descriptor);
          if (platform) descriptor.platform = platform;
        }
        out.push({ ...refFor(d, tag), descriptor });
      }
      for (const l of out) if (l.ref !== undefined) await store.tag(l.ref, l.descriptor);
      return out;
    } finally {
      if (spooled !== undefined) await fsp.rm(spooled, { force: true });
    }
  });
}

/**
 * The tag a loaded image gets: `tag`, else the archive's name for it when that is a valid tag;
 * a name that is not is passed over with a warning saying why.
 */
function refFor(
  d: Descriptor,
  tag: string | undefined,
): { ref: string | undefined; warning?: string } {
  if (tag !== undefined) return { ref: normalizeTag(tag) };
  const archived = d.annotations?.[Annotations.refName];
  if (archived === undefined) return { ref: undefined };
  try {
    return { ref: normalizeTag(archived) };
  } catch (e) {
    return {
      ref: undefined,
      warning: `not tagging ${d.digest} with the name the archive gives it, ${JSON.stringify(archived)}: ${why(e)}`,
    };
  }
}

/** The reason an invalid reference error gives, without the reference it quotes again. */
function why(e: unknown): string {
  const msg = (e as Error).message;
  return /^invalid image reference "(?:[^"\\]|\\.)*": (.*)$/s.exec(msg)?.[1] ?? msg;
}

/** An archive's index entry as the store's index holds it: without the archive's annotations. */
function cleanDescriptor(d: Descriptor): Descriptor {
  const clean: Descriptor = {
    mediaType: d.mediaType ?? MediaTypes.imageManifest,
    digest: d.digest,
    size: d.size,
  };
  if (d.platform) clean.platform = d.platform;
  return clean;
}
