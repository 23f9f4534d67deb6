import { createReadStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { Digest, DigestMismatchError, Hasher, SizeMismatchError, noSpaceAt } from '@strata/oci';
import { fsyncDir } from './atomic';

/** Bytes gathered before one `writev`. */
const BATCH = 1 << 20;

async function writevAll(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let pos = position;
  let rest = bufs;
  while (rest.length > 0) {
    let n = (await fh.writev(rest, pos)).bytesWritten;
    pos += n;
    // A short write: drop what went out and go on with the remainder.
    let i = 0;
    while (i < rest.length && n >= (rest[i] as Buffer).length) n -= (rest[i++] as Buffer).length;
    rest = rest.slice(i);
    if (n > 0) rest = [(rest[0] as Buffer).subarray(n), ...rest.slice(1)];
  }
}

/** Writes that may be in flight at once; the thread pool runs them side by side. */
const IN_FLIGHT = 4;

/**
 * Bytes written between two write-behind `fdatasync` calls. Each one is a journal commit that
 * also waits on whatever else the file system has in flight, so on a busy disk (several blobs of
 * a pull at once, other writers) frequent syncs cost more than they save: a pull of 1 GB in 5
 * layers took longer with a sync every 8 MiB than with one every 64 MiB, or none until the end.
 */
const SYNC_EVERY = 64 << 20;

/**
 * Copy `src` into `fh` from `position` on, passing every chunk to `onChunk` first (hashing, size
 * checks; a throw stops the copy). Chunks are gathered into batches, and a few batches are written
 * while the next ones are read, so a socket or a pipe is never stalled waiting on one small write
 * after another. Memory stays under (IN_FLIGHT + 1) batches.
 *
 * Write-behind: every SYNC_EVERY bytes an `fdatasync` starts in the thread pool (one at a time),
 * so the disk takes the data while the copy goes on and the caller's final fsync finds little
 * left to flush. Its error is thrown here: Linux reports a writeback error to one sync call only,
 * so dropping it would let the final fsync succeed on lost data. Returns the position after the
 * last byte.
 */
export async function copyToFile(
  src: AsyncIterable<Buffer>,
  fh: FileHandle,
  position: number,
  onChunk: (chunk: Buffer) => void,
): Promise<number> {
  let pos = position;
  const inFlight: Array<Promise<void>> = [];
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let sync: Promise<void> | undefined;
  let syncDone = true;
  let unsynced = 0;
  const flush = async (): Promise<void> => {
    const w = writevAll(fh, batch, pos);
    w.catch(() => undefined); // awaited below; this only keeps it from counting as unhandled
    inFlight.push(w);
    pos += batchBytes;
    unsynced += batchBytes;
    batch = [];
    batchBytes = 0;
    if (inFlight.length >= IN_FLIGHT) await inFlight.shift();
    if (unsynced >= SYNC_EVERY && syncDone) {
      if (sync) await sync; // settled: this only surfaces its error
      unsynced = 0;
      syncDone = false;
      sync = fh.datasync().finally(() => {
        syncDone = true;
      });
      sync.catch(() => undefined); // awaited later, as the writes are
    }
  };
  let error: { e: unknown } | undefined;
  try {
    for await (const chunk of src) {
      const c = chunk as Buffer;
      onChunk(c);
      batch.push(c);
      batchBytes += c.length;
      if (batchBytes >= BATCH) await flush();
    }
  } catch (e) {
    error = { e };
  }
  try {
    // Also on a failed source: what arrived is kept (a resumed download starts after it).
    if (batchBytes > 0) await flush();
  } catch (e) {
    error ??= { e };
  }
  // Every write settles before this returns or throws, failed or not: a caller that cleans up
  // after a failure (truncates or removes the file) must not have a write land after it.
  const settled = await Promise.allSettled([...inFlight, sync]);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (error) throw error.e;
  if (failed) throw failed.reason;
  return pos;
}

/**
 * Move a verified, fsynced temp file into place as blob `final`. A blob that is there already is
 * replaced rather than kept: the temp file is known good, while the stored copy may be damaged
 * (a flipped byte keeps its size), and keeping it made a rebuild or a new `template create`
 * report success over the broken copy. The rename is atomic, so a reader of the old copy keeps
 * its file, and the new one's fresh mtime tells a concurrent gc that a live lease uses it.
 */
export async function placeBlob(tmp: string, final: string): Promise<void> {
  await fsp.rename(tmp, final);
  await fsyncDir(path.dirname(final));
}

/**
 * Refresh the mtime of blob `final` if the store holds it, so that a concurrent gc sees it as in
 * use by a live lease; false when there is no such blob.
 */
export async function touchBlob(final: string): Promise<boolean> {
  const now = new Date();
  try {
    await fsp.utimes(final, now, now);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Feed bytes `[0, end)` of a file to a hasher. */
export async function hashPrefix(file: string, end: number, hasher: Hasher): Promise<void> {
  if (end <= 0) return;
  for await (const c of createReadStream(file, { start: 0, end: end - 1, highWaterMark: BATCH })) {
    hasher.update(c as Buffer);
  }
  if (hasher.size !== end) {
    throw new SizeMismatchError(end, hasher.size, file);
  }
}

/** Open (creating it if need be) a file for positional writes, keeping what it holds. */
export async function openForAppend(file: string): Promise<FileHandle> {
  try {
    return await fsp.open(file, 'r+');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return fsp.open(file, 'w', 0o644);
  }
}

/**
 * A blob that arrives in pieces, maybe across processes (a pull that was killed and then run
 * again). Its bytes collect in one file in the ingest area; it becomes a blob only when `commit`
 * finds the expected size and digest. Get one from `Store.withPartial`, which serializes per digest.
 */
export class PartialBlob {
  private hasher: Hasher | undefined;

  constructor(
    readonly file: string,
    readonly expected: { digest: Digest; size: number },
    private readonly fh: FileHandle,
    private readonly finalPath: string,
  ) {}

  /** How many bytes are there; a file longer than the blob is garbage and is dropped. */
  async length(): Promise<number> {
    const { size } = await this.fh.stat();
    if (size > this.expected.size) {
      await this.reset();
      return 0;
    }
    return size;
  }

  /** Throw away what is there. */
  async reset(): Promise<void> {
    await this.fh.truncate(0);
    this.hasher = new Hasher();
  }

  /**
   * Write `src` from byte `from` on (what lies beyond is dropped first). More bytes than the
   * blob has is a SizeMismatchError. Returns the length afterwards.
   */
  async append(src: AsyncIterable<Buffer>, from: number): Promise<number> {
    if ((await this.fh.stat()).size !== from) await this.fh.truncate(from);
    if (this.hasher?.size !== from) {
      this.hasher = new Hasher();
      await hashPrefix(this.file, from, this.hasher);
    }
    const hasher = this.hasher;
    try {
      return await copyToFile(src, this.fh, from, (c) => {
        if (hasher.size + c.length > this.expected.size) {
          throw new SizeMismatchError(this.expected.size, hasher.size + c.length, this.file);
        }
        hasher.update(c);
      });
    } catch (e) {
      this.hasher = undefined; // a failed write may have left less than was hashed
      throw noSpaceAt(e, path.dirname(this.file), this.expected.size);
    }
  }

  /**
   * Check size and digest, fsync, and move the bytes into place as the blob. On a mismatch the
   * file is emptied and a SizeMismatchError or DigestMismatchError is thrown.
   */
  async commit(): Promise<void> {
    const { digest, size } = this.expected;
    const have = (await this.fh.stat()).size;
    if (have !== size) throw new SizeMismatchError(size, have, digest);
    if (this.hasher?.size !== size) {
      this.hasher = new Hasher();
      await hashPrefix(this.file, size, this.hasher);
    }
    const got = this.hasher.digest();
    if (got !== digest) {
      await this.reset();
      throw new DigestMismatchError(digest, got, 'blob');
    }
    await this.fh.sync();
    await placeBlob(this.file, this.finalPath);
  }
}
