/**
 * The kill -9 harness: run a strata command as a child process, SIGKILL it after a delay drawn
 * from a seed, then look at what it left behind (processes, mounts, locks, partial files, and
 * blobs that nothing reaches). Like the rest of e2e/support it reads the store by hand and
 * imports no @strata package: it is the oracle the CLI is checked against.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, REPO_ROOT, RunResult, pidAlive } from './processes';

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** The run's seed: `STRATA_KILL_SEED` replays a run, otherwise a fresh one. */
export function killSeed(): number {
  const env = process.env.STRATA_KILL_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`STRATA_KILL_SEED=${env}: not a seed`);
    return n;
  }
  return Math.floor(Math.random() * 2 ** 31);
}

/** mulberry32: a small PRNG, so that one seed gives the same kill points everywhere. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Running and killing

/**
 * How the command is killed: `group` sends SIGKILL to its whole process group (what a CI runner
 * that cancels a job does), `pid` to the strata process alone (`kill -9 <pid>`), which leaves its
 * children to fend for themselves.
 */
export type KillMode = 'group' | 'pid';

export interface KillOutcome {
  /** The pid (and process group) of the strata process. */
  pid: number;
  /** Whether the command had already exited by the time the kill was due. */
  finished: boolean;
  result: RunResult;
  /** Milliseconds from spawn to the kill (or to the exit, when it finished first). */
  elapsedMs: number;
}

export interface StrataRun {
  args: readonly string[];
  store: string;
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** A file whose contents become stdin. */
  stdinFile?: string;
}

function strataEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const out: Record<string, string | undefined> = {
    ...process.env,
    NO_COLOR: '1',
    FORCE_COLOR: undefined,
    ...env,
  };
  for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
  return out as NodeJS.ProcessEnv;
}

/**
 * Start `strata --store S args…` in a process group of its own and, after `delayMs`, SIGKILL it
 * (`mode`). Resolves once the strata process is gone.
 */
export function runAndKill(run: StrataRun, delayMs: number, mode: KillMode): Promise<KillOutcome> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const stdinFd = run.stdinFile !== undefined ? fs.openSync(run.stdinFile, 'r') : undefined;
    const child = spawn(process.execPath, [CLI, '--store', run.store, ...run.args], {
      cwd: run.cwd ?? REPO_ROOT,
      env: strataEnv(run.env),
      stdio: [stdinFd ?? 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    if (stdinFd !== undefined) fs.closeSync(stdinFd);
    const pid = child.pid;
    if (pid === undefined) {
      reject(new Error('strata did not start'));
      return;
    }
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    let exited = false;
    let killedAt: number | undefined;
    const timer = setTimeout(() => {
      if (exited) return;
      killedAt = Date.now();
      try {
        process.kill(mode === 'group' ? -pid : pid, 'SIGKILL');
      } catch {
        /* it exited meanwhile */
      }
    }, delayMs);
    child.on('error', reject);
    // 'exit', not 'close': with `pid` the orphans may hold the pipes open.
    child.on('exit', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      child.stdout!.destroy();
      child.stderr!.destroy();
      resolve({
        pid,
        finished: killedAt === undefined || signal !== 'SIGKILL',
        result: { code: code ?? 137, stdout: out, stderr: err },
        elapsedMs: (killedAt ?? Date.now()) - start,
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// What a killed command may leave

function readProc(pid: string, file: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

function linkOf(pid: string, file: string): string {
  try {
    return fs.readlinkSync(`/proc/${pid}/${file}`);
  } catch {
    return '';
  }
}

/**
 * Live processes (zombies aside) in process group `pgid`, or whose command line, cwd or root
 * points into one of `dirs`.
 */
export function processesOf(pgid: number, dirs: readonly string[]): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const stat = readProc(pid, 'stat');
    if (stat === undefined) continue;
    // Fields after the parenthesised command: state ppid pgrp …
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') continue;
    const cmd = (readProc(pid, 'cmdline') ?? '').replace(/\0/g, ' ').trim();
    const cwd = linkOf(pid, 'cwd');
    const root = linkOf(pid, 'root');
    const inDirs = dirs.some(
      (d) => cmd.includes(d) || cwd === d || cwd.startsWith(`${d}/`) || root.startsWith(`${d}/`),
    );
    if (Number(rest[2]) === pgid || inDirs) out.push(`${pid} (${rest[0]}): ${cmd.slice(0, 160)}`);
  }
  return out;
}

/** Mount points at or under one of `dirs`, from /proc/self/mountinfo. */
export function mountsUnder(dirs: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const target = f[4]!.replace(/\\(\d{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    if (dirs.some((d) => target === d || target.startsWith(`${d}/`))) out.push(target);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Wait (up to `ms`) for the processes of a killed command to go: a child killed by the
 * parent-death signal needs a moment. Returns what is still there.
 */
export async function leftoverProcesses(
  pgid: number,
  dirs: readonly string[],
  ms = 5000,
): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = processesOf(pgid, dirs);
    if (left.length === 0 || Date.now() > deadline) return left;
    await sleep(100);
  }
}

/** Kill what `leftoverProcesses` found, so that one failure does not spoil the next point. */
export function killLeftovers(pgid: number, dirs: readonly string[]): void {
  for (const line of processesOf(pgid, dirs)) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function walk(dir: string, visit: (p: string, ent: fs.Dirent) => void): void {
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const ent of ents) {
    const p = path.join(dir, ent.name);
    visit(p, ent);
    if (ent.isDirectory() && !ent.isSymbolicLink()) walk(p, visit);
  }
}

/**
 * Lock files under the store that would make the next command wait: a lock file is only
 * harmless once its holder is named and gone (then the next taker breaks it at once). A lock
 * held by a live process, or one whose holder cannot be read, blocks until its timeout.
 */
export function blockingLocks(store: string): string[] {
  const out: string[] = [];
  walk(store, (p, ent) => {
    if (!ent.isFile() || !/\.lock$/.test(ent.name)) return;
    // Inside a sandbox root (a snapshot), a lock is the guest's, never Strata's.
    if (p.includes(`${path.sep}snapshots${path.sep}`)) return;
    let text = '';
    try {
      text = fs.readFileSync(p, 'utf8');
    } catch {
      return; // removed meanwhile
    }
    let pid: number | undefined;
    try {
      const v = JSON.parse(text) as { pid?: unknown };
      if (typeof v.pid === 'number') pid = v.pid;
    } catch {
      /* unreadable */
    }
    if (pid === undefined)
      out.push(`${p}: holder unreadable (${JSON.stringify(text.slice(0, 60))})`);
    else if (pidAlive(pid)) out.push(`${p}: held by live pid ${pid}`);
  });
  return out;
}

/**
 * Temp, partial and stale files of dead processes anywhere in the store (after a gc, none may
 * remain): the `.tmp-<pid>-…`, `-<pid>-<hex>` ingest and `.stale-<pid>` names Strata writes.
 */
export function deadTempFiles(store: string): string[] {
  const out: string[] = [];
  walk(store, (p, ent) => {
    if (p.includes(`${path.sep}snapshots${path.sep}`) && !/\/snapshots\/(l\/)?[^/]+$/.test(p))
      return; // inside a snapshot's tree: the guest's files
    const m = /\.(?:tmp|stale|partial)-(?:[a-z]+-)?(\d+)(?:-|$)/.exec(ent.name);
    if (m && !pidAlive(Number(m[1]))) out.push(path.relative(store, p));
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// What gc may keep

interface Desc {
  digest: string;
  mediaType?: string;
}

function blobFile(store: string, digest: string): string {
  return path.join(store, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
}

/**
 * Every blob that the store's tags (index.json) and GC roots (the build cache, under
 * `.strata/roots`) reach, walking manifests, indexes and subjects by hand.
 */
export function reachableBlobs(store: string): Set<string> {
  const seen = new Set<string>();
  const stack: Desc[] = [];
  const index = JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: Desc[];
  };
  stack.push(...index.manifests);
  const roots = path.join(store, '.strata', 'roots');
  for (const f of fs.existsSync(roots) ? fs.readdirSync(roots) : []) {
    if (!f.endsWith('.json')) continue;
    const doc = JSON.parse(fs.readFileSync(path.join(roots, f), 'utf8')) as {
      descriptors?: Desc[];
    };
    stack.push(...(doc.descriptors ?? []));
  }
  while (stack.length > 0) {
    const d = stack.pop()!;
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    if (!/(manifest|index)/.test(d.mediaType ?? '') || !fs.existsSync(blobFile(store, d.digest)))
      continue;
    const doc = JSON.parse(fs.readFileSync(blobFile(store, d.digest), 'utf8')) as {
      config?: Desc;
      layers?: Desc[];
      manifests?: Desc[];
      blobs?: Desc[];
      subject?: Desc;
    };
    if (doc.config) stack.push(doc.config);
    stack.push(...(doc.layers ?? []), ...(doc.manifests ?? []), ...(doc.blobs ?? []));
  }
  return seen;
}

/** The blobs in the store, as `sha256:<hex>`. */
export function storedBlobs(store: string): Set<string> {
  const dir = path.join(store, 'blobs', 'sha256');
  return new Set(
    fs
      .readdirSync(dir)
      .filter((n) => /^[a-f0-9]{64}$/.test(n))
      .map((n) => `sha256:${n}`),
  );
}
