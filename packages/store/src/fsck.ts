import {
  Annotations,
  Digest,
  DigestMismatchError,
  ImageIndex,
  NotFoundError,
  SizeMismatchError,
} from '@strata/oci';
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
      const all = await store.reachable(d);
      for (const [digest] of all) {
        if (!(await store.hasBlob(digest))) problems.push(`${name}: missing blob ${digest}`);
      }
    } catch (e) {
      if (e instanceof NotFoundError) problems.push(`${name}: ${e.message}`);
      else if (!(e instanceof DigestMismatchError || e instanceof SizeMismatchError)) {
        problems.push(`${name}: ${(e as Error).message}`);
      }
    }
  }
  return { blobs: blobs.length, problems };
}
