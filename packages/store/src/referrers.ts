import {
  Annotations,
  Descriptor,
  Digest,
  ImageIndex,
  MediaTypes,
  describeReferrer,
} from '@strata/oci';

/**
 * How an OCI layout (the store, a `.tmpl.img` archive) records an attached artifact: an
 * untagged entry of `index.json` (the image-layout spec allows those) for the artifact's
 * manifest, carrying its artifactType and annotations, and the digest of its subject under
 * this key. Tools that know nothing of it (skopeo, umoci) see one more untagged manifest.
 */
export const SUBJECT_ANNOTATION = 'io.strata.referrer.subject';

/** The empty JSON object, the config of an artifact that needs none (OCI 1.1). */
export const EMPTY_CONFIG: Descriptor = {
  mediaType: MediaTypes.empty,
  digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a' as Digest,
  size: 2,
};

/** Whether an entry of index.json records an artifact rather than naming a tagged image. */
export function isReferrerRecord(d: Descriptor): boolean {
  return (
    d.annotations?.[SUBJECT_ANNOTATION] !== undefined &&
    d.annotations[Annotations.refName] === undefined
  );
}

/**
 * The index.json entry recording the artifact manifest `bytes` (descriptor `d`): what a
 * referrers index lists for it (see describeReferrer), and the digest of its `subject`.
 */
export function referrerRecord(d: Descriptor, bytes: Buffer): Descriptor {
  const { descriptor, subject } = describeReferrer(d, bytes);
  return {
    ...descriptor,
    annotations: { ...(descriptor.annotations ?? {}), [SUBJECT_ANNOTATION]: subject },
  };
}

/**
 * The referrers of `subject` that `index` records, as the distribution spec's referrers index
 * lists them (artifactType, the manifest's annotations), of `artifactType` only when given; in
 * digest order.
 */
/**
 * The file of an archive (`strata save`) that records the artifacts attached to its images, as
 * an image index of the store's referrer records. index.json holds only the images, so that
 * tools that take an archive's one image unasked (skopeo's `oci-archive:FILE`) still do; an
 * archive from before this file recorded them in index.json, which is read as well.
 */
export const ARCHIVE_REFERRERS = 'strata-referrers.json';

export function referrersIn(
  index: ImageIndex,
  subject: Digest,
  artifactType?: string,
): Descriptor[] {
  const out: Descriptor[] = [];
  for (const d of index.manifests) {
    if (!isReferrerRecord(d) || d.annotations?.[SUBJECT_ANNOTATION] !== subject) continue;
    if (artifactType !== undefined && d.artifactType !== artifactType) continue;
    const { [SUBJECT_ANNOTATION]: _subject, ...annotations } = d.annotations ?? {};
    out.push({
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      ...(d.artifactType === undefined ? {} : { artifactType: d.artifactType }),
      ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    });
  }
  return out.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

/** `index` with the record `r` in it, once (a repeated attach replaces its own record). */
export function withRecord(index: ImageIndex, r: Descriptor): void {
  index.manifests = index.manifests.filter((d) => !(isReferrerRecord(d) && d.digest === r.digest));
  index.manifests.push(r);
}
