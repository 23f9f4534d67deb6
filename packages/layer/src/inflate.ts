import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import {
  Compression,
  CorruptError,
  Digest,
  InvalidArgumentError,
  StrataError,
  ToolFailedError,
} from '@strata/oci';
import { igzipPath } from '@strata/tools';
import { CHUNK, Ctl, SLOTS } from './inflate-ring';
import type { FromWorker, InflateWorkerData, ToWorker } from './inflate-ring';

/**
 * Decompression and hashing off the main thread.
 *
 * Why: unpacking is a three-stage pipeline (decompress → hash + parse → filesystem calls). With
 * the decompressor writing into a pipe that the main thread drains between synchronous
 * filesystem calls, the pipe's small kernel buffer makes the stages take turns instead of
 * overlapping. Here a worker thread owns the decompressor: it reads the compressed input (a file
 * it opens itself, or chunks forwarded from the main thread), feeds zstd or igzip (a child process)
 * or zlib (in the worker), hashes the compressed bytes (the blob digest), and hands the
 * uncompressed stream to the main thread in 1 MiB slots of a shared ring (SLOTS deep). The main
 * thread hashes the uncompressed bytes (the diffID), parses and applies.
 *
 * The worker is inflate-worker.ts, started as a file (see workerScript). Workers are pooled: one
 * per concurrent unpack, kept (unref'd) for reuse rather than started for every layer.
 */

/** Compressed bytes forwarded to the worker but not yet written to the decompressor. */
const INPUT_AHEAD = 8 << 20;

/**
 * The worker's script, inflate-worker.js, found next to the running module. From a build
 * (dist/) that is the compiled sibling. Under ts-jest this module runs from src/ as TypeScript,
 * and a worker thread does not go through Jest's transform, so the package's compiled
 * dist/inflate-worker.js runs; Jest's global setup (jest.global-setup.js) builds the package
 * first, so that it is the source's.
 */
export function workerScript(moduleFile: string = __filename): string {
  const dir = path.dirname(moduleFile);
  return moduleFile.endsWith('.ts')
    ? path.join(dir, '..', 'dist', 'inflate-worker.js')
    : path.join(dir, 'inflate-worker.js');
}

let nextJob = 1;

export interface InflateResult {
  /** sha256 of the uncompressed stream; undefined when not asked for. */
  diffId?: Digest;
  /** Uncompressed size. */
  size: number;
  /** sha256 of the compressed input. */
  blobDigest: Digest;
}

interface PooledWorker {
  worker: Worker;
  ring: Buffer;
  ctl: Int32Array;
}

const idle: PooledWorker[] = [];

function getWorker(): PooledWorker {
  const p = idle.pop();
  if (p !== undefined) {
    p.worker.ref();
    return p;
  }
  const ring = new SharedArrayBuffer(CHUNK * SLOTS);
  const ctl = new SharedArrayBuffer(4 * (Ctl.LEN + SLOTS));
  const workerData: InflateWorkerData = { ring, ctl, chunk: CHUNK };
  return {
    worker: new Worker(workerScript(), { workerData }),
    ring: Buffer.from(ring),
    ctl: new Int32Array(ctl),
  };
}

function release(p: PooledWorker): void {
  const w = p.worker;
  w.removeAllListeners('message');
  w.removeAllListeners('error');
  w.removeAllListeners('exit');
  w.unref();
  if (idle.length < 4) idle.push(p);
  else void w.terminate();
}

/**
 * Decompress `source` (a readable of compressed bytes, or the path of a file holding them) in a
 * worker thread, calling `onChunk` synchronously, in order, for every chunk of the uncompressed
 * stream. A throw from `onChunk` aborts everything (and kills the decompressor) and rejects
 * with that error. Resolves after the decompressor finished cleanly and the last chunk was
 * consumed. Chunks are only valid during the call. The diffID is hashed unless `diffId: false`.
 */
export function inflate(
  source: Readable | string,
  compression: Compression,
  onChunk: (chunk: Buffer) => void,
  opts: { diffId?: boolean } = {},
): Promise<InflateResult> {
  if (compression !== 'zstd' && compression !== 'gzip' && compression !== 'none') {
    throw new InvalidArgumentError(`unknown compression ${JSON.stringify(compression)}`);
  }
  // The decompressor: zstd, or for gzip ISA-L's igzip when installed (twice zlib's speed).
  const tool =
    compression === 'zstd' ? 'zstd' : compression === 'gzip' && igzipPath() ? 'igzip' : undefined;
  const pooled = getWorker();
  const { worker: w, ring, ctl } = pooled;
  const send = (m: ToWorker, transfer?: ArrayBuffer[]): void => w.postMessage(m, transfer);
  const id = nextJob++;
  return new Promise<InflateResult>((resolve, reject) => {
    let settled = false;
    // The diffID is hashed here, not in the worker: the main thread waits for data now and then
    // anyway, and the worker (with the decompressor) is the longer chain.
    const diff = opts.diffId === false ? undefined : createHash('sha256');
    let inFlight = 0;
    const blob = typeof source === 'string' ? undefined : source;

    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      blob?.destroy();
      w.removeAllListeners('message');
      send({ t: 'abort', id }); // the worker kills the decompressor and exits
      w.unref();
      reject(err);
    };

    let consumed = 0;
    /** Consume every published slot; then go idle (see the control words). */
    const drain = (): void => {
      for (;;) {
        const produced = Atomics.load(ctl, Ctl.PRODUCED);
        while (consumed < produced) {
          if (settled) return;
          const off = (consumed % SLOTS) * CHUNK;
          const len = Atomics.load(ctl, Ctl.LEN + (consumed % SLOTS));
          const chunk = ring.subarray(off, off + len);
          diff?.update(chunk);
          try {
            onChunk(chunk);
          } catch (e) {
            fail(e);
            return;
          }
          consumed++;
          Atomics.store(ctl, Ctl.CONSUMED, consumed);
          if (Atomics.compareExchange(ctl, Ctl.WAITING, 1, 0) === 1) send({ t: 'ack', id });
        }
        Atomics.store(ctl, Ctl.MAIN_IDLE, 1);
        if (Atomics.load(ctl, Ctl.PRODUCED) === consumed) return;
        // More arrived meanwhile: carry on, unless the worker already claimed the wake-up.
        if (Atomics.compareExchange(ctl, Ctl.MAIN_IDLE, 1, 0) !== 1) return;
      }
    };

    w.on('message', (m: FromWorker) => {
      if (settled || m.id !== id) return;
      switch (m.t) {
        case 'data':
          drain();
          return;
        case 'inAck':
          inFlight -= m.n;
          if (blob !== undefined && blob.isPaused() && inFlight < INPUT_AHEAD) blob.resume();
          return;
        case 'error':
          if (m.kind === 'tool') fail(new ToolFailedError(tool ?? compression, m.message));
          else if (m.kind === 'corrupt') fail(new CorruptError(m.message));
          else fail(new StrataError('UNAVAILABLE', `layer blob: ${m.message}`));
          return;
        case 'end':
          drain();
          if (settled) return;
          settled = true;
          release(pooled);
          resolve({
            ...(diff ? { diffId: `sha256:${diff.digest('hex')}` as Digest } : {}),
            size: m.size,
            blobDigest: `sha256:${m.blobDigest}` as Digest,
          });
          return;
      }
    });
    w.on('error', (e) =>
      fail(new StrataError('UNAVAILABLE', `unpack worker failed: ${e.message}`, { cause: e })),
    );
    w.on('exit', () => fail(new StrataError('UNAVAILABLE', 'unpack worker exited')));

    ctl.fill(0); // the worker is idle: reset the ring
    Atomics.store(ctl, Ctl.MAIN_IDLE, 1);
    send({
      t: 'start',
      id,
      compression,
      tool,
      path: typeof source === 'string' ? source : undefined,
    });
    if (blob === undefined) return;
    blob.on('data', (c: Buffer) => {
      if (settled) return;
      const copy = Buffer.allocUnsafeSlow(c.length);
      c.copy(copy);
      inFlight += c.length;
      send({ t: 'in', id, buf: copy.buffer, len: c.length }, [copy.buffer]);
      if (inFlight >= INPUT_AHEAD) blob.pause();
    });
    blob.on('end', () => {
      if (!settled) send({ t: 'inEnd', id });
    });
    // A verified source's own error (a digest mismatch at its EOF) says more than "corrupt".
    blob.on('error', (e) =>
      fail(
        e instanceof StrataError
          ? e
          : new CorruptError(`layer stream failed: ${String(e)}`, { cause: e }),
      ),
    );
  });
}
