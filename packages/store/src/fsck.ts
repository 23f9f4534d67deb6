import {
  Annotations,
  Digest,
  DigestMismatchError,
  GraphNode,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  NotFoundError,
  SizeMismatchError,
  graphDigests,
  isImageMediaType,
  parseJson,
} from '@strata/oci';
import { IMAGE_CONFIGS } from './sink';
import { SUBJECT_ANNOTATION, isReferrerRecord } from './referrers';
import type { Store } from './store';

/**
 * Re-hash every blob and check that every referenced blob exists: of each tag, with what is
 * attached to it, and of each attached artifact, whose subject must be there too.
 */
export async function fsck(store: Store): Promise<{ blobs: number; problems: string[] }> {
  const problems: string[] = [];
  const blobs = await store.allBlobs();
  for (const hex of blobs) {
    const digest = `sha256:${hex}` as Digest;
    try {
      const s = await store.openBlob(digest);
      for await (const _ of s) void _;
    } catch (e) {
      problems.push(`corrupt blob ${digest}: ${(e as Error).message}`);
    }
  }
  let index: ImageIndex | undefined;
  try {
    index = await store.readIndex();
  } catch (e) {
    problems.push(`index.json: ${(e as Error).message}`);
  }
  for (const d of index?.manifests ?? []) {
    const name = d.annotations?.[Annotations.refName] ?? d.digest;
    const subject = isReferrerRecord(d) ? d.annotations?.[SUBJECT_ANNOTATION] : undefined;
    if (subject !== undefined && !(await store.hasBlob(subject as Digest))) {
      problems.push(`artifact ${d.digest}: its subject ${subject} is missing`);
    }
    try {
      const graph = await store.graph(d);
      for (const [digest] of graphDigests(graph)) {
        if (!(await store.hasBlob(digest))) problems.push(`${name}: missing blob ${digest}`);
      }
      for (const m of graph.manifests) problems.push(...(await diffIdProblems(store, name, m)));
    } catch (e) {
      if (e instanceof NotFoundError) problems.push(`${name}: ${e.message}`);
      else if (!(e instanceof DigestMismatchError || e instanceof SizeMismatchError)) {
        problems.push(`${name}: ${(e as Error).message}`);
      }
    }
  }
  return { blobs: blobs.length, problems };
}

/**
 * What is wrong with the diff_ids of image `node`: a count other than its layers', or a layer
 * whose recorded diffID (known from an earlier unpack that hashed it) is not the one listed.
 */
async function diffIdProblems(store: Store, name: string, node: GraphNode): Promise<string[]> {
  if (!isImageMediaType(node.descriptor.mediaType)) return [];
  const m = parseJson(node.bytes, `manifest ${node.descriptor.digest}`) as ImageManifest;
  if (!m.config || !IMAGE_CONFIGS.includes(m.config.mediaType) || !Array.isArray(m.layers))
    return [];
  let config: ImageConfig;
  try {
    const what = `image config ${m.config.digest}`;
    config = parseJson(await store.readBlob(m.config.digest, m.config.size), what) as ImageConfig;
  } catch {
    return []; // a damaged or missing config is reported above
  }
  const diffIds: unknown[] = Array.isArray(config?.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
  const where = `${name}: image ${node.descriptor.digest}`;
  if (diffIds.length !== m.layers.length) {
    return [`${where}: ${m.layers.length} layers but ${diffIds.length} diff_ids`];
  }
  const out: string[] = [];
  for (const [i, l] of m.layers.entries()) {
    const known = await store.knownDiffId(l.digest);
    if (known !== undefined && known !== diffIds[i]) {
      out.push(
        `${where}: layer ${i} (${l.digest}) unpacks to ${known}, but its config says ${String(diffIds[i])}`,
      );
    }
  }
  return out;
}
