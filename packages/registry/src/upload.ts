import { Readable, Transform, TransformCallback } from 'node:stream';
import { Descriptor, DigestMismatchError, Hasher, SizeMismatchError } from '@strata/oci';
import { repositoryScope } from './challenge';
import { RegistryError } from './errors';
import { StreamBody, discardBody, headerValue } from './http';
import { ProgressFn, Repo, hasBlob } from './repository';
import { backoffDelay, isRetriable, retryThrown, sleep } from './retry';

/**
 * Opens a blob for upload: the whole blob, or the bytes `start`..`end` (inclusive) of it for a
 * chunked upload. Called once per attempt.
 */
export type OpenBlob = (start?: number, end?: number) => StreamBody | Promise<StreamBody>;

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

/**
 * An upload Location with `params` set in its query. The registry's own parameters (its upload
 * state, say) are kept byte for byte, and a fragment is dropped, as HTTP sends none. String work
 * rather than URLSearchParams, which would re-encode the registry's parameters as it parses them.
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
 * Upload a blob unless the repository already has it: HEAD (with the upload session already
 * starting when `expectMissing`), then a cross-repo mount when a source repository is known,
 * then a monolithic PUT (or PATCH chunks). `open` is called once per attempt and must yield
 * exactly the blob's bytes. Retries a failed upload from scratch.
 */
export async function pushBlob(
  r: Repo,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  open: OpenBlob,
  opts: PushBlobOptions = {},
): Promise<PushOutcome> {
  const mounting = (opts.mountFrom ?? []).some((from) => from !== r.repository);
  const session = !mounting && opts.expectMissing ? startUpload(r) : undefined;
  session?.catch(() => undefined); // awaited by the upload, or cancelled
  // Where an upload is likely, a one-PUT upload's blob opens while the HEAD is out too.
  const early = session && !isChunked(desc, opts) ? opening(open) : undefined;
  let have: number | undefined;
  try {
    have = await hasBlob(r, desc.digest);
  } catch (e) {
    early?.then(discardBody, () => undefined);
    if (session) await cancelUpload(r, session);
    throw e;
  }
  if (have !== undefined) {
    early?.then(discardBody, () => undefined);
    if (session) await cancelUpload(r, session);
    if (have >= 0 && have !== desc.size) {
      throw new RegistryError(
        'CORRUPT',
        `${r.registry}/${r.repository}: blob ${desc.digest} is ${have} bytes there, expected ${desc.size}`,
      );
    }
    return 'exists';
  }
  return retryThrown({ retries: r.transport.retries, baseMs: r.transport.retryBaseMs }, (n) =>
    n === 0 ? uploadOnce(r, desc, open, opts, session, early) : uploadOnce(r, desc, open, opts),
  );
}

async function uploadOnce(
  r: Repo,
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
      if (from === r.repository) continue;
      const res = await r.transport.request({
        method: 'POST',
        url: `/v2/${r.repository}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
        scopes: [r.scope, repositoryScope(from, ['pull'])],
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
    if (!location) location = await (session ?? startUpload(r));
    if (chunked) {
      await uploadChunked(r, location, desc, open, chunk, opts.onProgress);
      return 'uploaded';
    }
    await r.transport.request({
      method: 'PUT',
      url: withQuery(location, { digest: desc.digest }),
      headers: { 'content-type': 'application/octet-stream', 'content-length': desc.size },
      body: async () => {
        const src = await (early ?? open());
        early = undefined;
        return counted(src, opts.onProgress);
      },
      scopes: [r.scope],
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
export async function startUpload(r: Repo): Promise<string> {
  const res = await r.transport.request({
    method: 'POST',
    url: `/v2/${r.repository}/blobs/uploads/`,
    scopes: [r.scope],
    expect: [202],
    what: 'start upload',
  });
  const loc = headerValue(res.headers.location);
  if (!loc)
    throw new RegistryError('UNAVAILABLE', `${r.registry}: upload started without a Location`);
  return new URL(loc, res.url).toString();
}

/** Cancel an upload session; best effort, since registries expire abandoned sessions too. */
export async function cancelUpload(r: Repo, session: Promise<string>): Promise<void> {
  try {
    await r.transport.request({
      method: 'DELETE',
      url: await session,
      scopes: [r.scope],
      expect: [204, 404],
      what: 'cancel upload',
      retry: false,
    });
  } catch {
    // Left to expire.
  }
}

/** PATCH chunks, resuming from the registry's Range after a failed chunk, then PUT ?digest=. */
async function uploadChunked(
  r: Repo,
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
      const res = await r.transport.request({
        method: 'PATCH',
        url: location,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${offset}-${end}`,
          'content-length': end - offset + 1,
        },
        body: () => open(offset, end),
        scopes: [r.scope],
        expect: [202],
        what: `upload chunk ${offset}-${end} of ${desc.digest}`,
        retry: false,
      });
      location = new URL(headerValue(res.headers.location) ?? location, res.url).toString();
      offset = end + 1;
      onProgress?.(offset);
    } catch (e) {
      if (!isRetriable(e) || ++failures > 4) throw e;
      await sleep(backoffDelay(failures, r.transport.retryBaseMs));
      const st = await r.transport.request({
        method: 'GET',
        url: location,
        scopes: [r.scope],
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
  await r.transport.request({
    method: 'PUT',
    url: withQuery(location, { digest: desc.digest }),
    scopes: [r.scope],
    expect: [201],
    what: `commit upload of ${desc.digest}`,
    retry: false,
  });
}
