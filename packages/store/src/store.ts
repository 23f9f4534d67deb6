import { createReadStream, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform, TransformCallback } from 'node:stream';
import {
  Annotations,
  Descriptor,
  Digest,
  DigestMismatchError,
  Hasher,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  InvalidArgumentError,
  InvalidDocumentError,
  LockedError,
  MediaType,
  MediaTypes,
  NotFoundError,
  SizeMismatchError,
  StoreConfigFile,
  assertValid,
  digestHex,
  encodeJson,
  formatReference,
  isDigest,
  parseDigest,
  parseJson,
  parseReference,
  sha256,
  validateConfig,
  validateIndex,
  validateManifest,
  validateOciLayout,
  validateStoreConfig,
  withDefaultTag,
} from '@strata/oci';
import { BlobReader } from './blob-reader';
import { exists, fsyncDir, tempPathFor, writeFileAtomic } from './atomic';
import { PartialBlob, copyToFile, openForAppend, placeBlob } from './ingest';
import { pidAlive, waitForUnlock, withFileLock } from './lock';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** The store's settings: `.strata/config.json` with defaults filled in. */
export interface StoreConfig {
  gc: {
    /**
     * Bytes of build-cache layers and snapshots that no tagged image uses which `gc` keeps
     * (most recently used first). 0: an explicit gc frees everything no tag uses.
     */
    keepUnusedBytes: number;
    /** Unused entries not used for this many days go, whatever the byte budget. */
    keepUnusedDays: number;
  };
}

export const defaultStoreConfig: StoreConfig = { gc: { keepUnusedBytes: 0, keepUnusedDays: 7 } };

/** What `Store.gc` freed, or with `dryRun` would free. */
export interface BlobGcResult {
  /** Blobs removed. */
  removed: number;
  /** Bytes of blobs, stale ingest files and partial downloads removed. */
  bytesFreed: number;
  /** The blobs removed, with their sizes. */
  blobs: BlobInfo[];
  /** Partial downloads and stale ingest files removed, and their bytes. */
  partials: { count: number; bytes: number };
}

/**
 * Apparent bytes of the files under `p` (a file or a tree); a file hard-linked twice counts
 * once per `seen` set. Missing paths count 0.
 */
export async function diskUsage(p: string, seen = new Set<string>()): Promise<number> {
  let st;
  try {
    st = await fsp.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  let bytes = 0;
  const id = `${st.dev}:${st.ino}`;
  if (!seen.has(id)) {
    seen.add(id);
    if (!st.isDirectory()) bytes += st.size;
  }
  if (st.isDirectory()) {
    const names = await fsp.readdir(p).catch(() => [] as string[]);
    for (const n of names) bytes += await diskUsage(path.join(p, n), seen);
  }
  return bytes;
}

export interface Expected {
  digest?: Digest;
  size?: number;
}

/** Where the store lives when neither --store nor STRATA_STORE says. */
export function defaultStorePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATA_STORE) return env.STRATA_STORE;
  const data = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'strata', 'store');
}

/** Normalise a local tag to the ref name stored in index.json (`name:tag`). */
export function normalizeTag(ref: string): string {
  const r = withDefaultTag(parseReference(ref));
  if (r.digest !== undefined) {
    throw new InvalidArgumentError(`a tag cannot carry a digest: ${ref}`);
  }
  return formatReference(r);
}

/** Verifies digest and size of everything that flows through it, at EOF. */
export class VerifyingStream extends Transform {
  private readonly hasher = new Hasher();
  constructor(
    private readonly expected: Expected,
    private readonly what: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    if (this.expected.size !== undefined && this.hasher.size > this.expected.size) {
      cb(new SizeMismatchError(this.expected.size, this.hasher.size, this.what));
      return;
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expected.size !== undefined && this.hasher.size !== this.expected.size) {
      cb(new SizeMismatchError(this.expected.size, this.hasher.size, this.what));
      return;
    }
    const d = this.hasher.digest();
    if (this.expected.digest !== undefined && d !== this.expected.digest) {
      cb(new DigestMismatchError(this.expected.digest, d, this.what));
      return;
    }
    cb();
  }
}

/** A missing blob file is a NotFoundError; other errors pass unchanged. */
function notInStore(e: unknown, digest: Digest): unknown {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
    return new NotFoundError(`blob ${digest} is not in the store`, { cause: e });
  }
  return e;
}

/**
 * A content store laid out as an OCI image layout: `oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`. Strata's own scratch space lives under `.strata/`.
 */
export class Store {
  private constructor(readonly root: string) {}

  static async open(root: string): Promise<Store> {
    const s = new Store(path.resolve(root));
    await s.init();
    return s;
  }

  private get blobDir(): string {
    return path.join(this.root, 'blobs', 'sha256');
  }
  private get ingestDir(): string {
    return path.join(this.root, '.strata', 'ingest');
  }
  private get indexPath(): string {
    return path.join(this.root, 'index.json');
  }
  private get leaseDir(): string {
    return path.join(this.root, '.strata', 'leases');
  }
  /** GC roots besides tags: one JSON file per root holding `{ descriptors: Descriptor[] }`. */
  get rootsDir(): string {
    return path.join(this.root, '.strata', 'roots');
  }
  /** One file per layer blob, named by its hex digest, holding the blob's verified diffID. */
  private get diffIdDir(): string {
    return path.join(this.root, '.strata', 'diffids');
  }
  private get lockPath(): string {
    return path.join(this.root, '.strata', 'index.lock');
  }
  /** Held by a gc that deletes cache entries or snapshots; a new lease waits for it. */
  private get gcLockPath(): string {
    return path.join(this.root, '.strata', 'gc.lock');
  }
  /** The store's settings file (optional). */
  get configPath(): string {
    return path.join(this.root, '.strata', 'config.json');
  }

  private async init(): Promise<void> {
    const layout = path.join(this.root, 'oci-layout');
    // A store that exists opens in one round of calls: its directories, its layout, its index.
    const [, layoutBytes, hasIndex] = await Promise.all([
      Promise.all(
        [this.blobDir, this.ingestDir, this.leaseDir, this.rootsDir].map((d) =>
          fsp.mkdir(d, { recursive: true }),
        ),
      ),
      fsp.readFile(layout).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      }),
      exists(this.indexPath),
    ]);
    if (layoutBytes) {
      assertValid(validateOciLayout, parseJson(layoutBytes, 'oci-layout'), 'oci-layout');
    } else {
      await writeFileAtomic(layout, encodeJson({ imageLayoutVersion: '1.0.0' }));
    }
    if (!hasIndex) {
      await withFileLock(this.lockPath, async () => {
        if (!(await exists(this.indexPath)))
          await this.writeIndex({ schemaVersion: 2, manifests: [] });
      });
    }
  }

  blobPath(digest: Digest): string {
    return path.join(this.blobDir, digestHex(digest));
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  /**
   * Ingest a blob: stream through sha256 into a temp file, fsync, check size and digest,
   * then rename into place. A blob that already exists is a success.
   */
  async putBlob(src: Readable | AsyncIterable<Buffer>, expected: Expected = {}): Promise<BlobInfo> {
    const tmp = path.join(this.ingestDir, path.basename(tempPathFor('blob')));
    const hasher = new Hasher();
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await copyToFile(src, fh, 0, (buf) => {
        hasher.update(buf);
        if (expected.size !== undefined && hasher.size > expected.size) {
          throw new SizeMismatchError(expected.size, hasher.size, expected.digest ?? 'blob');
        }
      });
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
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
    const file = path.join(this.ingestDir, `pull-${digestHex(expected.digest)}.partial`);
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
    return this.putBlob(Readable.from([data]), expected);
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
    const verify = new VerifyingStream({ digest, size: f.size }, `blob ${digest}`);
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
    if (got !== digest) throw new DigestMismatchError(digest, got, what);
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
  async readImage(
    desc: Descriptor,
    what: string,
  ): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    if (
      desc.mediaType !== MediaTypes.imageManifest &&
      desc.mediaType !== MediaTypes.dockerManifest
    ) {
      throw new InvalidDocumentError(`image ${what}`, [`unsupported media type ${desc.mediaType}`]);
    }
    const manifest = await this.readManifest(desc);
    const config = await this.readConfig(manifest.config);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw new InvalidDocumentError(`image ${what}`, [
        `${manifest.layers.length} layers but ${diffIds.length} diff_ids`,
      ]);
    }
    return { manifest, config };
  }

  /**
   * The image manifest of one role (`rootfs`, `buildchroot`) in a template index, or the
   * descriptor itself when it already names an image. Undefined when the index has no such role.
   */
  async imageOfRole(desc: Descriptor, role = 'rootfs'): Promise<Descriptor | undefined> {
    if (desc.mediaType !== MediaTypes.imageIndex) return role === 'rootfs' ? desc : undefined;
    const idx = await this.readImageIndex(desc);
    const hit = idx.manifests.find((d) => d.annotations?.[Annotations.role] === role);
    if (hit || role !== 'rootfs') return hit;
    return idx.manifests.find((d) => d.mediaType === MediaTypes.imageManifest);
  }

  async readImageIndex(desc: Descriptor): Promise<ImageIndex> {
    const doc = parseJson(await this.readBlob(desc.digest, desc.size), `index ${desc.digest}`);
    return assertValid(validateIndex, doc, `index ${desc.digest}`);
  }

  async readConfig(desc: Descriptor): Promise<ImageConfig> {
    const doc = parseJson(await this.readBlob(desc.digest, desc.size), `config ${desc.digest}`);
    return assertValid(validateConfig, doc, `image config ${desc.digest}`);
  }

  // ---- index.json -------------------------------------------------------------

  async readIndex(): Promise<ImageIndex> {
    const doc = parseJson(await fsp.readFile(this.indexPath), 'index.json');
    return assertValid(validateIndex, doc, `${this.indexPath}`);
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    await writeFileAtomic(this.indexPath, encodeJson(index));
  }

  /** Read-modify-write index.json under the store's lock. */
  async updateIndex<T>(fn: (index: ImageIndex) => T | Promise<T>): Promise<T> {
    return withFileLock(
      this.lockPath,
      async () => {
        const index = await this.readIndex();
        const out = await fn(index);
        await this.writeIndex(index);
        return out;
      },
      { what: `store ${this.root}` },
    );
  }

  /** Tagged images, in index order. */
  async list(): Promise<Array<{ ref: string; descriptor: Descriptor }>> {
    const index = await this.readIndex();
    return index.manifests.map((d) => ({
      ref: d.annotations?.[Annotations.refName] ?? d.digest,
      descriptor: d,
    }));
  }

  /**
   * Point a tag at a manifest or index that is already in the store. Returns what the tag named
   * before, if anything (the same digest when it did not move), so callers can say it moved.
   */
  async tag(ref: string, desc: Descriptor): Promise<Descriptor | undefined> {
    const name = normalizeTag(ref);
    if (!(await this.hasBlob(desc.digest))) {
      throw new NotFoundError(`cannot tag ${name}: ${desc.digest} is not in the store`);
    }
    const entry: Descriptor = {
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      annotations: { ...(desc.annotations ?? {}), [Annotations.refName]: name },
    };
    if (desc.platform) entry.platform = desc.platform;
    return this.updateIndex((index) => {
      const before = index.manifests.find((d) => d.annotations?.[Annotations.refName] === name);
      index.manifests = index.manifests.filter(
        (d) => d.annotations?.[Annotations.refName] !== name,
      );
      index.manifests.push(entry);
      return before;
    });
  }

  /** Remove a tag. Blobs stay until `gc`. */
  async untag(ref: string): Promise<Descriptor> {
    const name = ref.startsWith('sha256:') ? ref : normalizeTag(ref);
    return this.updateIndex((index) => {
      const hit = index.manifests.find(
        (d) => d.annotations?.[Annotations.refName] === name || d.digest === name,
      );
      if (!hit) throw new NotFoundError(`no image ${ref} in the store`);
      index.manifests = index.manifests.filter((d) => d !== hit);
      return hit;
    });
  }

  /** Resolve a local tag, `name@sha256:…` or a bare digest to its descriptor. */
  async resolve(ref: string): Promise<Descriptor> {
    const index = await this.readIndex();
    if (isDigest(ref)) {
      const hit = index.manifests.find((d) => d.digest === ref);
      if (hit) return hit;
      return this.describeBlob(parseDigest(ref));
    }
    const r = parseReference(ref);
    if (r.digest !== undefined) {
      const hit = index.manifests.find((d) => d.digest === r.digest);
      return hit ?? this.describeBlob(r.digest);
    }
    const name = normalizeTag(ref);
    const hit = index.manifests.find((d) => d.annotations?.[Annotations.refName] === name);
    if (!hit) {
      throw new NotFoundError(`no image ${name} in the store ${this.root}`, {
        hint: 'see `strata ls` for what the store holds',
      });
    }
    return hit;
  }

  private async describeBlob(digest: Digest): Promise<Descriptor> {
    const data = await this.readBlob(digest);
    const doc = parseJson(data, digest) as { mediaType?: string; manifests?: unknown };
    const mediaType =
      doc.mediaType ?? (doc.manifests ? MediaTypes.imageIndex : MediaTypes.imageManifest);
    return { mediaType, digest, size: data.length };
  }

  /**
   * Run `fn` under a lease: blobs written or touched while any live lease is held are
   * kept by a concurrent `gc`, so an operation's blobs survive until it tags them.
   */
  async withLease<T>(fn: () => Promise<T>): Promise<T> {
    const file = path.join(this.leaseDir, path.basename(tempPathFor('lease')));
    await fsp.writeFile(file, JSON.stringify({ pid: process.pid, since: Date.now() }));
    try {
      // The lease is written before the gc lock is looked at, and gc takes its lock before it
      // looks at leases: either this waits for that gc, or that gc sees this lease and
      // leaves the build cache and snapshots alone.
      await waitForUnlock(this.gcLockPath, {
        timeoutMs: 30 * 60_000,
        what: `store ${this.root} (a gc is running)`,
      });
      return await fn();
    } finally {
      await fsp.rm(file, { force: true });
    }
  }

  /**
   * Record a GC root: `gc` keeps every blob the descriptors reach (a build cache entry, say).
   * `doc` may carry more fields; only `descriptors` matters to the store.
   */
  async putRoot(
    name: string,
    doc: { descriptors: Descriptor[] } & Record<string, unknown>,
  ): Promise<void> {
    if (!/^[A-Za-z0-9._-]+$/.test(name))
      throw new InvalidArgumentError(`invalid root name ${name}`);
    await writeFileAtomic(path.join(this.rootsDir, `${name}.json`), encodeJson(doc));
  }

  /** Read a GC root written by putRoot, or undefined. */
  async getRoot(
    name: string,
  ): Promise<({ descriptors: Descriptor[] } & Record<string, unknown>) | undefined> {
    try {
      return JSON.parse(await fsp.readFile(path.join(this.rootsDir, `${name}.json`), 'utf8'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async removeRoots(filter: (name: string) => boolean = () => true): Promise<number> {
    let n = 0;
    for (const f of await fsp.readdir(this.rootsDir)) {
      if (f.endsWith('.json') && filter(f.slice(0, -5))) {
        await fsp.rm(path.join(this.rootsDir, f), { force: true });
        n++;
      }
    }
    return n;
  }

  private async rootDescriptors(except: ReadonlySet<string> = new Set()): Promise<Descriptor[]> {
    const out: Descriptor[] = [];
    for (const f of await fsp.readdir(this.rootsDir)) {
      if (!f.endsWith('.json') || except.has(f.slice(0, -5))) continue;
      const doc = await this.getRoot(f.slice(0, -5)).catch(() => undefined);
      for (const d of doc?.descriptors ?? []) if (isDigest(d.digest)) out.push(d);
    }
    return out;
  }

  /**
   * Run `fn` (which deletes build-cache entries, snapshots or apt caches) holding the store's gc
   * lock. `fn` is told whether a lease was live once the lock was held: if none was, no
   * build, pull or ingest runs until `fn` returns (see withLease).
   */
  async withGcLock<T>(fn: (busy: boolean) => Promise<T>): Promise<T> {
    return withFileLock(this.gcLockPath, async () => fn(await this.busy()), {
      what: `gc of store ${this.root}`,
    });
  }

  /** The store's settings: `.strata/config.json` (InvalidDocumentError when malformed). */
  async config(): Promise<StoreConfig> {
    let data: Buffer;
    try {
      data = await fsp.readFile(this.configPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        return structuredClone(defaultStoreConfig);
      throw e;
    }
    const doc: StoreConfigFile = assertValid(
      validateStoreConfig,
      parseJson(data, this.configPath),
      this.configPath,
    );
    return { gc: { ...defaultStoreConfig.gc, ...(doc.gc ?? {}) } };
  }

  /** The GC roots written by putRoot: name, size of the file, and when it was last written or touched. */
  async listRoots(): Promise<Array<{ name: string; bytes: number; mtimeMs: number }>> {
    const out = [];
    for (const f of await fsp.readdir(this.rootsDir)) {
      if (!f.endsWith('.json')) continue;
      const st = await fsp.stat(path.join(this.rootsDir, f)).catch(() => undefined);
      if (st) out.push({ name: f.slice(0, -5), bytes: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  /** Mark a root as used now (gc keeps recently used unused entries first). */
  async touchRoot(name: string): Promise<void> {
    const now = new Date();
    await fsp.utimes(path.join(this.rootsDir, `${name}.json`), now, now).catch(() => undefined);
  }

  /** Every blob in the store with its size. */
  async listBlobs(): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    for (const hex of await this.allBlobs()) {
      const st = await fsp.stat(path.join(this.blobDir, hex)).catch(() => undefined);
      if (st) out.push({ digest: `sha256:${hex}` as Digest, size: st.size });
    }
    return out;
  }

  /** Whether some live process holds a lease (a build or an ingest is under way). */
  async busy(): Promise<boolean> {
    return (await this.oldestLease()) !== undefined;
  }

  /** Start time (ms) of the oldest live lease, if any. */
  private async oldestLease(): Promise<number | undefined> {
    let oldest: number | undefined;
    for (const name of await fsp.readdir(this.leaseDir)) {
      const p = path.join(this.leaseDir, name);
      try {
        const l = JSON.parse(await fsp.readFile(p, 'utf8')) as { pid: number; since: number };
        if (!pidAlive(l.pid)) {
          await fsp.rm(p, { force: true });
          continue;
        }
        oldest = oldest === undefined ? l.since : Math.min(oldest, l.since);
      } catch {
        /* a lease being written right now: treat as starting now */
        oldest = oldest === undefined ? Date.now() : Math.min(oldest, Date.now());
      }
    }
    return oldest;
  }

  // ---- reachability, gc, fsck -------------------------------------------------

  /** Every blob reachable from a descriptor (manifests, indexes, configs, layers). */
  async reachable(
    desc: Descriptor,
    into = new Map<Digest, Descriptor>(),
  ): Promise<Map<Digest, Descriptor>> {
    if (into.has(desc.digest)) return into;
    into.set(desc.digest, desc);
    if (
      desc.mediaType === MediaTypes.imageIndex ||
      desc.mediaType === MediaTypes.dockerManifestList
    ) {
      const idx = await this.readImageIndex(desc);
      for (const m of idx.manifests) await this.reachable(m, into);
    } else if (
      desc.mediaType === MediaTypes.imageManifest ||
      desc.mediaType === MediaTypes.dockerManifest
    ) {
      const m = await this.readManifest(desc);
      into.set(m.config.digest, m.config);
      for (const l of m.layers) into.set(l.digest, l);
    }
    return into;
  }

  private async allBlobs(): Promise<string[]> {
    return (await fsp.readdir(this.blobDir)).filter((n) => /^[a-f0-9]{64}$/.test(n));
  }

  /**
   * Drop blobs that no tag or GC root reaches, stale ingest files, and partial downloads that no
   * running pull is using (a later pull of the blob then starts from the beginning). The roots
   * named in `dropRoots` are removed first (under the same lock) and keep nothing. With
   * `dryRun`, nothing is removed and the result says what would be.
   */
  async gc(opts: { dryRun?: boolean; dropRoots?: readonly string[] } = {}): Promise<BlobGcResult> {
    const dry = opts.dryRun === true;
    const drop = new Set(opts.dropRoots ?? []);
    return withFileLock(
      this.lockPath,
      async () => {
        if (!dry) {
          for (const name of drop) {
            if (!/^[A-Za-z0-9._-]+$/.test(name))
              throw new InvalidArgumentError(`invalid root name ${name}`);
            await fsp.rm(path.join(this.rootsDir, `${name}.json`), { force: true });
          }
        }
        const index = await this.readIndex();
        const keep = new Map<Digest, Descriptor>();
        for (const d of index.manifests) await this.reachable(d, keep);
        for (const d of await this.rootDescriptors(drop)) await this.reachable(d, keep);
        const lease = await this.oldestLease();
        const blobs: BlobInfo[] = [];
        let bytesFreed = 0;
        for (const hex of await this.allBlobs()) {
          if (keep.has(`sha256:${hex}` as Digest)) continue;
          const p = path.join(this.blobDir, hex);
          const st = await fsp.stat(p);
          if (lease !== undefined && st.mtimeMs >= lease - 2000) continue;
          if (!dry) await fsp.rm(p, { force: true });
          blobs.push({ digest: `sha256:${hex}` as Digest, size: st.size });
          bytesFreed += st.size;
        }
        const partials = { count: 0, bytes: 0 };
        for (const name of await fsp.readdir(this.ingestDir)) {
          const p = path.join(this.ingestDir, name);
          if (/^pull-[a-f0-9]{64}\.partial$/.test(name)) {
            const n = dry ? await this.partialSize(p) : await this.dropPartial(p);
            if (n > 0) {
              partials.count++;
              partials.bytes += n;
            }
            continue;
          }
          const m = /-(\d+)-[a-f0-9]+$/.exec(name);
          const pid = m ? Number(m[1]) : NaN;
          if (!Number.isNaN(pid) && pid !== process.pid && !pidAlive(pid)) {
            partials.count++;
            partials.bytes += (await fsp.stat(p)).size;
            if (!dry) await fsp.rm(p, { force: true });
          }
        }
        bytesFreed += partials.bytes;
        if (dry) return { removed: blobs.length, bytesFreed, blobs, partials };
        if (blobs.length > 0) await fsyncDir(this.blobDir);
        // A diffID record goes with its blob.
        for (const hex of await fsp.readdir(this.diffIdDir).catch(() => [])) {
          if (/^[a-f0-9]{64}$/.test(hex) && !(await exists(path.join(this.blobDir, hex)))) {
            await fsp.rm(path.join(this.diffIdDir, hex), { force: true });
          }
        }
        return { removed: blobs.length, bytesFreed, blobs, partials };
      },
      { what: `store ${this.root}` },
    );
  }

  /** The size of a partial download no running pull holds (0 when one does). */
  private async partialSize(file: string): Promise<number> {
    const holder = await fsp.readFile(`${file}.lock`, 'utf8').catch(() => undefined);
    if (holder !== undefined) {
      try {
        if (pidAlive((JSON.parse(holder) as { pid: number }).pid)) return 0;
      } catch {
        return 0; // a lock being written right now
      }
    }
    return (await fsp.stat(file).catch(() => undefined))?.size ?? 0;
  }

  /** Remove a partial download unless a live process is fetching it; returns the bytes freed. */
  private async dropPartial(file: string): Promise<number> {
    try {
      return await withFileLock(
        `${file}.lock`,
        async () => {
          const st = await fsp.stat(file).catch(() => undefined);
          if (st === undefined) return 0;
          await fsp.rm(file, { force: true });
          return st.size;
        },
        { timeoutMs: 0 },
      );
    } catch (e) {
      if (e instanceof LockedError) return 0; // a pull is using it
      throw e;
    }
  }

  /**
   * The diffID (sha256 of the uncompressed tar) that layer blob `digest` is known to have:
   * recorded when strata made the blob, or after an unpack that hashed both. An unpack of a blob
   * whose digest it checks can then skip hashing the uncompressed stream again.
   */
  async knownDiffId(digest: Digest): Promise<Digest | undefined> {
    const text = await fsp
      .readFile(path.join(this.diffIdDir, digestHex(digest)), 'utf8')
      .catch(() => undefined);
    return text !== undefined && isDigest(text) ? text : undefined;
  }

  /** Record that layer blob `digest` decompresses to a tar with `diffId` (see knownDiffId). */
  async recordDiffId(digest: Digest, diffId: Digest): Promise<void> {
    parseDigest(diffId);
    if ((await this.knownDiffId(digest)) === diffId) return;
    await fsp.mkdir(this.diffIdDir, { recursive: true });
    await writeFileAtomic(path.join(this.diffIdDir, digestHex(digest)), diffId);
  }

  /** Re-hash every blob and check that every referenced blob exists. */
  async fsck(): Promise<{ blobs: number; problems: string[] }> {
    const problems: string[] = [];
    const blobs = await this.allBlobs();
    for (const hex of blobs) {
      const digest = `sha256:${hex}` as Digest;
      try {
        const s = await this.openBlob(digest);
        for await (const _ of s) void _;
      } catch (e) {
        problems.push(`corrupt blob ${digest}: ${(e as Error).message}`);
      }
    }
    let index: ImageIndex | undefined;
    try {
      index = await this.readIndex();
    } catch (e) {
      problems.push(`index.json: ${(e as Error).message}`);
    }
    for (const d of index?.manifests ?? []) {
      const name = d.annotations?.[Annotations.refName] ?? d.digest;
      try {
        const all = await this.reachable(d);
        for (const [digest] of all) {
          if (!(await this.hasBlob(digest))) problems.push(`${name}: missing blob ${digest}`);
        }
      } catch (e) {
        if (e instanceof NotFoundError) problems.push(`${name}: ${e.message}`);
        else if (!(e instanceof DigestMismatchError || e instanceof SizeMismatchError)) {
          problems.push(`${name}: ${(e as Error).message}`);
        }
      }
    }
    return { blobs: blobs.length, problems };
  }
}
