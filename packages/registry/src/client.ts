import { Readable, Transform, TransformCallback } from 'node:stream';
import {
  Descriptor,
  Digest,
  DigestMismatchError,
  Hasher,
  InvalidArgumentError,
  MediaType,
  MediaTypes,
  SizeMismatchError,
  isDigest,
  sha256,
} from '@strata/oci';
import { Store, VerifyingStream } from '@strata/store';
import { repositoryScope } from './challenge';
import { ManifestNotFoundError, RegistryError } from './errors';
import {
  StreamBody,
  Transport,
  TransportOptions,
  backoffDelay,
  discardBody,
  headerValue,
  isRetriable,
  sleep,
} from './transport';

/**
 * Opens a blob for upload: the whole blob, or the bytes `start`..`end` (inclusive) of it for a
 * chunked upload. Called once per attempt.
 */
export type OpenBlob = (start?: number, end?: number) => StreamBody | Promise<StreamBody>;

/** Media types we accept for manifests, most preferred first. */
export const MANIFEST_ACCEPT = [
  MediaTypes.imageIndex,
  MediaTypes.imageManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.dockerManifest,
].join(', ');

/** Largest manifest we will read (the distribution spec's recommended limit). */
export const MAX_MANIFEST = 4 * 1024 * 1024;

export type Action = 'pull' | 'push';

/** Per-blob progress: `bytes` of `size` moved so far. */
export type ProgressFn = (bytes: number) => void;

export interface RegistryClientOptions extends TransportOptions {
  repository: string;
  /** Scopes to ask for. Default pull only. */
  actions?: Action[];
}

export interface PushBlobOptions {
  /** Repositories on the same registry that may hold the blob: try a cross-repo mount first. */
  mountFrom?: readonly string[];
  /** Upload in PATCH chunks of this many bytes (default: one monolithic PUT). */
  chunkSize?: number;
  onProgress?: ProgressFn;
  /**
   * The blob is most likely missing (the caller knows of no copy on this registry): the upload
   * session starts while the HEAD is out, a round trip sooner. A session that the HEAD makes
   * needless is cancelled. Ignored when mounting.
   */
  expectMissing?: boolean;
}

export type PushOutcome = 'exists' | 'mounted' | 'uploaded';
export type PullOutcome = 'present' | 'downloaded';

export interface PullBlobOptions {
  onProgress?: ProgressFn;
}

export interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** True for an image index or a Docker manifest list. */
export function isIndexMediaType(mt: string): boolean {
  return mt === MediaTypes.imageIndex || mt === MediaTypes.dockerManifestList;
}

export function isManifestMediaType(mt: string): boolean {
  return (
    isIndexMediaType(mt) || mt === MediaTypes.imageManifest || mt === MediaTypes.dockerManifest
  );
}

function checkRepository(repo: string): void {
  if (
    !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(
      repo,
    )
  ) {
    throw new InvalidArgumentError(`invalid repository name ${JSON.stringify(repo)}`);
  }
}

/**
 * An upload Location with `params` set in its query. The registry's own parameters (its upload
 * state, say) are kept byte for byte, and a fragment is dropped, as HTTP sends none. String work
 * rather than URLSearchParams, whose first use costs a few milliseconds in a fresh process, just
 * before the upload starts.
 */
export function withQuery(location: string, params: Record<string, string>): string {
  const hash = location.indexOf('#');
  const url = hash < 0 ? location : location.slice(0, hash);
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const names = new Set(Object.keys(params));
  const kept = (q < 0 ? '' : url.slice(q + 1)).split('&').filter((p) => {
    if (p === '') return false;
    const eq = p.indexOf('=');
    const name = eq < 0 ? p : p.slice(0, eq);
    try {
      return !names.has(decodeURIComponent(name.replace(/\+/g, ' ')));
    } catch {
      return true; // not percent-encoding: not one of ours
    }
  });
  const added = Object.entries(params).map(
    ([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`,
  );
  return `${path}?${[...kept, ...added].join('&')}`;
}

/** Whether a blob goes up in PATCH chunks rather than in one PUT. */
function isChunked(desc: Pick<Descriptor, 'size'>, opts: PushBlobOptions): boolean {
  return opts.chunkSize !== undefined && opts.chunkSize > 0 && desc.size > opts.chunkSize;
}

/** Open a blob now, for a send that may come later (or never: then discard what it opened). */
function opening(open: OpenBlob): Promise<StreamBody> {
  const p = Promise.resolve().then(() => open());
  p.catch(() => undefined); // awaited by the send, or discarded
  return p;
}

/** A body that reports the bytes that went through it to `onProgress`. */
function counted(body: StreamBody, onProgress?: ProgressFn): StreamBody {
  if (body instanceof Readable) {
    const counter = new CountingStream(onProgress);
    body.on('error', (e) => counter.destroy(e));
    return body.pipe(counter);
  }
  if (!onProgress) return body;
  let bytes = 0;
  return {
    pipeTo: (write) =>
      body.pipeTo((chunk) => {
        bytes += chunk.length;
        onProgress(bytes);
        return write(chunk);
      }),
    close: () => body.close(),
  };
}

class CountingStream extends Transform {
  bytes = 0;
  constructor(
    private readonly onProgress?: ProgressFn,
    start = 0,
  ) {
    super();
    this.bytes = start;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.onProgress?.(this.bytes);
    cb(null, chunk);
  }
}

/**
 * A client for one repository on one registry, per the OCI distribution spec. Every call is
 * lazy: nothing is fetched until asked for, and blob bodies stream.
 */
export class RegistryClient {
  readonly transport: Transport;
  readonly repository: string;
  private readonly scope: string;

  constructor(opts: RegistryClientOptions, transport?: Transport) {
    checkRepository(opts.repository);
    this.transport = transport ?? new Transport(opts);
    this.repository = opts.repository;
    this.scope = repositoryScope(opts.repository, opts.actions ?? ['pull']);
  }

  get registry(): string {
    return this.transport.registry;
  }

  /** A client for another repository on the same registry, sharing connections and tokens. */
  forRepository(repository: string, actions: Action[] = ['pull']): RegistryClient {
    return new RegistryClient({ registry: this.registry, repository, actions }, this.transport);
  }

  close(): void {
    this.transport.close();
  }

  /** Check that the registry answers and accepts our credentials (what `strata login` does). */
  async checkAuth(): Promise<void> {
    await this.transport.request({
      method: 'GET',
      url: '/v2/',
      scopes: [],
      expect: [200],
      what: 'GET /v2/',
    });
  }

  private blobUrl(digest: Digest): string {
    return `/v2/${this.repository}/blobs/${digest}`;
  }

  /** HEAD a blob: its size when the repository has it, undefined otherwise. */
  async hasBlob(digest: Digest): Promise<number | undefined> {
    const res = await this.transport.request({
      method: 'HEAD',
      url: this.blobUrl(digest),
      scopes: [this.scope],
      expect: [200, 404],
      what: `HEAD blob ${digest}`,
    });
    if (res.status === 404) return undefined;
    const len = Number(headerValue(res.headers['content-length']));
    return Number.isFinite(len) ? len : -1;
  }

  /**
   * Upload a blob unless the repository already has it: HEAD (with the upload session already
   * starting when `expectMissing`), then a cross-repo mount when a source repository is known,
   * then a monolithic PUT (or PATCH chunks). `open` is called once per attempt and must yield
   * exactly the blob's bytes. Retries a failed upload from scratch.
   */
  async pushBlob(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    open: OpenBlob,
    opts: PushBlobOptions = {},
  ): Promise<PushOutcome> {
    const mounting = (opts.mountFrom ?? []).some((from) => from !== this.repository);
    const session = !mounting && opts.expectMissing ? this.startUpload() : undefined;
    session?.catch(() => undefined); // awaited by the upload, or cancelled
    // Where an upload is likely, a one-PUT upload's blob opens while the HEAD is out too.
    const early = session && !isChunked(desc, opts) ? opening(open) : undefined;
    let have: number | undefined;
    try {
      have = await this.hasBlob(desc.digest);
    } catch (e) {
      early?.then(discardBody, () => undefined);
      if (session) await this.cancelUpload(session);
      throw e;
    }
    if (have !== undefined) {
      early?.then(discardBody, () => undefined);
      if (session) await this.cancelUpload(session);
      if (have >= 0 && have !== desc.size) {
        throw new RegistryError(
          'CORRUPT',
          `${this.registry}/${this.repository}: blob ${desc.digest} is ${have} bytes there, expected ${desc.size}`,
        );
      }
      return 'exists';
    }
    const retries = this.transport.retries;
    for (let n = 0; ; n++) {
      try {
        return n === 0
          ? await this.uploadOnce(desc, open, opts, session, early)
          : await this.uploadOnce(desc, open, opts);
      } catch (e) {
        if (n < retries && isRetriable(e)) {
          await sleep(backoffDelay(n, this.transport.retryBaseMs));
          continue;
        }
        throw e;
      }
    }
  }

  private async uploadOnce(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    open: OpenBlob,
    opts: PushBlobOptions,
    session?: Promise<string>,
    opened?: Promise<StreamBody>,
  ): Promise<PushOutcome> {
    const chunk = opts.chunkSize ?? 0;
    const chunked = isChunked(desc, opts);
    // A one-PUT upload opens the blob while the session starts (unless it is open already); a
    // stream not sent is closed.
    let early = opened ?? (chunked ? undefined : opening(open));
    try {
      let location: string | undefined;
      for (const from of opts.mountFrom ?? []) {
        if (from === this.repository) continue;
        const res = await this.transport.request({
          method: 'POST',
          url: `/v2/${this.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
          scopes: [this.scope, repositoryScope(from, ['pull'])],
          expect: [201, 202],
          what: `mount blob ${desc.digest} from ${from}`,
        });
        if (res.status === 201) {
          opts.onProgress?.(desc.size);
          return 'mounted';
        }
        location = headerValue(res.headers.location);
        if (location) {
          location = new URL(location, res.url).toString();
          break;
        }
      }
      if (!location) location = await (session ?? this.startUpload());
      if (chunked) {
        await this.uploadChunked(location, desc, open, chunk, opts.onProgress);
        return 'uploaded';
      }
      await this.transport.request({
        method: 'PUT',
        url: withQuery(location, { digest: desc.digest }),
        headers: { 'content-type': 'application/octet-stream', 'content-length': desc.size },
        body: async () => {
          const src = await (early ?? open());
          early = undefined;
          return counted(src, opts.onProgress);
        },
        scopes: [this.scope],
        expect: [201],
        what: `upload blob ${desc.digest}`,
        retry: false,
      });
      return 'uploaded';
    } finally {
      early?.then(discardBody, () => undefined);
    }
  }

  /** POST an upload session; resolves to its absolute Location. */
  async startUpload(): Promise<string> {
    const res = await this.transport.request({
      method: 'POST',
      url: `/v2/${this.repository}/blobs/uploads/`,
      scopes: [this.scope],
      expect: [202],
      what: 'start upload',
    });
    const loc = headerValue(res.headers.location);
    if (!loc)
      throw new RegistryError('UNAVAILABLE', `${this.registry}: upload started without a Location`);
    return new URL(loc, res.url).toString();
  }

  /** Cancel an upload session; best effort, since registries expire abandoned sessions too. */
  async cancelUpload(session: Promise<string>): Promise<void> {
    try {
      await this.transport.request({
        method: 'DELETE',
        url: await session,
        scopes: [this.scope],
        expect: [204, 404],
        what: 'cancel upload',
        retry: false,
      });
    } catch {
      // Left to expire.
    }
  }

  /** PATCH chunks, resuming from the registry's Range after a failed chunk, then PUT ?digest=. */
  private async uploadChunked(
    location: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    open: OpenBlob,
    chunkSize: number,
    onProgress?: ProgressFn,
  ): Promise<void> {
    let offset = 0;
    let failures = 0;
    const hasher = new Hasher();
    while (offset < desc.size) {
      const end = Math.min(offset + chunkSize, desc.size) - 1;
      try {
        const res = await this.transport.request({
          method: 'PATCH',
          url: location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${end}`,
            'content-length': end - offset + 1,
          },
          body: () => open(offset, end),
          scopes: [this.scope],
          expect: [202],
          what: `upload chunk ${offset}-${end} of ${desc.digest}`,
          retry: false,
        });
        location = new URL(headerValue(res.headers.location) ?? location, res.url).toString();
        offset = end + 1;
        onProgress?.(offset);
      } catch (e) {
        if (!isRetriable(e) || ++failures > 4) throw e;
        await sleep(backoffDelay(failures, this.transport.retryBaseMs));
        const st = await this.transport.request({
          method: 'GET',
          url: location,
          scopes: [this.scope],
          expect: [204],
          what: `upload status of ${desc.digest}`,
        });
        const m = /^(?:bytes=)?0-(\d+)$/.exec(headerValue(st.headers.range) ?? '');
        offset = m?.[1] !== undefined ? Number(m[1]) + 1 : 0;
        location = new URL(headerValue(st.headers.location) ?? location, st.url).toString();
      }
    }
    // Hash what we sent: the chunks came from separate reads, so check the whole before committing.
    const whole = await open();
    if (whole instanceof Readable) for await (const c of whole) hasher.update(c as Buffer);
    else {
      await whole.pipeTo((c) => {
        hasher.update(c);
        return Promise.resolve();
      });
    }
    if (hasher.size !== desc.size)
      throw new SizeMismatchError(desc.size, hasher.size, `blob ${desc.digest}`);
    const got = hasher.digest();
    if (got !== desc.digest) throw new DigestMismatchError(desc.digest, got, 'blob');
    await this.transport.request({
      method: 'PUT',
      url: withQuery(location, { digest: desc.digest }),
      scopes: [this.scope],
      expect: [201],
      what: `commit upload of ${desc.digest}`,
      retry: false,
    });
  }

  /**
   * Stream a blob from the registry, verified: the stream errors with a digest or size mismatch
   * at EOF instead of ending cleanly. For the build cache and other lazy readers.
   */
  async fetchBlob(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable> {
    const { stream: body } = await this.openDownload(desc, 0);
    const verify = new VerifyingStream(
      { digest: desc.digest, size: desc.size },
      `blob ${desc.digest} from ${this.registry}`,
    );
    body.on('error', (e) => verify.destroy(e));
    return body.pipe(verify);
  }

  /**
   * Download a blob into the store unless it is there already. The bytes go once, straight into
   * the store's partial file for this digest (see `Store.withPartial`), and become a blob only
   * when size and digest check out. A pull that is interrupted, even killed, resumes from there
   * with a Range request.
   */
  async pullBlob(
    store: Store,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: PullBlobOptions = {},
  ): Promise<PullOutcome> {
    if (await store.hasBlob(desc.digest)) return 'present';
    const expected = { digest: desc.digest, size: desc.size };
    return store.withPartial(expected, async (partial) => {
      // Someone else may have fetched it while we waited for the lock.
      if (await store.hasBlob(desc.digest)) return 'present';
      const retries = this.transport.retries;
      let restartedClean = false;
      for (let n = 0; ; n++) {
        const have = await partial.length();
        try {
          let got = have;
          if (have < desc.size) {
            const body = await this.openDownload(desc, have);
            got = body.start;
            opts.onProgress?.(got);
            got = await partial.append(this.counted(body.stream, got, opts.onProgress), got);
          }
          if (got !== desc.size) {
            // The connection ended early without an error: resume from what we have.
            const e = new Error(
              `transfer of ${desc.digest} ended at ${got} of ${desc.size} bytes`,
            ) as NodeJS.ErrnoException;
            e.code = 'ECONNRESET';
            throw e;
          }
          await partial.commit();
          return 'downloaded';
        } catch (e) {
          if (e instanceof DigestMismatchError || e instanceof SizeMismatchError) {
            await partial.reset();
            // A stale partial from an earlier run may be what was wrong: start clean once.
            if (have > 0 && !restartedClean) {
              restartedClean = true;
              continue;
            }
            throw new RegistryError(
              e.code,
              `${this.registry}/${this.repository}: ${e.message} (the registry sent wrong content; nothing was stored)`,
              undefined,
              [],
              { cause: e },
            );
          }
          if (n < retries && isRetriable(e)) {
            await sleep(backoffDelay(n, this.transport.retryBaseMs));
            continue;
          }
          throw e;
        }
      }
    });
  }

  /** Pass a response body through, reporting the running byte count; destroys it when done. */
  private async *counted(
    body: Readable,
    start: number,
    onProgress?: ProgressFn,
  ): AsyncGenerator<Buffer> {
    let got = start;
    try {
      for await (const chunk of body) {
        got += (chunk as Buffer).length;
        onProgress?.(got);
        yield chunk as Buffer;
      }
    } finally {
      body.destroy();
    }
  }

  /** GET a blob, from byte `have` on when there is a partial; checks the answered range and length. */
  private async openDownload(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    have: number,
  ): Promise<{ stream: Readable; start: number }> {
    const res = await this.transport.request({
      method: 'GET',
      url: this.blobUrl(desc.digest),
      headers: have > 0 ? { range: `bytes=${have}-` } : {},
      scopes: [this.scope],
      expect: [200, 206],
      what: `GET blob ${desc.digest}`,
      stream: true,
    });
    const body = res.stream as Readable;
    let start = 0;
    if (res.status === 206) {
      const m = /^bytes (\d+)-/.exec(headerValue(res.headers['content-range']) ?? '');
      if (!m || Number(m[1]) !== have) {
        body.destroy();
        throw new RegistryError(
          'CORRUPT',
          `${this.registry}: GET blob ${desc.digest}: the registry answered a Range request with the wrong range`,
        );
      }
      start = have;
    }
    const len = headerValue(res.headers['content-length']);
    if (len !== undefined && start + Number(len) !== desc.size) {
      body.destroy();
      throw new SizeMismatchError(
        desc.size,
        start + Number(len),
        `blob ${desc.digest} from ${this.registry}`,
      );
    }
    return { stream: body, start };
  }

  /** Fetch a manifest or index by tag or digest; verified against the digest when there is one. */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const res = await this.transport.request({
      method: 'GET',
      url: `/v2/${this.repository}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [this.scope],
      expect: [200],
      what: `GET manifest ${reference}`,
      maxBody: MAX_MANIFEST,
    });
    const digest = sha256(res.body);
    const expected = isDigest(reference)
      ? reference
      : headerValue(res.headers['docker-content-digest']);
    if (expected !== undefined && isDigest(expected) && expected !== digest) {
      throw new RegistryError(
        'DIGEST_MISMATCH',
        `${this.registry}/${this.repository}: manifest ${reference}: digest mismatch: expected ${expected}, got ${digest}`,
      );
    }
    let mediaType = (headerValue(res.headers['content-type']) ?? '').split(';')[0]?.trim() ?? '';
    let doc: { mediaType?: unknown; manifests?: unknown; config?: unknown };
    try {
      doc = JSON.parse(res.body.toString('utf8')) as typeof doc;
    } catch {
      throw new RegistryError(
        'INVALID_DOCUMENT',
        `${this.registry}/${this.repository}: manifest ${reference} is not JSON`,
      );
    }
    if (typeof doc.mediaType === 'string' && isManifestMediaType(doc.mediaType))
      mediaType = doc.mediaType;
    if (!isManifestMediaType(mediaType)) {
      mediaType = Array.isArray(doc.manifests) ? MediaTypes.imageIndex : MediaTypes.imageManifest;
    }
    return { descriptor: { mediaType, digest, size: res.body.length }, bytes: res.body };
  }

  /** HEAD a manifest: its descriptor, or undefined when the tag or digest is unknown. */
  async headManifest(reference: string): Promise<Descriptor | undefined> {
    const res = await this.transport.request({
      method: 'HEAD',
      url: `/v2/${this.repository}/manifests/${reference}`,
      headers: { accept: MANIFEST_ACCEPT },
      scopes: [this.scope],
      expect: [200, 404],
      what: `HEAD manifest ${reference}`,
    });
    if (res.status === 404) return undefined;
    const digest = headerValue(res.headers['docker-content-digest']);
    const size = Number(headerValue(res.headers['content-length']));
    const mediaType = (headerValue(res.headers['content-type']) ?? '').split(';')[0] ?? '';
    if (!digest || !isDigest(digest)) return undefined;
    return { mediaType: mediaType as MediaType, digest, size };
  }

  /** PUT a manifest or index under a tag or its digest. The registry's digest must match ours. */
  async putManifest(reference: string, bytes: Buffer, mediaType: MediaType): Promise<Descriptor> {
    const digest = sha256(bytes);
    if (isDigest(reference) && reference !== digest) {
      throw new DigestMismatchError(reference, digest, 'manifest');
    }
    const res = await this.transport.request({
      method: 'PUT',
      url: `/v2/${this.repository}/manifests/${reference}`,
      headers: { 'content-type': mediaType, 'content-length': bytes.length },
      body: bytes,
      scopes: [this.scope],
      expect: [201],
      what: `PUT manifest ${reference}`,
    });
    const theirs = headerValue(res.headers['docker-content-digest']);
    if (theirs && isDigest(theirs) && theirs !== digest) {
      throw new RegistryError(
        'DIGEST_MISMATCH',
        `${this.registry}: PUT manifest ${reference}: the registry computed ${theirs}, we sent ${digest}`,
      );
    }
    return { mediaType, digest, size: bytes.length };
  }

  /**
   * {@link getManifest} for a reference a person wrote (a FROM line, a pull): a 404 becomes a
   * {@link ManifestNotFoundError} that says whether the repository or the tag is missing and
   * lists the tags there are, where the registry allows listing them.
   */
  async getNamedManifest(reference: string): Promise<FetchedManifest> {
    try {
      return await this.getManifest(reference);
    } catch (e) {
      if (!(e instanceof RegistryError) || e.status !== 404) throw e;
      let tags: string[] | undefined;
      let repositoryFound = true;
      try {
        tags = await this.tagList(1000, true);
      } catch (t) {
        // docker-registry (CNCF distribution) answers NAME_UNKNOWN for a repository it lacks.
        if (t instanceof RegistryError && t.status === 404) repositoryFound = false;
        // Otherwise (listing denied, not offered) the message goes without the list.
      }
      throw new ManifestNotFoundError(
        this.registry,
        this.repository,
        reference,
        repositoryFound,
        tags,
        { cause: e },
      );
    }
  }

  /**
   * All tags of the repository, following `Link` pagination. An unknown repository lists no
   * tags, or throws the registry's 404 when `strict`.
   */
  async tagList(pageSize = 1000, strict = false): Promise<string[]> {
    const tags: string[] = [];
    let url: string | undefined = `/v2/${this.repository}/tags/list?n=${pageSize}`;
    for (let pages = 0; url && pages < 1000; pages++) {
      const res = await this.transport.request({
        method: 'GET',
        url,
        scopes: [this.scope],
        expect: strict ? [200] : [200, 404],
        what: 'GET tags/list',
      });
      if (res.status === 404) return tags;
      const doc = JSON.parse(res.body.toString('utf8')) as { tags?: unknown };
      if (Array.isArray(doc.tags))
        for (const t of doc.tags) if (typeof t === 'string') tags.push(t);
      const link = headerValue(res.headers.link);
      const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
      url = m?.[1] ? new URL(m[1], res.url).toString() : undefined;
    }
    return tags;
  }
}
