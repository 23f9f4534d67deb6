import {
  InvalidArgumentError,
  NotFoundError,
  ParseError,
  StrataError,
  isStrataError,
  redact,
} from '@strata/oci';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Context } from './context';

export { counted } from '@strata/oci';

// C0 controls but tab and newline, DEL, and C1 controls (a lone ESC or CSI starts a terminal
// escape sequence).
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g; // eslint-disable-line no-control-regex

/**
 * A line as a terminal shows it: a control character that a template's file name, label or
 * history may carry is written as `\xNN`, so it cannot recolour the terminal, move the cursor or
 * rewrite an earlier line.
 */
export function visible(line: string): string {
  return line.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** A path from an image, quoted as a JSON string when it holds a newline or a control character. */
export function shownPath(p: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f-\x9f]/.test(p) ? JSON.stringify(p) : p;
}

/** Human-readable byte count (binary units). */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function shortDigest(d: string): string {
  return d.replace(/^sha256:/, '').slice(0, 12);
}

/**
 * A failure that ends the command with its own exit code, printed as the error it wraps: for a
 * command whose 1 has a meaning of its own (`check`: stale).
 */
export class ExitCodeError extends Error {
  constructor(
    readonly error: unknown,
    readonly exitCode: number,
  ) {
    super(String((error as Error)?.message ?? error));
  }
}

/** Exit codes: 1 for a failed operation or check, 2 for a usage error. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof ExitCodeError) return e.exitCode;
  if (isStrataError(e) && e.code === 'INVALID_ARGUMENT') return 2;
  if (isStrataError(e) && e.code === 'INTERRUPTED') return 130;
  return 1;
}

/** One clear line for an error; the stack only with --debug. */
export function formatError(e: unknown, debug: boolean): string {
  if (e instanceof ExitCodeError) return formatError(e.error, debug);
  if (debug && e instanceof Error && e.stack) return redact(e.stack);
  if (isStrataError(e)) {
    return `strata: error: ${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}`;
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && typeof err.message === 'string') {
    return `strata: error: ${redact(err.message)}`;
  }
  return `strata: error: ${redact(String((e as Error)?.message ?? e))}`;
}

/** What a failed command prints on stdout with `--json`, as well as its line on stderr. */
export interface ErrorDocument {
  error: {
    /** The StrataError's code; INTERNAL for any other failure. */
    code: string;
    message: string;
    hint?: string;
    /** Where in a Stratafile (or other user file) the error is, when it is in one. */
    file?: string;
    line?: number;
    column?: number;
    exitCode: number;
  };
}

/** The error object of a failure, with the exit code the command ends with. */
export function errorDocument(e: unknown): ErrorDocument {
  const exitCode = exitCodeFor(e);
  const err = e instanceof ExitCodeError ? e.error : e;
  if (!isStrataError(err)) {
    return {
      error: {
        code: 'INTERNAL',
        message: redact(String((err as Error)?.message ?? err)),
        exitCode,
      },
    };
  }
  const loc = locationOf(err);
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.hint !== undefined ? { hint: err.hint } : {}),
      ...(loc ? { file: loc.file, line: loc.line, column: loc.column } : {}),
      exitCode,
    },
  };
}

/**
 * The file:line:column an error names: a ParseError's, or the `loc` of a step that failed
 * (compose's BuildStepError, which this module does not import: compose loads only for the
 * commands that need it).
 */
function locationOf(e: Error): { file: string; line: number; column: number } | undefined {
  if (e instanceof ParseError) return { file: e.file, line: e.line, column: e.column };
  const loc = (e as { loc?: unknown }).loc as Record<string, unknown> | undefined;
  if (
    loc &&
    typeof loc.file === 'string' &&
    typeof loc.line === 'number' &&
    typeof loc.column === 'number'
  )
    return { file: loc.file, line: loc.line, column: loc.column };
  return undefined;
}

/**
 * Whether `--json` is among the arguments, for a failure that came before they were parsed (a
 * usage error): the last of `--json`, `--json=BOOL`, `--json BOOL` and `--no-json` wins, as in
 * yargs; nothing after `--` is an option.
 */
export function jsonRequested(argv: readonly string[]): boolean {
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (a === '--no-json') json = false;
    else if (a === '--json=true' || a === '--json=false') json = a === '--json=true';
    else if (a === '--json') {
      const next = argv[i + 1];
      json = next !== 'false';
      if (next === 'true' || next === 'false') i++;
    }
  }
  return json;
}

/**
 * "bytes / total" for a progress line. A total is a promise: the count must never read more than
 * it. When the bytes pass a total (an estimate that fell short, or a source that sent more than
 * announced), the total grows to the bytes and is marked `~`, as is any total the caller calls an
 * estimate.
 */
export function progressFigures(
  bytes: number,
  total?: number,
  estimate = false,
): { text: string; fraction?: number } {
  if (total === undefined || total <= 0) return { text: formatBytes(bytes) };
  const shown = Math.max(total, bytes);
  const mark = estimate || bytes > total ? '~' : '';
  return {
    text: `${formatBytes(bytes)} / ${mark}${formatBytes(shown)}`,
    fraction: bytes / shown,
  };
}

/** yargs turns a bare `-` argument into ''; give it back its meaning (stdin). */
export function stdinDash(v: string): string {
  return v === '' ? '-' : v;
}

/** `--platform` of a command that reads one platform of a multi-platform template. */
export function platformOption(what: string) {
  return {
    type: 'string' as const,
    describe: `Of a multi-platform template, ${what} (os/arch[/variant])`,
  };
}

/** `-o/--output` of a command that writes one file or folder; `required` unless it has a default. */
export function outputOption(describe: string, required = true) {
  return {
    alias: 'o',
    type: 'string' as const,
    describe,
    ...(required ? { demandOption: true as const } : {}),
  };
}

/**
 * The coerce of a numeric option: a usage error (exit 2) that names the option unless the value
 * is a `count` (a whole number, 1 or more) or a positive number of `seconds`. yargs makes NaN of a word and
 * passes it on, and a command would go on with it (a push with `--jobs abc` sent nothing).
 */
export function numberCheck(option: string, kind: 'count' | 'seconds'): (v: unknown) => unknown {
  return (v) => {
    // Given twice: the check for repeated options names it.
    if (Array.isArray(v) || v === undefined) return v;
    const n = typeof v === 'number' ? v : Number(v);
    const ok = kind === 'count' ? Number.isInteger(n) && n >= 1 : Number.isFinite(n) && n > 0;
    if (ok) return n;
    const what = kind === 'count' ? 'a whole number, 1 or more' : 'a positive number of seconds';
    throw new InvalidArgumentError(
      `${option} must be ${what}${Number.isNaN(n) ? '' : `, not ${String(v)}`}`,
    );
  };
}

/**
 * The error of an input file an option names that cannot be read: NOT_FOUND naming the option
 * as it was given (`--apt-sources nope.list: no such file`), not the errno of a path the user
 * never typed. Other errors (a folder, no permission) stay one line that names the option too.
 */
export function inputFileError(option: string, file: string, e: unknown): StrataError {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return new NotFoundError(`${option} ${file}: no such file`);
  if (code === 'EISDIR')
    return new InvalidArgumentError(`${option} ${file}: is a folder, not a file`);
  return new StrataError(
    'INVALID_ARGUMENT',
    `${option} ${file}: cannot read it: ${code ?? String((e as Error)?.message ?? e)}`,
  );
}

/** The bytes of the input file an option names; see inputFileError for a file that is not there. */
export async function readInputBytes(option: string, file: string): Promise<Buffer> {
  try {
    return await fs.promises.readFile(path.resolve(file));
  } catch (e) {
    throw inputFileError(option, file, e);
  }
}

/** The text of the input file an option names, as readInputBytes reads it. */
export async function readInputFile(option: string, file: string): Promise<string> {
  return (await readInputBytes(option, file)).toString('utf8');
}

/**
 * What each tag names before a command that tags (build, load), so that it can say which tags
 * it moved: a tag that named another image is moved, as docker does, but never silently.
 */
export async function tagsBefore(store: {
  list(): Promise<Array<{ ref: string; descriptor: { digest: string } }>>;
}): Promise<Map<string, string>> {
  return new Map((await store.list()).map((t) => [t.ref, t.descriptor.digest]));
}

/** The note of every command that moves a tag from one image to another; none if it stayed. */
export function movedTagNote(
  ctx: Context,
  ref: string,
  from: string | undefined,
  to: string,
): void {
  if (from !== undefined && from !== to)
    ctx.note(`note: tag ${ref} moved from ${shortDigest(from)} to ${shortDigest(to)}`);
}

/**
 * Refuse (a usage error) two outputs that are one file, or an output that is one of the
 * command's inputs: the second write would replace the first, or the input, without a word.
 * Paths are compared resolved, and by inode where the file exists (a link, another spelling).
 */
export function distinctFiles(
  outputs: ReadonlyArray<readonly [string, string | undefined]>,
  inputs: ReadonlyArray<readonly [string, string | undefined]> = [],
): true {
  const seen: { option: string; input: boolean; path: string; inode?: string }[] = [];
  const all = [
    ...inputs.map((x) => [...x, true] as const),
    ...outputs.map((x) => [...x, false] as const),
  ];
  for (const [option, file, input] of all) {
    if (file === undefined || file === '' || file === '-') continue;
    const resolved = path.resolve(file);
    let inode: string | undefined;
    try {
      const st = fs.statSync(resolved);
      inode = `${st.dev}:${st.ino}`;
    } catch {
      inode = undefined;
    }
    const same = seen.find(
      (s) => s.path === resolved || (inode !== undefined && s.inode === inode),
    );
    if (same && !input)
      throw new InvalidArgumentError(
        `${option} ${file} is ${same.input ? 'the' : 'also the'} ${same.option} ${same.input ? 'input' : 'output'}: give each output a file of its own`,
      );
    seen.push({ option, input, path: resolved, ...(inode !== undefined ? { inode } : {}) });
  }
  return true;
}
