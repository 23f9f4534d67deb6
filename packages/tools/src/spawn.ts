import type Execa from 'execa';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { ToolFailedError } from '@strata/oci';

let loaded: typeof Execa | undefined;
/** execa, loaded when the first tool runs: many commands run none (a cached rebuild, ls, push). */
export function execa(): typeof Execa {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('execa') as typeof Execa;
  return loaded;
}

/**
 * A spawned filter process: write to `stdin`, read from `stdout`. `done` settles when the
 * process has exited (and been reaped): it resolves on exit code 0 and rejects with a
 * ToolFailedError carrying the last line of stderr otherwise. `kill()` terminates the child;
 * destroying either stream does the same, so an aborted pipeline never leaves a process behind.
 */
export interface ToolProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly done: Promise<void>;
  kill(): void;
}

const STDERR_KEEP = 4096;

/** Last non-empty line of a (bounded) stderr capture. */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i];
    if (l) return l;
  }
  return '';
}

/** Spawn `file args` as a streaming filter. Internal to @strata/tools. */
export function spawnFilter(
  file: string,
  args: readonly string[],
  opts: { cwd?: string } = {},
): ToolProcess {
  const child = execa()(file, args, {
    buffer: false,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    cwd: opts.cwd,
    stripFinalNewline: false,
    // Never leave a child running if Node itself goes away.
    cleanup: true,
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderr = (stderr + s).slice(-STDERR_KEEP);
  });
  let killed = false;
  const kill = (): void => {
    if (killed) return;
    killed = true;
    child.kill('SIGKILL');
  };
  const done = child.then(
    () => undefined,
    (err: Execa.ExecaError) => {
      const line = lastLine(stderr);
      let msg: string;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') msg = `${file} not found on PATH`;
      else if (killed || err.isCanceled) msg = 'killed';
      else if (err.signal) msg = `killed by ${err.signal}${line ? `: ${line}` : ''}`;
      else msg = `exited with code ${err.exitCode}${line ? `: ${line}` : ''}`;
      throw new ToolFailedError(file, msg, { cause: err });
    },
  );
  // The caller observes `done`; never let an unobserved rejection crash the process.
  done.catch(() => undefined);
  const stdin = child.stdin as Writable;
  const stdout = child.stdout as Readable;
  // A consumer that goes away early makes the child's writes fail with EPIPE: ignore that
  // here (the caller is already tearing down) and kill the child.
  stdin.on('error', () => kill());
  stdout.on('error', () => kill());
  stdin.on('close', () => {
    if (!stdin.writableFinished) kill();
  });
  stdout.on('close', () => {
    if (!stdout.readableEnded) kill();
  });
  return { stdin, stdout, done, kill };
}

/** Run a tool to completion with an optional stdin payload and extra environment; returns stdout. */
export async function runTool(
  file: string,
  args: readonly string[],
  opts: { cwd?: string; input?: string | Buffer; env?: Record<string, string> } = {},
): Promise<string> {
  try {
    const r = await execa()(file, args, {
      cwd: opts.cwd,
      env: opts.env,
      input: opts.input,
      stripFinalNewline: false,
      maxBuffer: 1024 * 1024 * 1024,
    });
    return r.stdout;
  } catch (e) {
    throw toolError(file, e);
  }
}

/** Synchronous variant, for hot loops that must stay synchronous (device nodes). */
export function runToolSync(
  file: string,
  args: readonly string[],
  opts: { cwd?: string } = {},
): void {
  try {
    execa().sync(file, args, { cwd: opts.cwd, stdin: 'ignore' });
  } catch (e) {
    throw toolError(file, e);
  }
}

function toolError(file: string, e: unknown): ToolFailedError {
  const err = e as Execa.ExecaError & NodeJS.ErrnoException;
  if (err.code === 'ENOENT' && err.exitCode === undefined) {
    return new ToolFailedError(file, `${file} not found on PATH`, { cause: e });
  }
  const line = lastLine(typeof err.stderr === 'string' ? err.stderr : '');
  const how = err.signal ? `killed by ${err.signal}` : `exited with code ${err.exitCode}`;
  return new ToolFailedError(file, `${how}${line ? `: ${line}` : ''}`, { cause: e });
}

/** Where the executable `name` is on `search` (a PATH), or undefined when it is on none of it. */
export function findOnPath(
  name: string,
  search: string = process.env.PATH ?? '',
): string | undefined {
  for (const dir of search.split(path.delimiter)) {
    if (dir === '') continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
