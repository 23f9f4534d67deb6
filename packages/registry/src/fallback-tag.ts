import { Digest, digestHex } from '@strata/oci';

/**
 * The tag of the referrers fallback (OCI distribution spec 1.1): `sha256-<hex of subject>`
 * holds an image index of the referrers' descriptors, on a registry without the referrers API.
 */
export function fallbackTag(subject: Digest): string {
  return `sha256-${digestHex(subject)}`;
}

/**
 * Whether a tag has the fallback's form: such a tag belongs to the referrers of the image whose
 * digest it spells, never to an image pushed or listed under it.
 */
export function isFallbackTag(tag: string): boolean {
  return /^sha256-[0-9a-f]{64}$/.test(tag);
}
