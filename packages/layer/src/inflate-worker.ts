/**
 * The decompression worker that inflate.ts runs in a worker thread (see there, and
 * docs/layers.md). It owns one job at a time: it reads the compressed input (a file it opens
 * itself, or chunks forwarded from the main thread), feeds a decompressor (zstd or igzip as a
 * child process, or zlib here), hashes the compressed bytes, and hands the uncompressed stream to
 * the main thread through the shared ring.
 *
 * It is started as a file, never imported: loading it anywhere but in a worker thread throws.
 * It loads only Node built-ins and inflate-ring (constants and types).
 */
import { ChildProcess, spawn } from 'node:child_process';
import { Hash, createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { PassThrough, Readable, Writable } from 'node:stream';
import { parentPort as port, workerData } from 'node:worker_threads';
import * as zlib from 'node:zlib';
import { Ctl } from './inflate-ring';
import type { FromWorker, InflateWorkerData, ToWorker } from './inflate-ring';

if (port === null) throw new Error('inflate-worker runs only in a worker thread');
const parentPort = port;
const post = (m: FromWorker): void => parentPort.postMessage(m);

// The ring the uncompressed stream is handed over in: SLOTS slots of CHUNK bytes, shared with
// the main thread, and the control words (see inflate-ring.ts).
const data = workerData as InflateWorkerData;
const ring = Buffer.from(data.ring);
const ctl = new Int32Array(data.ctl);
const CHUNK = data.chunk;
const SLOTS = ring.length / CHUNK;

interface Job {
  id: number;
  /** Slots published so far. */
  produced: number;
  /** Whether `out` was paused because the ring was full. */
  paused: boolean;
  /** Killed or failed: nothing more is sent for it. */
  dead: boolean;
  child: ChildProcess | undefined;
  file: fs.ReadStream | undefined;
  /** Uncompressed bytes seen. */
  size: number;
  /** sha256 of the compressed input. */
  blob: Hash;
  /** Bytes in the slot being filled. */
  fill: number;
  /** Uncompressed chunks waiting for a free slot, in order. */
  pending: Buffer[];
  outEnded: boolean;
  /** The decompressor exited cleanly (or there is none). */
  exited: boolean;
  /** Where forwarded compressed chunks go. */
  input: Writable | undefined;
  /** The uncompressed stream. */
  out: Readable | undefined;
  /** The compressed input was hashed to its end. */
  hashed: boolean;
}

let job: Job | undefined;

parentPort.on('message', (m: ToWorker) => {
  if (m.t === 'abort') {
    // The main thread discards this worker. Reap a killed decompressor first, or it stays a
    // zombie.
    const child = job?.child;
    kill();
    // In a worker thread, process.exit ends the thread only.
    /* eslint-disable no-restricted-properties */
    if (child && child.exitCode === null && child.signalCode === null)
      child.once('exit', () => process.exit(0));
    else process.exit(0);
    /* eslint-enable no-restricted-properties */
  } else if (m.t === 'start') start(m);
  else if (job === undefined || m.id !== job.id)
    return; // stale message of an earlier job
  else if (m.t === 'ack') {
    const j = job;
    if (!flush(j)) return;
    finish(); // if only the end was waiting
    if (job === j && j.paused) {
      j.paused = false;
      j.out?.resume();
    }
  } else if (m.t === 'in') {
    const n = m.len;
    const id = job.id;
    const c = Buffer.from(m.buf, 0, n);
    job.blob.update(c);
    (job.input as Writable).write(c, () => post({ t: 'inAck', id, n }));
  } else if (m.t === 'inEnd') (job.input as Writable).end();
});

function kill(): void {
  if (job === undefined) return;
  job.dead = true;
  if (job.child) {
    try {
      job.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  if (job.file) job.file.destroy();
}

function fail(kind: 'tool' | 'corrupt' | 'input', message: string): void {
  if (job === undefined || job.dead) return;
  kill();
  post({ t: 'error', id: job.id, kind, message });
}

function start(m: Extract<ToWorker, { t: 'start' }>): void {
  const j: Job = (job = {
    id: m.id,
    produced: 0,
    paused: false,
    dead: false,
    child: undefined,
    file: undefined,
    size: 0,
    blob: createHash('sha256'),
    fill: 0,
    pending: [],
    outEnded: false,
    exited: m.tool === undefined,
    input: undefined,
    out: undefined,
    hashed: true,
  });
  // A file for a tool: the tool reads it itself (as its stdin), and it is hashed here alongside
  // through a second descriptor (the diffID check covers what the tool decompressed in any case).
  // This saves pushing every compressed byte through a pipe.
  const direct = m.tool !== undefined && m.path !== undefined;
  let inFd: number | undefined;
  let hashFd: number | undefined;
  if (direct) {
    try {
      inFd = fs.openSync(m.path as string, 'r');
      hashFd = fs.openSync(m.path as string, 'r');
    } catch (e) {
      if (inFd !== undefined) fs.closeSync(inFd);
      fail('input', (e as Error).message);
      return;
    }
  }
  let sink: Writable; // where compressed bytes go
  if (m.tool !== undefined) {
    const tool = m.tool;
    let child: ChildProcess;
    try {
      child = spawn(tool, ['-d', '-c', '-q'], {
        stdio: [direct ? (inFd as number) : 'pipe', 'pipe', 'pipe'],
      });
    } finally {
      if (direct) fs.closeSync(inFd as number); // the child has its own copy
    }
    j.child = child;
    let stderr = '';
    const childErr = child.stderr as Readable;
    childErr.setEncoding('utf8');
    childErr.on('data', (s: string) => {
      stderr = (stderr + s).slice(-4096);
    });
    child.on('error', (e: NodeJS.ErrnoException) =>
      fail('tool', e.code === 'ENOENT' ? tool + ' not found on PATH' : String(e.message)),
    );
    child.on('close', (code, signal) => {
      if (code !== 0) {
        const line =
          stderr
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean)
            .pop() || '';
        // A decompressor that exits non-zero found bad data (zstd and igzip both exit 1 on a bad
        // checksum or a truncated stream); a signal is the tool failing.
        if (signal) fail('tool', 'killed by ' + signal + (line ? ': ' + line : ''));
        else fail('corrupt', tool + ': exited with code ' + code + (line ? ': ' + line : ''));
        return;
      }
      j.exited = true;
      finish();
    });
    const stdin = child.stdin as Writable;
    if (!direct) stdin.on('error', () => {}); // EPIPE when the tool quits early: its exit status says why
    sink = stdin;
    j.out = child.stdout as Readable;
  } else {
    const f =
      m.compression === 'gzip'
        ? zlib.createGunzip({ chunkSize: 256 * 1024 })
        : new PassThrough({ highWaterMark: CHUNK });
    f.on('error', (e) => fail('corrupt', m.compression + ': ' + e.message));
    sink = f;
    j.out = f;
  }
  const out = j.out;
  out.on('data', onData);
  out.on('end', () => {
    j.outEnded = true;
    finish();
  });
  if (direct) {
    j.hashed = false;
    const file = (j.file = fs.createReadStream(m.path as string, {
      fd: hashFd as number,
      highWaterMark: CHUNK,
    }));
    file.on('error', (e) => fail('input', e.message));
    file.on('data', (c) => {
      j.blob.update(c);
    });
    file.on('end', () => {
      j.hashed = true;
      finish();
    });
  } else if (m.path !== undefined) {
    // Read the file once: the bytes hashed are the bytes decompressed.
    const file = (j.file = fs.createReadStream(m.path, { highWaterMark: CHUNK }));
    file.on('error', (e) => fail('input', e.message));
    file.on('data', (c) => {
      j.blob.update(c);
    });
    file.pipe(sink);
  } else {
    j.input = sink;
  }
}

function onData(c: Buffer): void {
  const j = job as Job;
  if (j.dead) return;
  j.size += c.length;
  j.pending.push(c);
  flush(j);
}

/**
 * Copy pending chunks into the ring, in order. A slot is free once the main thread has consumed
 * it; when none is, the chunks wait in j.pending and the stream is paused until the main thread
 * acks. The pause is only backpressure, never what keeps the order: Node resumes a child's paused
 * stdout by itself when the child exits (child_process flushStdio), so data can still arrive
 * while chunks wait, and it must queue behind them. Returns true when nothing is left waiting.
 */
function flush(j: Job): boolean {
  while (j.pending.length > 0) {
    const c = j.pending[0] as Buffer;
    const p = put(j, c);
    if (p === c.length) {
      j.pending.shift();
      continue;
    }
    j.pending[0] = c.subarray(p);
    if (!j.paused && !j.outEnded) {
      j.paused = true;
      j.out?.pause();
    }
    return false;
  }
  return true;
}

/** Copy as much of c as the free slots take; returns how many bytes were copied. */
function put(j: Job, c: Buffer): number {
  let p = 0;
  while (p < c.length) {
    if (j.fill === 0 && !slotFree(j)) return p;
    const n = Math.min(c.length - p, CHUNK - j.fill);
    c.copy(ring, (j.produced % SLOTS) * CHUNK + j.fill, p, p + n);
    j.fill += n;
    p += n;
    if (j.fill === CHUNK) publish(j);
  }
  return p;
}

function slotFree(j: Job): boolean {
  if (j.produced - Atomics.load(ctl, Ctl.CONSUMED) < SLOTS) return true;
  // Ask for an ack, then look again (the main thread may have consumed in between; a
  // superfluous ack is harmless).
  Atomics.store(ctl, Ctl.WAITING, 1);
  return j.produced - Atomics.load(ctl, Ctl.CONSUMED) < SLOTS;
}

function publish(j: Job): void {
  if (j.fill === 0) return;
  Atomics.store(ctl, Ctl.LEN + (j.produced % SLOTS), j.fill);
  j.produced++;
  Atomics.store(ctl, Ctl.PRODUCED, j.produced);
  j.fill = 0;
  // Wake the main thread only if it went idle; otherwise it picks the slot up by itself.
  if (Atomics.compareExchange(ctl, Ctl.MAIN_IDLE, 1, 0) === 1) post({ t: 'data', id: j.id });
}

function finish(): void {
  const j = job;
  if (j === undefined || j.dead || !j.outEnded || !j.exited || !j.hashed || j.pending.length > 0)
    return;
  publish(j); // its slot was free when filling started
  job = undefined;
  post({ t: 'end', id: j.id, size: j.size, blobDigest: j.blob.digest('hex') });
}
