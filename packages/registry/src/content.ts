import {
  ContentSink,
  ContentSource,
  CorruptError,
  Descriptor,
  describeReferrer,
  isImageMediaType,
  isIndexMediaType,
} from '@strata/oci';
import { StoreContent, decompressBlob } from '@strata/store';
import { RegistryError } from './errors';
import * as download from './download';
import * as manifests from './manifests';
import * as referrers from './referrers';
import type { Repo } from './repository';
import * as upload from './upload';

/** Largest non-manifest blob read whole (a config); layers are streamed. */
const MAX_WHOLE_BLOB = 64 << 20;

/**
 * A repository as a backend of the core: manifests are fetched by digest and verified, blobs are
 * lazy streams verified at EOF, referrers come from the referrers API or its fallback tag, and ranges (for a writer that resumes) are retried and resumed
 * across network failures. Nothing is written anywhere: a pull is this source copied into a
 * store's sink (see copyGraph).
 */
export function registryContent(r: Repo): ContentSource {
  return {
    readBlob: async (d) => {
      if (isIndexMediaType(d.mediaType) || isImageMediaType(d.mediaType)) {
        const m = await manifests.getManifest(r, d.digest);
        if (m.bytes.length !== d.size) {
          throw new RegistryError(
            'SIZE_MISMATCH',
            `${r.registry}: manifest ${d.digest} is ${m.bytes.length} bytes, its index says ${d.size}`,
          );
        }
        return m.bytes;
      }
      if (d.size > MAX_WHOLE_BLOB) {
        throw new CorruptError(`${r.registry}: blob ${d.digest} is too large to read whole`);
      }
      const chunks: Buffer[] = [];
      for await (const c of await download.fetchBlob(r, d)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
    openBlob: (d) => download.fetchBlob(r, d),
    openRange: (d, start, end) => download.fetchRange(r, d, start, end),
    openDecompressed: async (d, c) => decompressBlob(await download.fetchBlob(r, d), c),
    // Only what the walk can copy: artifacts are image manifests (OCI 1.1).
    referrers: async (d) =>
      (await referrers.listReferrers(r, d.digest)).filter((x) => isImageMediaType(x.mediaType)),
  };
}

export interface RegistrySinkOptions {
  /** Repositories on the same registry that may hold a blob: a cross-repo mount is tried. */
  mountFrom?: (d: Descriptor) => readonly string[];
  /** Whether a blob is most likely missing, so its upload session starts with the HEAD. */
  expectMissing?: (d: Descriptor) => boolean;
  /** Upload in PATCH chunks of this many bytes instead of one PUT per blob. */
  chunkSize?: number;
}

/**
 * A repository as the sink of a copy (a push): a blob it has is skipped after a HEAD, one a
 * sibling repository has is mounted, the rest are uploaded from the source. An artifact goes
 * after its subject, and into the subject's fallback tag where the registry does not track
 * subjects itself. A store source's
 * reader goes out as it is read, verified before its last chunk is sent, so a corrupt blob never
 * completes an upload.
 */
export function registrySink(
  r: Repo,
  opts: RegistrySinkOptions = {},
): ContentSink<upload.PushOutcome> {
  return {
    putBlob: async (d, src, onProgress) => {
      const store = src as Partial<StoreContent>;
      // Chunks are ranges of the blob; a source without ranges sends it in one PUT.
      const chunkSize = src.openRange ? opts.chunkSize : undefined;
      const outcome = await upload.pushBlob(
        r,
        d,
        (start, end) => {
          if (start !== undefined && src.openRange) return src.openRange(d, start, end);
          return store.openBlobReader ? store.openBlobReader(d) : src.openBlob(d);
        },
        {
          mountFrom: opts.mountFrom?.(d) ?? [],
          expectMissing: opts.expectMissing?.(d) ?? false,
          ...(chunkSize ? { chunkSize } : {}),
          ...(onProgress ? { onProgress } : {}),
        },
      );
      return { outcome, bytes: outcome === 'uploaded' ? d.size : 0 };
    },
    putManifest: async (node, tag) => {
      const sent = await manifests.sendManifest(
        r,
        tag ?? node.descriptor.digest,
        node.bytes,
        node.descriptor.mediaType,
      );
      // A registry that did not track the subject lists the artifact only in the fallback tag.
      if (node.subject !== undefined && !sent.subjectTracked) {
        const { descriptor } = describeReferrer(node.descriptor, node.bytes);
        await referrers.addFallbackReferrer(r, node.subject.digest, descriptor);
      }
    },
  };
}
