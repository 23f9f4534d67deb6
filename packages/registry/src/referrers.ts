import { Descriptor, Digest, ImageIndex, MediaTypes, encodeJson, isDigest } from '@strata/oci';
import { RegistryError } from './errors';
import { fallbackTag } from './fallback-tag';
import { headerValue } from './http';
import * as manifests from './manifests';
import type { Repo } from './repository';

/** The descriptors of an index's manifests that are well formed; the rest are left out. */
function descriptorsOf(body: Buffer): Descriptor[] {
  let doc: { manifests?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch {
    return [];
  }
  if (!Array.isArray(doc.manifests)) return [];
  return (doc.manifests as Array<Partial<Descriptor> | null>).filter(
    (d): d is Descriptor =>
      d !== null &&
      typeof d === 'object' &&
      typeof d.mediaType === 'string' &&
      typeof d.digest === 'string' &&
      isDigest(d.digest) &&
      typeof d.size === 'number' &&
      Number.isSafeInteger(d.size) &&
      d.size >= 0,
  );
}

/** The fallback index under `subject`'s tag, or undefined when the tag is not there. */
async function fallbackIndex(r: Repo, subject: Digest): Promise<Buffer | undefined> {
  try {
    return (await manifests.getManifest(r, fallbackTag(subject))).bytes;
  } catch (e) {
    if (e instanceof RegistryError && e.status === 404) return undefined;
    throw e;
  }
}

/**
 * The referrers of `subject`: from the referrers API (`GET /v2/<name>/referrers/<digest>`,
 * following its `Link` pages), or, where the registry answers that with 404 (it has no such
 * API, as Debian's docker-registry 2.8), from the fallback tag. None when neither has any.
 */
export async function listReferrers(r: Repo, subject: Digest): Promise<Descriptor[]> {
  const out: Descriptor[] = [];
  let url: string | undefined = `/v2/${r.repository}/referrers/${subject}`;
  for (let pages = 0; url !== undefined && pages < 1000; pages++) {
    const res = await r.transport.request({
      method: 'GET',
      url,
      headers: { accept: MediaTypes.imageIndex },
      scopes: [r.scope],
      expect: pages === 0 ? [200, 404] : [200],
      what: `GET referrers of ${subject}`,
      maxBody: manifests.MAX_MANIFEST,
    });
    if (res.status === 404) {
      const fallback = await fallbackIndex(r, subject);
      if (fallback === undefined) return [];
      // Nothing keeps the fallback index in step with deletions: an entry whose manifest is
      // gone is left out, rather than failing the pull of the template it names.
      const listed = descriptorsOf(fallback);
      const there = await Promise.all(
        listed.map(async (d) => (await manifests.headManifest(r, d.digest)) !== undefined),
      );
      return listed.filter((_, i) => there[i]);
    }
    out.push(...descriptorsOf(res.body));
    const link = headerValue(res.headers.link);
    const next = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
    url = next?.[1] ? new URL(next[1], res.url).toString() : undefined;
  }
  return out;
}

/**
 * Add `referrer` to the fallback index of `subject`: read, modify, write, keeping the entries
 * others put there (an entry for the same digest is replaced). Nothing is written when the
 * index lists it already. Two pushers at once can still lose one's entry, as the spec's
 * fallback allows; a repeated push puts it back.
 */
export async function addFallbackReferrer(
  r: Repo,
  subject: Digest,
  referrer: Descriptor,
): Promise<void> {
  const held = await fallbackIndex(r, subject);
  const entries = held === undefined ? [] : descriptorsOf(held);
  const entry: Descriptor = {
    mediaType: referrer.mediaType,
    digest: referrer.digest,
    size: referrer.size,
    ...(referrer.artifactType === undefined ? {} : { artifactType: referrer.artifactType }),
    ...(referrer.annotations === undefined ? {} : { annotations: referrer.annotations }),
  };
  const same = entries.find((d) => d.digest === entry.digest);
  if (same && encodeJson(same).equals(encodeJson(entry))) return;
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageIndex,
    manifests: [...entries.filter((d) => d.digest !== entry.digest), entry],
  };
  await manifests.putManifest(r, fallbackTag(subject), encodeJson(index), MediaTypes.imageIndex);
}
