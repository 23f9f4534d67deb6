import { InvalidArgumentError } from './errors';
import { Digest, isDigest } from './digest';

/**
 * An image reference in Docker's grammar: `[registry/]repository[:tag][@digest]`.
 * A reference without a registry names an image in the local store.
 */
export interface Reference {
  /** Registry host[:port], when the first path component looks like one. */
  registry?: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

function looksLikeRegistry(part: string): boolean {
  return part === 'localhost' || part.includes('.') || part.includes(':') || /[A-Z]/.test(part);
}

/**
 * Whether `host` is a host[:port] that a URL can name. The pattern above lets through what the
 * URL parser refuses (a port over 65535, a name that ends in a number but is no IPv4 address,
 * a malformed IPv6 address); the registry client builds its URLs from the host, so those are
 * refused here, as a bad reference, rather than there.
 */
function isUrlHost(host: string): boolean {
  try {
    return new URL(`https://${host}/`).host !== '';
  } catch {
    return false;
  }
}

export function parseReference(input: string): Reference {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(input)}: ${why}`);
  };
  if (input.length === 0) bad('empty');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) {
      // `user:password@host/repo`: say where credentials go rather than that a digest is bad.
      if (!rest.slice(0, at).includes('/') && d.includes('/'))
        bad('credentials do not belong in a reference; use `strata login`');
      bad('digest must be sha256:<64 hex>');
    }
    digest = d as Digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`invalid tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry: string | undefined;
  if (parts.length > 1 && looksLikeRegistry(parts[0] ?? '')) {
    registry = parts.shift();
    if (
      !registry ||
      !/^[A-Za-z0-9.-]+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/.test(registry)
    ) {
      bad('invalid registry host');
    }
    if (!isUrlHost(registry as string)) bad('invalid registry host');
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    bad('repository must be lowercase path components of [a-z0-9._-]');
  }
  const ref: Reference = { repository: parts.join('/') };
  if (registry !== undefined) ref.registry = registry;
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The reference with `:latest` filled in when it has neither tag nor digest. */
export function withDefaultTag(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref;
}

export function formatReference(ref: Reference): string {
  let s = ref.registry ? `${ref.registry}/${ref.repository}` : ref.repository;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}
