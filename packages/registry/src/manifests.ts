import {
  Descriptor,
  DigestMismatchError,
  MediaType,
  MediaTypes,
  isDigest,
  sha256,
} from '@strata/oci';
import { BodyTooLargeError, ManifestNotFoundError, RegistryError } from './errors';
import { headerValue } from './http';
import type { Repo } from './repository';

/** Media types we accept for manifests, most preferred first. */
export const MANIFEST_ACCEPT = [
  MediaTypes.imageIndex,
  MediaTypes.imageManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.dockerManifest,
].join(', ');

/** Largest manifest we will read (the distribution spec's recommended limit). */
export const MAX_MANIFEST = 4 * 1024 * 1024;

export interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** True for an image index or a Docker manifest list. */
export function isIndexMediaType(mt: string): boolean {
  return mt === MediaTypes.imageIndex || mt === MediaTypes.dockerManifestList;
}

export function isManifestMediaType(mt: string): boolean {
  return (
    isIndexMediaType(mt) || mt === MediaTypes.imageManifest || mt === MediaTypes.dockerManifest
  );
}

/** Fetch a manifest or index by tag or digest; verified against the digest when there is one. */
export async function getManifest(r: Repo, reference: string): Promise<FetchedManifest> {
  const res = await r.transport
    .request({
      method: 'GET',
      url: `/v2/${r.repository}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [r.scope],
      expect: [200],
      what: `GET manifest ${reference}`,
      maxBody: MAX_MANIFEST,
    })
    .catch((e: unknown) => {
      if (!(e instanceof BodyTooLargeError)) throw e;
      throw new RegistryError(
        'INVALID_DOCUMENT',
        `${r.registry}/${r.repository}: manifest ${reference} is larger than the ${MAX_MANIFEST / (1024 * 1024)} MiB limit (refused, not read)`,
        undefined,
        [],
        { cause: e },
      );
    });
  const digest = sha256(res.body);
  const expected = isDigest(reference)
    ? reference
    : headerValue(res.headers['docker-content-digest']);
  if (expected !== undefined && isDigest(expected) && expected !== digest) {
    throw new RegistryError(
      'DIGEST_MISMATCH',
      `${r.registry}/${r.repository}: manifest ${reference}: digest mismatch: expected ${expected}, got ${digest}`,
    );
  }
  let mediaType = (headerValue(res.headers['content-type']) ?? '').split(';')[0]?.trim() ?? '';
  let doc: { mediaType?: unknown; manifests?: unknown; config?: unknown };
  try {
    doc = JSON.parse(res.body.toString('utf8')) as typeof doc;
  } catch {
    throw new RegistryError(
      'INVALID_DOCUMENT',
      `${r.registry}/${r.repository}: manifest ${reference} is not JSON`,
    );
  }
  if (typeof doc.mediaType === 'string' && isManifestMediaType(doc.mediaType))
    mediaType = doc.mediaType;
  if (!isManifestMediaType(mediaType)) {
    mediaType = Array.isArray(doc.manifests) ? MediaTypes.imageIndex : MediaTypes.imageManifest;
  }
  return { descriptor: { mediaType, digest, size: res.body.length }, bytes: res.body };
}

/** HEAD a manifest: its descriptor, or undefined when the tag or digest is unknown. */
export async function headManifest(r: Repo, reference: string): Promise<Descriptor | undefined> {
  const res = await r.transport.request({
    method: 'HEAD',
    url: `/v2/${r.repository}/manifests/${reference}`,
    headers: { accept: MANIFEST_ACCEPT },
    scopes: [r.scope],
    expect: [200, 404],
    what: `HEAD manifest ${reference}`,
  });
  if (res.status === 404) return undefined;
  const digest = headerValue(res.headers['docker-content-digest']);
  const size = Number(headerValue(res.headers['content-length']));
  const mediaType = (headerValue(res.headers['content-type']) ?? '').split(';')[0] ?? '';
  if (!digest || !isDigest(digest)) return undefined;
  return { mediaType: mediaType as MediaType, digest, size };
}

/** PUT a manifest or index under a tag or its digest. The registry's digest must match ours. */
export async function putManifest(
  r: Repo,
  reference: string,
  bytes: Buffer,
  mediaType: MediaType,
): Promise<Descriptor> {
  return (await sendManifest(r, reference, bytes, mediaType)).descriptor;
}

/**
 * {@link putManifest}, also telling whether the registry took note of the manifest's `subject`
 * (OCI distribution 1.1 answers with an `OCI-Subject` header); a registry that did not needs
 * the referrers fallback tag.
 */
export async function sendManifest(
  r: Repo,
  reference: string,
  bytes: Buffer,
  mediaType: MediaType,
): Promise<{ descriptor: Descriptor; subjectTracked: boolean }> {
  const digest = sha256(bytes);
  if (isDigest(reference) && reference !== digest) {
    throw new DigestMismatchError(reference, digest, 'manifest');
  }
  const res = await r.transport.request({
    method: 'PUT',
    url: `/v2/${r.repository}/manifests/${reference}`,
    headers: { 'content-type': mediaType, 'content-length': bytes.length },
    body: bytes,
    scopes: [r.scope],
    expect: [201],
    what: `PUT manifest ${reference}`,
  });
  const theirs = headerValue(res.headers['docker-content-digest']);
  if (theirs && isDigest(theirs) && theirs !== digest) {
    throw new RegistryError(
      'DIGEST_MISMATCH',
      `${r.registry}: PUT manifest ${reference}: the registry computed ${theirs}, we sent ${digest}`,
    );
  }
  return {
    descriptor: { mediaType, digest, size: bytes.length },
    subjectTracked: headerValue(res.headers['oci-subject']) !== undefined,
  };
}

/**
 * {@link getManifest} for a reference a person wrote (a FROM line, a pull): a 404 becomes a
 * {@link ManifestNotFoundError} that says whether the repository or the tag is missing and
 * lists the tags there are, where the registry allows listing them.
 */
export async function getNamedManifest(r: Repo, reference: string): Promise<FetchedManifest> {
  try {
    return await getManifest(r, reference);
  } catch (e) {
    if (!(e instanceof RegistryError) || e.status !== 404) throw e;
    let tags: string[] | undefined;
    let repositoryFound = true;
    try {
      tags = await tagList(r, 1000, true);
    } catch (t) {
      // docker-registry (CNCF distribution) answers NAME_UNKNOWN for a repository it lacks.
      if (t instanceof RegistryError && t.status === 404) repositoryFound = false;
      // Otherwise (listing denied, not offered) the message goes without the list.
    }
    throw new ManifestNotFoundError(r.registry, r.repository, reference, repositoryFound, tags, {
      cause: e,
    });
  }
}

/**
 * All tags of the repository, following `Link` pagination. An unknown repository lists no
 * tags, or throws the registry's 404 when `strict`.
 */
export async function tagList(r: Repo, pageSize = 1000, strict = false): Promise<string[]> {
  const tags: string[] = [];
  let url: string | undefined = `/v2/${r.repository}/tags/list?n=${pageSize}`;
  for (let pages = 0; url && pages < 1000; pages++) {
    const res = await r.transport.request({
      method: 'GET',
      url,
      scopes: [r.scope],
      expect: strict ? [200] : [200, 404],
      what: 'GET tags/list',
    });
    if (res.status === 404) return tags;
    const doc = JSON.parse(res.body.toString('utf8')) as { tags?: unknown };
    if (Array.isArray(doc.tags)) for (const t of doc.tags) if (typeof t === 'string') tags.push(t);
    const link = headerValue(res.headers.link);
    const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
    url = m?.[1] ? new URL(m[1], res.url).toString() : undefined;
  }
  return tags;
}
