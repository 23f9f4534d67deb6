import type { Readable } from 'node:stream';
import {
  ContentSink,
  ContentSource,
  Descriptor,
  DigestMismatchError,
  GraphNode,
  InvalidDocumentError,
  MediaTypes,
  NoSpaceError,
  SizeMismatchError,
  drain,
  isImageMediaType,
  parseJson,
} from '@strata/oci';
import type { Store } from './store';

export type StoreOutcome = 'present' | 'downloaded';

/**
 * A store as the sink of a copy (a pull, a load). A blob's bytes go once, straight into the
 * store's partial file for its digest (see `Store.withPartial`), and become a blob only when
 * size and digest check out. A copy that was interrupted, even killed, resumes from there: the
 * source is asked only for the bytes that are missing (`openRange`), and the prefix on disk is
 * hashed instead of fetched again.
 */
export function storeSink(store: Store): ContentSink<StoreOutcome> {
  return {
    putBlob: (d, src, onProgress) => putBlob(store, d, src, onProgress),
    putManifest: async (node: GraphNode, tag?: string) => {
      await checkDiffIdCount(store, node, tag);
      await store.putBytes(node.bytes, {
        digest: node.descriptor.digest,
        size: node.descriptor.size,
      });
      if (node.subject !== undefined) await store.recordReferrer(node.descriptor, node.bytes);
      if (tag !== undefined) await store.tag(tag, node.descriptor);
    },
    // A blob that fails its check here is fetched from the source again.
    heldManifest: async (d) =>
      (await store.hasBlob(d.digest))
        ? store.readBlob(d.digest, d.size).catch(() => undefined)
        : undefined,
  };
}

async function putBlob(
  store: Store,
  d: Descriptor,
  src: ContentSource,
  onProgress?: (bytes: number) => void,
): Promise<{ outcome: StoreOutcome; bytes: number }> {
  const present = { outcome: 'present' as const, bytes: 0 };
  // A blob skipped as present is touched, so that a gc keeps it for this copy's lease.
  if (await store.holdsBlob(d.digest, d.size)) return present;
  await refuseLyingSize(store, d);
  return store.withPartial({ digest: d.digest, size: d.size }, async (partial) => {
    // Another process may have fetched it while we waited for the lock.
    if (await store.holdsBlob(d.digest, d.size)) return present;
    let restartedClean = false;
    for (;;) {
      const have = await partial.length();
      try {
        if (have < d.size) {
          // Without ranges the source sends the whole blob, verified: start from nothing.
          const from = src.openRange ? have : 0;
          const body = await (src.openRange ? src.openRange(d, from) : src.openBlob(d));
          onProgress?.(from);
          await partial.append(counted(body, from, onProgress), from);
        }
        await partial.commit();
        return { outcome: 'downloaded' as const, bytes: d.size };
      } catch (e) {
        // On a full disk the bytes kept for a resume are what fills it: they go, so that the
        // store is as it was and a gc has room to run.
        if (e instanceof NoSpaceError) await partial.reset().catch(() => undefined);
        if (e instanceof DigestMismatchError || e instanceof SizeMismatchError) {
          await partial.reset();
          // A stale partial from an earlier run may be what was wrong: start clean once.
          if (have > 0 && !restartedClean) {
            restartedClean = true;
            continue;
          }
        }
        throw e;
      }
    }
  });
}

/**
 * A stored copy of the blob at another size than the descriptor's: if it still hashes to its
 * digest, the descriptor lies about the size (refused, as the source's copy would have been,
 * since the size is part of a descriptor's identity); if not, the copy is damaged, and the copy
 * from the source replaces it.
 */
async function refuseLyingSize(store: Store, d: Descriptor): Promise<void> {
  if (!(await store.hasBlob(d.digest))) return;
  const intact = await drain(await store.openBlob(d.digest)).then(
    () => true,
    () => false,
  );
  if (intact) await store.blobFile(d.digest, d.size);
}

/** The config media types of images (not of artifacts, whose configs are anything). */
export const IMAGE_CONFIGS: readonly string[] = [MediaTypes.imageConfig, MediaTypes.dockerConfig];

/**
 * Refuse an image whose config lists another number of diff_ids than its manifest has layers:
 * nothing could unpack it. Its config is in the store by now (blobs go before manifests), and
 * small; the layers are not read (a diff_id that is wrong in value is found when the layer is
 * first read, which verifies it).
 */
async function checkDiffIdCount(store: Store, node: GraphNode, tag?: string): Promise<void> {
  const what = `image ${tag ?? node.descriptor.digest}`;
  const image = await layersAndDiffIds(store, node, what);
  if (image !== undefined && image.diffIds.length !== image.layers.length) {
    throw new InvalidDocumentError(what, [
      `its manifest has ${image.layers.length} layers but its config ${image.diffIds.length} diff_ids`,
    ]);
  }
}

/**
 * An image manifest's layers and its config's diff_ids (empty when it lists none), the config
 * read from the store; undefined for a manifest that is not an image's. `what` names the
 * manifest in a parse error.
 */
export async function layersAndDiffIds(
  store: Store,
  node: GraphNode,
  what: string,
): Promise<{ layers: Descriptor[]; diffIds: unknown[] } | undefined> {
  if (!isImageMediaType(node.descriptor.mediaType)) return undefined;
  const m = parseJson(node.bytes, what) as { config?: Descriptor; layers?: Descriptor[] };
  if (!m.config || !IMAGE_CONFIGS.includes(m.config.mediaType) || !Array.isArray(m.layers))
    return undefined;
  const config = parseJson(
    await store.readBlob(m.config.digest, m.config.size),
    `image config ${m.config.digest}`,
  ) as { rootfs?: { diff_ids?: unknown } } | null;
  const diffIds = config?.rootfs?.diff_ids;
  return { layers: m.layers, diffIds: Array.isArray(diffIds) ? diffIds : [] };
}

/** Pass a body through, reporting the running byte count; destroys it when done. */
export async function* counted(
  body: Readable,
  start: number,
  onProgress?: (bytes: number) => void,
): AsyncGenerator<Buffer> {
  let got = start;
  try {
    for await (const chunk of body) {
      got += (chunk as Buffer).length;
      onProgress?.(got);
      yield chunk as Buffer;
    }
  } finally {
    body.destroy();
  }
}
