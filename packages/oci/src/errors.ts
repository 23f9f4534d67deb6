/**
 * Strata's error taxonomy. Library code throws these; only the CLI turns them into
 * messages and exit codes. Callers check `code` (or `instanceof`), never the message text.
 */
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'INVALID_DOCUMENT'
  | 'UNSAFE_ENTRY'
  | 'LOCKED'
  | 'TOOL_FAILED'
  | 'CORRUPT'
  | 'PARSE_ERROR'
  | 'UNAVAILABLE'
  | 'UNAUTHORIZED'
  | 'INTERRUPTED'
  | 'NO_SPACE';

export interface ErrorOptions {
  hint?: string;
  cause?: unknown;
}

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.hint !== undefined) this.hint = redact(options.hint);
  }
}

/**
 * The base of an error that is a message and a fixed code. Each code still gets a class of its
 * own, so that callers can test `instanceof` as well as `code`.
 */
function withCode(code: ErrorCode) {
  return class extends StrataError {
    constructor(message: string, options?: ErrorOptions) {
      super(code, message, options);
    }
  };
}

export class InvalidArgumentError extends withCode('INVALID_ARGUMENT') {}
export class NotFoundError extends withCode('NOT_FOUND') {}
export class LockedError extends withCode('LOCKED') {}
export class CorruptError extends withCode('CORRUPT') {}

/** The hint for a blob whose stored copy does not hash to its digest. */
export const DAMAGED_BLOB_HINT =
  'the stored copy is damaged: `strata fsck` lists every damaged blob; pull or create the template again';

export class DigestMismatchError extends StrataError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    what = 'content',
    options?: ErrorOptions,
  ) {
    super(
      'DIGEST_MISMATCH',
      `${what}: digest mismatch: expected ${expected}, got ${actual}`,
      options,
    );
  }
}

export class SizeMismatchError extends StrataError {
  constructor(
    readonly expected: number,
    readonly actual: number,
    what = 'content',
  ) {
    super('SIZE_MISMATCH', `${what}: size mismatch: expected ${expected} bytes, got ${actual}`);
  }
}

export class InvalidDocumentError extends StrataError {
  constructor(
    what: string,
    readonly problems: string[],
  ) {
    super('INVALID_DOCUMENT', `invalid ${what}: ${problems.join('; ')}`);
  }
}

/** A layer entry that would escape the target or is otherwise refused. */
export class UnsafeEntryError extends StrataError {
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super('UNSAFE_ENTRY', `refusing layer entry ${JSON.stringify(entry)}: ${reason}`);
  }
}

export class ToolFailedError extends StrataError {
  constructor(
    readonly tool: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('TOOL_FAILED', `${tool}: ${message}`, options);
  }
}

/** A syntax or semantic error in a user file, located at file:line:column. */
export class ParseError extends StrataError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super('PARSE_ERROR', `${file}:${line}:${column}: ${message}`, options);
  }
}

/**
 * The filesystem that holds `path` is full (ENOSPC), or the user's quota on it is (EDQUOT). `path`
 * is the directory or file being written, so the message says which disk to free; `needed`, when
 * the writer knows it, is how many bytes the whole write takes.
 */
export class NoSpaceError extends StrataError {
  constructor(
    readonly path: string,
    readonly needed?: number,
    options?: ErrorOptions,
  ) {
    super(
      'NO_SPACE',
      `no space left on device: ${path}${needed === undefined ? '' : ` (${needed} bytes needed)`}`,
      options,
    );
  }
}

const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);

/**
 * `e` as a NoSpaceError naming `path` when it, or an error it was caused by, is ENOSPC or EDQUOT;
 * otherwise `e` itself. A NoSpaceError already in the chain is kept: it was made nearer the write
 * and names its path more exactly.
 */
export function noSpaceAt(e: unknown, path: string, needed?: number): unknown {
  for (let c: unknown = e, depth = 0; c instanceof Error && depth < 8; depth++) {
    if (c instanceof NoSpaceError) return c;
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && NO_SPACE_CODES.has(code)) {
      return new NoSpaceError(path, needed, { cause: e });
    }
    c = c.cause;
  }
  return e;
}

/** Whether `e`, or an error it was caused by, is a full disk (see noSpaceAt). */
export function isNoSpace(e: unknown): boolean {
  return noSpaceAt(e, '') instanceof NoSpaceError;
}

export function isStrataError(e: unknown): e is StrataError {
  return e instanceof StrataError;
}

/**
 * `user:password@` without a scheme (a registry reference typed with credentials), but not a
 * `name:tag@algorithm:digest`: what follows its `@` is a host, not a slash-free `algo:hex` word.
 * The parts are bounded so that a long message (a registry's error body) costs linear time.
 */
const BARE_USERINFO =
  /(^|[^A-Za-z0-9+.\-/:@*])[^\s/:@"'`]{1,128}:[^\s/"'`]{1,256}@(?![a-z0-9]+(?:[+._-][a-z0-9]+)*:[^\s/:@"'`]*(?:[\s"'`]|$))/gi;

/** Remove credentials that may appear in URLs, references or auth headers. */
export function redact(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+:[^/\s@]+@/gi, '$1***:***@')
    .replace(BARE_USERINFO, '$1***:***@')
    .replace(/(authorization:\s*(?:basic|bearer)\s+)\S+/gi, '$1***')
    .replace(/("(?:auth|password|identitytoken|registrytoken)"\s*:\s*")[^"]*"/gi, '$1***"');
}
