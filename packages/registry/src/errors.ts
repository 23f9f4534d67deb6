import { ErrorCode, ErrorOptions, StrataError } from '@strata/oci';
import { isFallbackTag } from './fallback-tag';

/** One entry of an OCI distribution error body (`{"errors":[{code,message}]}`). */
export interface DistributionError {
  code: string;
  message?: string;
}

/**
 * A registry answered with an unexpected status, or could not be reached. `status` is the HTTP
 * status (undefined for network failures); `errors` the registry's own error codes, e.g.
 * `BLOB_UNKNOWN`, `MANIFEST_UNKNOWN`, `DENIED`.
 */
export class RegistryError extends StrataError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly status?: number,
    readonly errors: DistributionError[] = [],
    options?: ErrorOptions,
  ) {
    super(code, message, options);
  }
}

/**
 * A response body larger than the client will buffer (a manifest over its 4 MiB limit): refused
 * on its Content-Length, or as soon as that many bytes arrived, never read to its end.
 */
export class BodyTooLargeError extends RegistryError {
  constructor(
    readonly limit: number,
    message = `response body larger than ${limit} bytes`,
    options?: ErrorOptions,
  ) {
    super('UNAVAILABLE', message, undefined, [], options);
  }
}

/**
 * The registry or its token service refused our credentials (or we had none and it wants some).
 * Its code is UNAUTHORIZED, not UNAVAILABLE: a script retries a registry that is down, but
 * must fix the credentials (or the account's rights) for this one.
 */
export class RegistryAuthError extends RegistryError {
  constructor(message: string, status?: number, options?: ErrorOptions) {
    super('UNAUTHORIZED', message, status, [], options);
  }
}

/**
 * A reference the registry does not have, said the way a person would look for it: which
 * repository or tag is missing, and the tags the repository does have when the registry lists
 * them. `tags` is undefined when they could not be listed; `repositoryFound` is false when the
 * registry said the repository itself is unknown.
 */
export class ManifestNotFoundError extends RegistryError {
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly reference: string,
    readonly repositoryFound: boolean,
    readonly tags: string[] | undefined,
    options?: ErrorOptions,
  ) {
    super(
      'NOT_FOUND',
      describeMissing(registry, repository, reference, repositoryFound, tags),
      404,
      [],
      options,
    );
  }
}

/** Tags named in a not-found message before the rest are only counted. */
const TAGS_SHOWN = 20;

function describeMissing(
  registry: string,
  repository: string,
  reference: string,
  repositoryFound: boolean,
  tags: string[] | undefined,
): string {
  if (!repositoryFound) return `${registry} has no repository ${repository}`;
  const where = `${registry}/${repository}`;
  if (reference.startsWith('sha256:')) return `${where} has no manifest ${reference}`;
  if (tags === undefined) return `${where} has no tag ${reference}`;
  // The referrers fallback's tags (sha256-<hex>) name no image a user could mean.
  tags = tags.filter((t) => !isFallbackTag(t));
  if (tags.length === 0) return `${where} has no tag ${reference} (it has no tags at all)`;
  // Registries list tags in no useful order; versions read best in numeric order (1.9, 1.10).
  const sorted = [...tags].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const shown = sorted.slice(0, TAGS_SHOWN).join(', ');
  const more = tags.length > TAGS_SHOWN ? `, … ${tags.length} in all` : '';
  return `${where} has no tag ${reference} (its tags: ${shown}${more})`;
}

/** Parse a distribution error body; tolerant of anything that is not one. */
export function parseDistributionErrors(body: Buffer | undefined): DistributionError[] {
  if (!body || body.length === 0 || body.length > 64 * 1024) return [];
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors
      .filter((e): e is { code: unknown; message?: unknown } => typeof e === 'object' && e !== null)
      .map((e) => ({
        code: String(e.code),
        ...(typeof e.message === 'string' ? { message: e.message } : {}),
      }));
  } catch {
    return [];
  }
}

/** `DENIED: requested access to the resource is denied; …` */
export function describeErrors(errors: DistributionError[]): string {
  return errors.map((e) => (e.message ? `${e.code}: ${e.message}` : e.code)).join('; ');
}

/** The errno codes of a registry that is not there: refused, reset, timed out, not in DNS. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
]);

/**
 * Whether `e` says the registry could not be reached at all, rather than that it answered: an
 * HTTP status (401, 403, 404, 5xx), a manifest it sent or a certificate we do not trust are the
 * registry's word, which a copy of the image kept elsewhere must not overrule.
 */
export function isUnreachable(e: unknown): boolean {
  let c: unknown = e;
  for (let depth = 0; typeof c === 'object' && c !== null && depth < 8; depth++) {
    if (c instanceof RegistryError && c.status !== undefined) return false;
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && UNREACHABLE.has(code)) return true;
    c = (c as { cause?: unknown }).cause;
  }
  return false;
}
