import { InvalidArgumentError, isStrataError, redact } from '@strata/oci';

/** Human-readable byte count (binary units). */
/** `1 step`, `2 steps`: a count with its noun. */
export function counted(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

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
export function platformOption(what: string, command: string) {
  return {
    type: 'string' as const,
    describe: `Of a multi-platform template, ${what} (os/arch[/variant])`,
    coerce: once('--platform', command),
  };
}

/** `-o/--output` of a command that writes one file or folder; `required` unless it has a default. */
export function outputOption(describe: string, command: string, required = true) {
  return {
    alias: 'o',
    type: 'string' as const,
    describe,
    coerce: once('-o/--output', command),
    ...(required ? { demandOption: true as const } : {}),
  };
}

/**
 * A coerce for an option given at most once: yargs turns `-t a -t b` into an array, which the
 * command would otherwise take for a string. A usage error (exit 2) names the command.
 */
export function once(option: string, command: string): (v: unknown) => string | undefined {
  return (v) => {
    if (!Array.isArray(v)) return v as string | undefined;
    if (v.length > 1)
      throw new InvalidArgumentError(
        `${option} given ${v.length} times; ${command} takes one (${v.map(String).join(', ')})`,
      );
    return v[0] as string | undefined;
  };
}
