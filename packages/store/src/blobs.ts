import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  DAMAGED_BLOB_HINT,
  Descriptor,
  Digest,
  DigestMismatchError,
  Expected,
  Hasher,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  MediaType,
  NotFoundError,
  SizeMismatchError,
  VerifyingStream,
  assertValid,
  digestHex,
  encodeJson,
  parseJson,
  sha256,
  validateConfig,
  validateIndex,
  validateManifest,
} from '@strata/oci';
import { BlobReader } from './blob-reader';
import { exists, tempPathFor, writeTemp } from './atomic';
import { PartialBlob, copyToFile, openForAppend, placeBlob, touchBlob } from './ingest';
import { withFileLock } from './lock';
import { StorePaths } from './paths';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** A missing blob file is a NotFoundError; other errors pass unchanged. */
function notInStore(e: unknown, digest: Digest): unknown {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
    return new NotFoundError(`blob ${digest} is not in the store`, { cause: e });
  }
  return e;
}

/** The content-addressed blobs of a store: ingest, read (verified) and list. */
export class BlobStore {
  protected constructor(readonly paths: StorePaths) {}

  get root(): string {
    return this.paths.root;
  }

  blobPath(digest: Digest): string {
    return path.join(this.paths.blobDir, digestHex(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  /**
   * Whether the store holds a blob that a running operation is about to use as it is (a copy
   * that skips it), refreshing its mtime: a concurrent gc then sees it as in use by the
   * operation's lease, even when no tag reaches it yet. With `size`, a copy of another size
   * (damaged: cut short, or written over) counts as not held, so that it is fetched again.
   */
  async holdsBlob(digest: Digest, size?: number): Promise<boolean> {
    if (size !== undefined) {
      const st = await fsp.stat(this.blobPath(digest)).catch(() => undefined);
      if (st?.size !== size) return false;
    }
    return touchBlob(this.blobPath(digest));
  }

  /**
   * Ingest a blob: stream through sha256 into a temp file, fsync, check size and digest,
   * then rename into place. A blob that already exists is replaced by the verified new copy.
   */
  async putBlob(src: Readable | AsyncIterable<Buffer>, expected: Expected = {}): Promise<BlobInfo> {
    const tmp = path.join(this.paths.ingestDir, path.basename(tempPathFor('blob')));
    const hasher = new Hasher();
    await writeTemp(
      tmp,
      0o644,
      async (fh) => {
        await copyToFile(src, fh, 0, (buf) => {
          hasher.update(buf);
          if (expected.size !== undefined && hasher.size > expected.size) {
            throw new SizeMismatchError(expected.size, hasher.size, expected.digest ?? 'blob');
          }
        });
      },
      expected.size,
    );
    const digest = hasher.digest();
    const size = hasher.size;
    try {
      if (expected.size !== undefined && size !== expected.size) {
        throw new SizeMismatchError(expected.size, size, expected.digest ?? digest);
      }
      if (expected.digest !== undefined && digest !== expected.digest) {
        throw new DigestMismatchError(expected.digest, digest, 'blob');
      }
      await placeBlob(tmp, this.blobPath(digest));
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    return { digest, size };
  }

  /**
   * Run `fn` on the resumable partial download of one blob (see PartialBlob), holding a lock so
   * that two processes fetching the same blob take turns. The file outlives a crash, so the next
   * run picks up where this one stopped.
   */
  async withPartial<T>(
    expected: { digest: Digest; size: number },
    fn: (partial: PartialBlob) => Promise<T>,
  ): Promise<T> {
    const file = path.join(this.paths.ingestDir, `pull-${digestHex(expected.digest)}.partial`);
    return withFileLock(
      `${file}.lock`,
      async () => {
        const fh = await openForAppend(file);
        try {
          return await fn(new PartialBlob(file, expected, fh, this.blobPath(expected.digest)));
        } finally {
          const empty = (await fh.stat()).size === 0;
          await fh.close();
          // An empty partial carries nothing to resume (a mismatch resets it): don't leave it.
          if (empty) await fsp.rm(file, { force: true });
        }
      },
      { timeoutMs: 30 * 60_000, what: `download of ${expected.digest}` },
    );
  }

  async putBytes(data: Buffer, expected: Expected = {}): Promise<BlobInfo> {
    // Bytes in memory have a known digest before anything is written: a blob the store holds
    // already (a cached rebuild's config and manifest) is touched rather than written and synced.
    const digest = sha256(data);
    const matches =
      (expected.digest === undefined || expected.digest === digest) &&
      (expected.size === undefined || expected.size === data.length);
    if (matches && (await this.holdsIntact(digest, data))) return { digest, size: data.length };
    return this.putBlob(Readable.from([data]), expected);
  }

  /**
   * Whether the stored copy of `digest` holds exactly `data` (refreshing its mtime for gc). A
   * damaged copy is then written over: the bytes are small documents, cheap to compare.
   */
  private async holdsIntact(digest: Digest, data: Buffer): Promise<boolean> {
    const file = this.blobPath(digest);
    const held = await fsp.readFile(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    return held !== undefined && held.equals(data) && touchBlob(file);
  }

  /** Store a JSON document and return its descriptor. */
  async putJson(doc: unknown, mediaType: MediaType): Promise<Descriptor> {
    const info = await this.putBytes(encodeJson(doc));
    return { mediaType, digest: info.digest, size: info.size };
  }

  /**
   * The file of a stored blob, checked to exist (NotFoundError) and, when `size` is given, to
   * have that size. Whoever reads it verifies the digest.
   */
  async blobFile(digest: Digest, size?: number): Promise<{ path: string; size: number }> {
    const p = this.blobPath(digest);
    let st;
    try {
      st = await fsp.stat(p);
    } catch (e) {
      throw notInStore(e, digest);
    }
    if (size !== undefined && st.size !== size) {
      throw new SizeMismatchError(size, st.size, `blob ${digest}`);
    }
    return { path: p, size: st.size };
  }

  /** Open a blob for reading; digest and size are verified at EOF (the stream errors on mismatch). */
  async openBlob(digest: Digest, size?: number): Promise<Readable> {
    const f = await this.blobFile(digest, size);
    const verify = new VerifyingStream(
      { digest, size: f.size },
      `blob ${digest}`,
      DAMAGED_BLOB_HINT,
    );
    const file = createReadStream(f.path, { highWaterMark: 1 << 20 });
    file.on('error', (e) => verify.destroy(e));
    return file.pipe(verify);
  }

  /**
   * Open a blob for sending through {@link BlobReader.pipeTo}: reused buffers, and the digest
   * and size verified before the last chunk goes out. NotFoundError when it is not stored.
   */
  async openBlobReader(digest: Digest, size?: number): Promise<BlobReader> {
    try {
      return await BlobReader.open(this.blobPath(digest), digest, size, `blob ${digest}`);
    } catch (e) {
      throw notInStore(e, digest);
    }
  }

  /** Read a small blob (a JSON document) whole, verified: one read and one hash, no stream. */
  async readBlob(digest: Digest, size?: number): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await fsp.readFile(this.blobPath(digest));
    } catch (e) {
      throw notInStore(e, digest);
    }
    const what = `blob ${digest}`;
    if (size !== undefined && data.length !== size) {
      throw new SizeMismatchError(size, data.length, what);
    }
    const got = sha256(data);
    if (got !== digest)
      throw new DigestMismatchError(digest, got, what, { hint: DAMAGED_BLOB_HINT });
    return data;
  }

  async readManifest(desc: Descriptor): Promise<ImageManifest> {
    const doc = parseJson(await this.readBlob(desc.digest, desc.size), `manifest ${desc.digest}`);
    return assertValid(validateManifest, doc, `manifest ${desc.digest}`);
  }

  /**
   * Read an image: its manifest (which must be an image manifest, not an index) and config,
   * checked against each other.
   */

  async readImageIndex(desc: Descriptor): Promise<ImageIndex> {
    const doc = parseJson(await this.readBlob(desc.digest, desc.size), `index ${desc.digest}`);
    return assertValid(validateIndex, doc, `index ${desc.digest}`);
  }

  async readConfig(desc: Descriptor): Promise<ImageConfig> {
    const doc = parseJson(await this.readBlob(desc.digest, desc.size), `config ${desc.digest}`);
    return assertValid(validateConfig, doc, `image config ${desc.digest}`);
  }

  /** Every blob in the store with its size. */
  async listBlobs(): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    for (const hex of await this.allBlobs()) {
      const st = await fsp.stat(path.join(this.paths.blobDir, hex)).catch(() => undefined);
      if (st) out.push({ digest: `sha256:${hex}` as Digest, size: st.size });
    }
    return out;
  }

  /** The hex digests of every blob file. */
  async allBlobs(): Promise<string[]> {
    return (await fsp.readdir(this.paths.blobDir)).filter((n) => /^[a-f0-9]{64}$/.test(n));
  }
}
