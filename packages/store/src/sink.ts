import type { Readable } from 'node:stream';
import {
  ContentSink,
  ContentSource,
  Descriptor,
  DigestMismatchError,
  GraphNode,
  NoSpaceError,
  SizeMismatchError,
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
