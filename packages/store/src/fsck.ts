import {
  Annotations,
  Digest,
  DigestMismatchError,
  GraphNode,
  ImageIndex,
  NotFoundError,
  graphDigests,
} from '@strata/oci';
import { layersAndDiffIds } from './sink';
import { SUBJECT_ANNOTATION, isReferrerRecord } from './referrers';
import type { Store } from './store';

/** The blob an error from reading a store's graph is about, when its message names one. */
function blobOf(e: unknown): Digest | undefined {
  const m = /\bblob (sha256:[a-f0-9]{64})\b/.exec((e as Error).message);
  return m ? (m[1] as Digest) : undefined;
}

/** `used by a, b`, or what it means that no tag uses the blob. */
function usedBy(users: Set<string> | undefined): string {
  return users && users.size > 0
    ? `used by ${[...users].sort().join(', ')}`
    : 'used by no tag (gc removes it)';
}

/**
 * Re-hash every blob and check that every referenced blob exists: of each tag, with what is
 * attached to it, and of each attached artifact, whose subject must be there too. One problem
 * is one line that names the blob once, with the tags that use it: what to pull, create or
 * `strata rm` again.
 */
export async function fsck(store: Store): Promise<{ blobs: number; problems: string[] }> {
  const problems: string[] = [];
  const blobs = await store.allBlobs();
  const corrupt = new Map<Digest, string>();
  for (const hex of blobs) {
    const digest = `sha256:${hex}` as Digest;
    try {
      const s = await store.openBlob(digest);
      for await (const _ of s) void _;
    } catch (e) {
      corrupt.set(
        digest,
        e instanceof DigestMismatchError
          ? 'its content does not match its digest'
          : (e as Error).message.replace(`blob ${digest}: `, ''),
      );
    }
  }
  let index: ImageIndex | undefined;
  try {
    index = await store.readIndex();
  } catch (e) {
    problems.push(`index.json: ${(e as Error).message}`);
  }
  /** Blob → the tags (or artifacts) that reach it. */
  const users = new Map<Digest, Set<string>>();
  const use = (digest: Digest, name: string): void => {
    const set = users.get(digest) ?? new Set<string>();
    set.add(name);
    users.set(digest, set);
  };
  const missing = new Set<Digest>();
  const other: string[] = [];
  for (const d of index?.manifests ?? []) {
    const name = d.annotations?.[Annotations.refName] ?? d.digest;
    const subject = isReferrerRecord(d) ? d.annotations?.[SUBJECT_ANNOTATION] : undefined;
    if (subject !== undefined && !(await store.hasBlob(subject as Digest))) {
      problems.push(`artifact ${d.digest}: its subject ${subject} is missing`);
    }
    try {
      const graph = await store.graph(d);
      for (const [digest] of graphDigests(graph)) {
        use(digest, name);
        if (!(await store.hasBlob(digest))) missing.add(digest);
      }
      for (const m of graph.manifests) other.push(...(await diffIdProblems(store, name, m)));
    } catch (e) {
      // The walk stops at a manifest it cannot read: that blob is the tag's problem.
      const blob = blobOf(e);
      use(blob ?? d.digest, name);
      if (e instanceof NotFoundError && blob !== undefined) missing.add(blob);
      else if (blob === undefined || !corrupt.has(blob))
        other.push(`${name}: ${(e as Error).message}`);
    }
  }
  for (const [digest, why] of corrupt) {
    problems.push(`corrupt blob ${digest}: ${why}; ${usedBy(users.get(digest))}`);
  }
  for (const digest of missing)
    problems.push(`missing blob ${digest}; ${usedBy(users.get(digest))}`);
  problems.push(...other);
  return { blobs: blobs.length, problems };
}

/**
 * What is wrong with the diff_ids of image `node`: a count other than its layers', or a layer
 * whose recorded diffID (known from an earlier unpack that hashed it) is not the one listed.
 */
async function diffIdProblems(store: Store, name: string, node: GraphNode): Promise<string[]> {
  let image: Awaited<ReturnType<typeof layersAndDiffIds>>;
  try {
    image = await layersAndDiffIds(store, node, `manifest ${node.descriptor.digest}`);
  } catch {
    return []; // a damaged or missing config is reported above
  }
  if (image === undefined) return [];
  const { layers, diffIds } = image;
  const where = `${name}: image ${node.descriptor.digest}`;
  if (diffIds.length !== layers.length) {
    return [`${where}: ${layers.length} layers but ${diffIds.length} diff_ids`];
  }
  const out: string[] = [];
  for (const [i, l] of layers.entries()) {
    const known = await store.knownDiffId(l.digest);
    if (known !== undefined && known !== diffIds[i]) {
      out.push(
        `${where}: layer ${i} (${l.digest}) unpacks to ${known}, but its config says ${String(diffIds[i])}`,
      );
    }
  }
  return out;
}
