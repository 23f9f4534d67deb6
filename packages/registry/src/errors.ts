import { ErrorCode, ErrorOptions, StrataError } from '@strata/oci';

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
 * The registry or its token service refused our credentials (or we had none and it wants some).
 * Checked with `instanceof`; its code is UNAVAILABLE because the operation cannot proceed.
 */
export class RegistryAuthError extends RegistryError {
  constructor(message: string, status?: number, options?: ErrorOptions) {
    super('UNAVAILABLE', message, status, [], options);
  }
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
