import type { Digest } from './digest';
import { isDigest } from './digest';
import { InvalidDocumentError } from './errors';
import type { Descriptor } from './types';
import { parseJson } from './validate';

/**
 * An artifact manifest (`bytes`, descriptor `d`) as a referrers index lists it (OCI
 * distribution spec 1.1): its artifactType (or, without one, its config's media type) and its
 * annotations; and the digest of its `subject`. InvalidDocumentError when it has no subject.
 */
export function describeReferrer(
  d: Descriptor,
  bytes: Buffer,
): { descriptor: Descriptor; subject: Digest } {
  const what = `artifact ${d.digest}`;
  const m = parseJson(bytes, what) as {
    artifactType?: unknown;
    config?: { mediaType?: unknown };
    subject?: { digest?: unknown };
    annotations?: Record<string, string>;
  } | null;
  const subject = m?.subject?.digest;
  if (m === null || typeof m !== 'object' || typeof subject !== 'string' || !isDigest(subject)) {
    throw new InvalidDocumentError(what, ['a referrer without a subject']);
  }
  const artifactType =
    typeof m.artifactType === 'string'
      ? m.artifactType
      : typeof m.config?.mediaType === 'string'
        ? m.config.mediaType
        : undefined;
  return {
    descriptor: {
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      ...(artifactType === undefined ? {} : { artifactType }),
      ...(m.annotations && typeof m.annotations === 'object' ? { annotations: m.annotations } : {}),
    },
    subject,
  };
}
