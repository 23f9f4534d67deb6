/** Running programs and the CLI, and temporary directories. */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(REPO_ROOT, 'packages', 'cli', 'bin', 'strata.js');

/** Generous timeout for hooks and tests that pack or unpack a whole minbase rootfs. */
export const SLOW = 15 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// Processes

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** Added to (or, when undefined, removed from) the inherited environment. */
  env?: Record<string, string | undefined>;
  /** Bytes written to stdin. */
  input?: string | Buffer;
  /** A file whose contents become stdin (streamed, never loaded into memory). */
  stdinFile?: string;
}

/** Run a program; never throws on a non-zero exit (look at `code`). */
export function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const stdinFd = opts.stdinFile !== undefined ? fs.openSync(opts.stdinFile, 'r') : undefined;
    const child = spawn(cmd, [...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: env as NodeJS.ProcessEnv,
      stdio: [stdinFd ?? (opts.input !== undefined ? 'pipe' : 'ignore'), 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      if (stdinFd !== undefined) fs.closeSync(stdinFd);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (stdinFd !== undefined) fs.closeSync(stdinFd);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // the child may exit before reading everything
      child.stdin.end(opts.input);
    }
  });
}

/** Run a program and throw (with its output) unless it exits 0. */
export async function runOk(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`,
    );
  }
  return r;
}

export interface StrataOptions extends RunOptions {
  /** Store directory, passed as `--store`; `null` passes none (to test STRATA_STORE). */
  store: string | null;
}

/** Run `node packages/cli/bin/strata.js [--store S] ...args`. */
export function strata(args: readonly string[], opts: StrataOptions): Promise<RunResult> {
  const storeArgs = opts.store === null ? [] : ['--store', opts.store];
  return run(process.execPath, [CLI, ...storeArgs, ...args], {
    ...opts,
    env: { NO_COLOR: '1', FORCE_COLOR: undefined, SOURCE_DATE_EPOCH: undefined, ...opts.env },
  });
}

/** Describe a CLI result for an assertion message. */
/** A `strata` running in the background, for a test that interrupts it while it works. */
export interface StrataChild {
  child: ChildProcess;
  /** Its exit code and signal, once it has ended. */
  exited: Promise<[number | null, string | null]>;
  running(): boolean;
  /** What it printed so far. */
  output(): { stdout: string; stderr: string };
}

/** Start `strata args` (with `env` added to this process's) and collect what it prints. */
export function startStrata(args: readonly string[], env: NodeJS.ProcessEnv = {}): StrataChild {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  let running = true;
  const exited = new Promise<[number | null, string | null]>((resolve) =>
    child.on('close', (code, sig) => {
      running = false;
      resolve([code, sig]);
    }),
  );
  return { child, exited, running: () => running, output: () => ({ stdout, stderr }) };
}

export function show(r: RunResult): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-3000)}`;
}

/** Run strata and require exit 0; returns the result. */
export async function strataOk(args: readonly string[], opts: StrataOptions): Promise<RunResult> {
  const r = await strata(args, opts);
  if (r.code !== 0) throw new Error(`strata ${args.join(' ')} failed: ${show(r)}`);
  return r;
}

/** Run strata with `--json` appended and parse stdout. */
export async function strataJson<T = unknown>(
  args: readonly string[],
  opts: StrataOptions,
): Promise<T> {
  const r = await strataOk([...args, '--json'], opts);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`strata ${args.join(' ')} --json printed non-JSON: ${show(r)}`);
  }
}

/** A failure message is one line on stderr, without a stack trace. */
export function isOneLineError(stderr: string): boolean {
  const lines = stderr.trimEnd().split('\n');
  return lines.length === 1 && lines[0]!.trim() !== '' && !/^\s+at /m.test(stderr);
}

/** Of what a command printed to stderr (step output included), its own lines are one error. */
export function strataLinesAreOneError(stderr: string): boolean {
  return isOneLineError(
    stderr
      .split('\n')
      .filter((l) => l.startsWith('strata:'))
      .join('\n'),
  );
}

// ---------------------------------------------------------------------------------------------
// Temporary directories

const tmpRoots: string[] = [];

/** Whether a process exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A fresh temporary directory, removed by `cleanupTmp()`. */
export function tmpDir(prefix = 'strata-e2e-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpRoots.push(d);
  return d;
}

/** Remove every directory made by `tmpDir()`; call from afterAll. */
export function cleanupTmp(): void {
  for (const d of tmpRoots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/**
 * Run a qemu-system command (its whole argv) and resolve with its serial console output once
 * `marker` appears. Rejects when qemu exits first or after `timeoutMs`; either way qemu is killed
 * and the console is written to `log`.
 */
export function bootUntil(
  command: string,
  args: readonly string[],
  opts: { marker: string; timeoutMs: number; log: string },
): Promise<string> {
  const { marker, timeoutMs, log } = opts;
  return new Promise((resolve, reject) => {
    const qemu = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fs.writeFileSync(log, out);
      qemu.kill('SIGKILL');
      if (err) reject(err);
      else resolve(out);
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `no ${marker} within ${timeoutMs / 1000}s; console in ${log}:\n${out.slice(-3000)}`,
          ),
        ),
      timeoutMs,
    );
    const onData = (b: Buffer): void => {
      out += b.toString('latin1');
      if (out.includes(marker)) finish();
    };
    qemu.stdout.on('data', onData);
    qemu.stderr.on('data', onData);
    qemu.on('error', (e) => finish(e));
    qemu.on('exit', (code, sig) =>
      finish(
        new Error(`qemu exited (${code ?? sig}) before ${marker}; console:\n${out.slice(-3000)}`),
      ),
    );
  });
}
