/**
 * What the main thread (inflate.ts) and the decompression worker (inflate-worker.ts) share: the
 * ring's control words and the messages they exchange. Only types and constants, so the worker
 * loads nothing else.
 */
import type { Compression } from '@strata/oci';

/** Bytes per slot of the ring. */
export const CHUNK = 1 << 20;
/** Slots in the ring. */
export const SLOTS = 16;

/*
 * Control words shared with the worker. The worker fills slot PRODUCED % SLOTS, stores its length
 * at LEN + slot and bumps PRODUCED; the main thread consumes in order and bumps CONSUMED. Messages
 * are only sent to wake a side that went to sleep: MAIN_IDLE is set by the main thread before it
 * returns to the event loop (the worker then posts 'data'), WAITING by the worker when the ring is
 * full (the main thread then posts 'ack'). Each side sets its flag, then re-checks the other's
 * counter (sequentially consistent Atomics), so no wake-up is lost; whoever clears the flag with
 * compareExchange owns the wake-up.
 */
export const Ctl = {
  PRODUCED: 0,
  CONSUMED: 1,
  MAIN_IDLE: 2,
  WAITING: 3,
  LEN: 4,
} as const;

/** What a worker is started with: the ring (SLOTS × chunk bytes) and its control words. */
export interface InflateWorkerData {
  ring: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  chunk: number;
}

/** Messages to the worker. Each names its job; the worker ignores those of an earlier job. */
export type ToWorker =
  | {
      t: 'start';
      id: number;
      compression: Compression;
      /** The decompressor to spawn (`zstd`, `igzip`); zlib or a copy in the worker when absent. */
      tool: string | undefined;
      /** A file of compressed bytes; when absent, they arrive in 'in' messages. */
      path: string | undefined;
    }
  /** The main thread consumed slots after the worker asked (WAITING). */
  | { t: 'ack'; id: number }
  /** Compressed input: the first `len` bytes of `buf`, which is transferred. */
  | { t: 'in'; id: number; buf: ArrayBuffer; len: number }
  | { t: 'inEnd'; id: number }
  /** The main thread discards this worker: kill the decompressor and exit. */
  | { t: 'abort'; id: number };

/** Messages from the worker. */
export type FromWorker = { id: number } & (
  | { t: 'data' }
  | { t: 'inAck'; n: number }
  | { t: 'end'; size: number; blobDigest: string }
  | { t: 'error'; kind: 'tool' | 'corrupt' | 'input'; message: string }
);
