import { promises as fsp } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { Descriptor, Digest, MediaTypes, digestHex, parseReference, sha256 } from '@strata/oci';
import { Store, storeSink } from '@strata/store';
import { RegistryClient } from './client';
import { withQuery } from './upload';
import { RegistryAuthError, RegistryError } from './errors';
import { registryContent } from './content';
import { pull, push } from './copy';

/** A pull of one blob: the registry's content copied into the store's sink. */
async function pullInto(
  store: Store,
  c: RegistryClient,
  d: Pick<Descriptor, 'digest' | 'size'>,
): Promise<string> {
  return (
    await storeSink(store).putBlob({ mediaType: MediaTypes.layerZstd, ...d }, registryContent(c))
  ).outcome;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void;

/** A tiny fake registry on 127.0.0.1 whose behaviour each test scripts. */
async function fakeRegistry(
  handler: Handler,
): Promise<{ host: string; close: () => Promise<void>; seen: string[] }> {
  let n = 0;
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`.trim());
    if (req.url === '/v2/') {
      res.writeHead(200).end('{}');
      return;
    }
    handler(req, res, n++);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Call `fn` with a request's whole body and its URL once the body has arrived. */
function whenRead(req: http.IncomingMessage, fn: (body: Buffer, url: URL) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => fn(Buffer.concat(chunks), new URL(req.url ?? '', 'http://h')));
}

/**
 * A fake registry that lacks every blob and takes one-PUT uploads (session u1), answering 201
 * only when the body matches the digest. A mount from a repository in `mountable` succeeds.
 */
async function uploadTarget(mountable: readonly string[] = []) {
  let received: Buffer = Buffer.alloc(0);
  const srv = await fakeRegistry((req, res) => {
    whenRead(req, (body, url) => {
      if (req.method === 'HEAD') res.writeHead(404).end();
      else if (req.method === 'POST' && mountable.includes(url.searchParams.get('from') ?? ''))
        res.writeHead(201).end();
      else if (req.method === 'POST')
        res.writeHead(202, { location: '/v2/x/blobs/uploads/u1' }).end();
      else if (req.method === 'PUT') {
        received = body;
        res.writeHead(sha256(body) === url.searchParams.get('digest') ? 201 : 400).end();
      } else res.writeHead(500).end();
    });
  });
  return { ...srv, received: (): Buffer => received };
}

const blob = Buffer.alloc(256 * 1024);
for (let i = 0; i < blob.length; i++) blob[i] = (i * 7) & 0xff;
const desc = { digest: sha256(blob), size: blob.length };

/** An `open` for pushBlob that hands out `blob` and keeps every stream it opened. */
function recordedOpens(): { open: () => Readable; opened: Readable[] } {
  const opened: Readable[] = [];
  const open = (): Readable => {
    const r = Readable.from([blob]);
    opened.push(r);
    return r;
  };
  return { open, opened };
}

/**
 * Start an answer to a blob GET: 206 from the byte a `Range: bytes=N-` asks for, else 200 from
 * the start. Returns where the body must start.
 */
function answerFrom(req: http.IncomingMessage, res: http.ServerResponse): number {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  res.writeHead(m ? 206 : 200, {
    'content-length': blob.length - start,
    ...(m ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}),
  });
  return start;
}

describe('RegistryClient against a scripted server', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-reg-'));
    store = await Store.open(dir);
  });
  afterEach(() => fsp.rm(dir, { recursive: true, force: true }));

  // What a test opened, closed after it whether it passed or not.
  const opened: Array<() => unknown> = [];
  afterEach(async () => {
    for (const close of opened.splice(0).reverse()) await close();
  });
  const client = (srv: { host: string; close(): Promise<unknown> }): RegistryClient => {
    const c = new RegistryClient({
      registry: srv.host,
      repository: 'x',
      retries: 3,
      retryBaseMs: 5,
    });
    opened.push(
      () => srv.close(),
      () => c.close(),
    );
    return c;
  };

  it('retries 5xx, 429 and connection resets, then succeeds', async () => {
    const srv = await fakeRegistry((req, res, n) => {
      if (n === 0) res.writeHead(503).end();
      else if (n === 1) res.writeHead(429, { 'retry-after': '0' }).end();
      else if (n === 2) req.socket.destroy();
      else res.writeHead(200, { 'content-length': blob.length }).end(blob);
    });
    const c = client(srv);
    expect(await pullInto(store, c, desc)).toBe('downloaded');
    expect(await store.readBlob(desc.digest)).toEqual(blob);
  });

  it('refuses a lying registry and stores nothing', async () => {
    const bad = Buffer.from(blob);
    bad[1000] = (bad[1000] as number) ^ 1;
    const srv = await fakeRegistry((_req, res) =>
      res.writeHead(200, { 'content-length': bad.length }).end(bad),
    );
    const c = client(srv);
    await expect(pullInto(store, c, desc)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(await store.hasBlob(desc.digest)).toBe(false);
    expect(await fsp.readdir(path.join(dir, '.strata', 'ingest'))).toEqual([]);
  });

  it('refuses a blob longer than its descriptor', async () => {
    const long = Buffer.concat([blob, Buffer.from('extra')]);
    const srv = await fakeRegistry((_req, res) => {
      res.writeHead(200);
      res.end(long);
    });
    const c = client(srv);
    await expect(pullInto(store, c, desc)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    expect(await store.hasBlob(desc.digest)).toBe(false);
  });

  it('resumes a truncated transfer with a Range request', async () => {
    const srv = await fakeRegistry((req, res, n) => {
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (n === 0) {
        // Send half, then drop the connection.
        res.writeHead(200, { 'content-length': blob.length });
        res.write(blob.subarray(0, 100000), () => setTimeout(() => req.socket.destroy(), 20));
      } else if (m) {
        const start = Number(m[1]);
        res.writeHead(206, {
          'content-length': blob.length - start,
          'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}`,
        });
        res.end(blob.subarray(start));
      } else res.writeHead(200, { 'content-length': blob.length }).end(blob);
    });
    const c = client(srv);
    expect(await pullInto(store, c, desc)).toBe('downloaded');
    expect(srv.seen.some((s) => /bytes=100000-$/.test(s))).toBe(true);
    expect(await store.readBlob(desc.digest)).toEqual(blob);
  });

  it('resumes against a registry that ignores Range, skipping the bytes it has', async () => {
    const srv = await fakeRegistry((req, res, n) => {
      res.writeHead(200, { 'content-length': blob.length });
      if (n === 0) {
        res.write(blob.subarray(0, 100000), () => setTimeout(() => req.socket.destroy(), 20));
      } else res.end(blob);
    });
    const c = client(srv);
    const got: Buffer[] = [];
    for await (const chunk of await c.fetchBlob(desc)) got.push(chunk as Buffer);
    expect(Buffer.concat(got)).toEqual(blob);
    expect(srv.seen.filter((s) => s.startsWith('GET /v2/x/blobs'))).toHaveLength(2);
  });

  it('says which blob, how far it got and how often it tried when the connection keeps dropping', async () => {
    // Every answer sends 50000 bytes from where it was asked to start, then drops the socket.
    // `connection: close`, so that no attempt goes out on a socket about to be dropped, which
    // would fail with nothing received and make the count depend on timing.
    const srv = await fakeRegistry((req, res) => {
      res.setHeader('connection', 'close');
      const start = answerFrom(req, res);
      res.write(blob.subarray(start, start + 50000), () =>
        setTimeout(() => req.socket.destroy(), 20),
      );
    });
    const c = client(srv);
    const err = await pullInto(store, c, desc).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toBe(
      `${srv.host}: GET blob ${desc.digest}: the connection dropped with 200000 of ${blob.length} bytes received, after 3 retries resuming from the byte reached`,
    );
    expect(srv.seen.filter((s) => s.startsWith('GET /v2/x/blobs'))).toHaveLength(4);
    expect(await store.hasBlob(desc.digest)).toBe(false);
  });

  it('starts clean when a stale partial does not verify', async () => {
    const partial = path.join(dir, '.strata', 'ingest', `pull-${digestHex(desc.digest)}.partial`);
    await fsp.writeFile(partial, Buffer.alloc(5000, 0xee)); // garbage left by a crash
    const srv = await fakeRegistry((req, res) => {
      const start = answerFrom(req, res);
      res.end(blob.subarray(start));
    });
    const c = client(srv);
    expect(await pullInto(store, c, desc)).toBe('downloaded');
    expect(srv.seen.filter((s) => s.startsWith('GET /v2/x/blobs'))).toHaveLength(2);
  });

  it('verifies a manifest fetched by digest', async () => {
    const doc = Buffer.from('{"schemaVersion":2}');
    const srv = await fakeRegistry((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(doc),
    );
    const c = client(srv);
    const other = sha256('something else') as Digest;
    await expect(c.getManifest(other)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect((await c.getManifest(sha256(doc))).descriptor.size).toBe(doc.length);
  });

  it('follows tag list pagination', async () => {
    const srv = await fakeRegistry((req, res) => {
      if (req.url?.includes('last=b')) res.writeHead(200).end('{"tags":["c"]}');
      else
        res
          .writeHead(200, { link: '</v2/x/tags/list?n=2&last=b>; rel="next"' })
          .end('{"tags":["a","b"]}');
    });
    const c = client(srv);
    expect(await c.tagList(2)).toEqual(['a', 'b', 'c']);
  });

  it('uploads again when the connection drops during a one-PUT upload', async () => {
    let puts = 0;
    const srv = await fakeRegistry((req, res) => {
      // The first PUT loses its connection half way through its body.
      if (req.method === 'PUT' && puts++ === 0) {
        let got = 0;
        req.on('data', (c: Buffer) => {
          got += c.length;
          if (got > blob.length / 2) req.socket.destroy();
        });
        return;
      }
      whenRead(req, (body, url) => {
        if (req.method === 'HEAD') res.writeHead(404).end();
        else if (req.method === 'POST')
          res.writeHead(202, { location: '/v2/x/blobs/uploads/u1' }).end();
        else if (req.method === 'PUT')
          res.writeHead(sha256(body) === url.searchParams.get('digest') ? 201 : 400).end();
        else res.writeHead(500).end();
      });
    });
    const c = client(srv);
    expect(await c.pushBlob(desc, () => Readable.from([blob]))).toBe('uploaded');
    expect(puts).toBe(2);
  });

  it("resumes a chunked upload from the registry's Range when a chunk's connection drops", async () => {
    let received = Buffer.alloc(0);
    let patches = 0;
    const srv = await fakeRegistry((req, res) => {
      if (req.method === 'PATCH' && patches++ === 1) {
        req.once('data', () => req.socket.destroy());
        return;
      }
      whenRead(req, (body, url) => {
        if (req.method === 'HEAD') res.writeHead(404).end();
        else if (req.method === 'POST')
          res.writeHead(202, { location: '/v2/x/blobs/uploads/u1?_state=s' }).end();
        else if (req.method === 'GET')
          res.writeHead(204, { range: `0-${received.length - 1}` }).end();
        else if (req.method === 'PATCH') {
          received = Buffer.concat([received, body]);
          res.writeHead(202, { location: '/v2/x/blobs/uploads/u1?_state=s' }).end();
        } else if (req.method === 'PUT')
          res.writeHead(sha256(received) === url.searchParams.get('digest') ? 201 : 400).end();
        else res.writeHead(500).end();
      });
    });
    const c = client(srv);
    const outcome = await c.pushBlob(
      desc,
      (start, end) =>
        Readable.from([blob.subarray(start ?? 0, end === undefined ? undefined : end + 1)]),
      { chunkSize: 100000 },
    );
    expect(outcome).toBe('uploaded');
    expect(received).toEqual(blob);
    expect(srv.seen.filter((s) => s.startsWith('GET /v2/x/blobs/uploads'))).toHaveLength(1);
  });

  it('uploads in chunks and commits with the digest', async () => {
    let received = Buffer.alloc(0);
    const srv = await fakeRegistry((req, res) => {
      whenRead(req, (body, url) => {
        if (req.method === 'HEAD') res.writeHead(404).end();
        else if (req.method === 'POST')
          res.writeHead(202, { location: '/v2/x/blobs/uploads/u1?_state=s' }).end();
        else if (req.method === 'PATCH') {
          received = Buffer.concat([received, body]);
          res
            .writeHead(202, {
              location: '/v2/x/blobs/uploads/u1?_state=s',
              range: `0-${received.length - 1}`,
            })
            .end();
        } else if (req.method === 'PUT')
          res.writeHead(sha256(received) === url.searchParams.get('digest') ? 201 : 400).end();
        else res.writeHead(500).end();
      });
    });
    const c = client(srv);
    const outcome = await c.pushBlob(
      desc,
      (start, end) =>
        Readable.from([blob.subarray(start ?? 0, end === undefined ? undefined : end + 1)]),
      { chunkSize: 100000 },
    );
    expect(outcome).toBe('uploaded');
    expect(received).toEqual(blob);
    expect(srv.seen.filter((s) => s.startsWith('PATCH'))).toHaveLength(3);
  });

  it('opens the blob while a one-PUT upload starts, and closes it when a mount makes it needless', async () => {
    const srv = await uploadTarget(['has-it']);
    const c = client(srv);
    const { open, opened } = recordedOpens();
    expect(await c.pushBlob(desc, open, { mountFrom: ['has-it'] })).toBe('mounted');
    expect(opened).toHaveLength(1);
    await new Promise((r) => setImmediate(r));
    expect(opened[0]?.destroyed).toBe(true);

    expect(await c.pushBlob(desc, open, { mountFrom: ['lacks-it'] })).toBe('uploaded');
    expect(opened).toHaveLength(2);
    expect(srv.received()).toEqual(blob);
    expect(srv.seen.filter((x) => x.startsWith('POST'))).toEqual([
      `POST /v2/x/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=has-it`,
      `POST /v2/x/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=lacks-it`,
    ]);
  });

  it('starts the session while the HEAD is out when the blob is expected missing, and cancels it when it is there', async () => {
    let stored: Buffer | undefined;
    // A HEAD is answered once the session's POST has come in (or after 300 ms without one).
    let posted: () => void = () => undefined;
    let posts = 0;
    let heads = 0;
    let headsWithoutPost = 0;
    const srv = await fakeRegistry((req, res) => {
      whenRead(req, (body, url) => {
        if (req.method === 'HEAD') {
          const answer = (): void => {
            res.writeHead(stored ? 200 : 404, { 'content-length': stored?.length ?? 0 }).end();
          };
          if (posts > heads++) {
            answer();
            return;
          }
          const timer = setTimeout(() => {
            headsWithoutPost++;
            posts++; // a later POST belongs to no HEAD
            answer();
          }, 300);
          posted = () => {
            clearTimeout(timer);
            answer();
          };
        } else if (req.method === 'POST') {
          res.writeHead(202, { location: `/v2/x/blobs/uploads/s${srv.seen.length}` }).end();
          posts++;
          posted();
          posted = () => undefined;
        } else if (req.method === 'PUT') {
          stored = body;
          res.writeHead(sha256(stored) === url.searchParams.get('digest') ? 201 : 400).end();
        } else if (req.method === 'DELETE') res.writeHead(204).end();
        else res.writeHead(500).end();
      });
    });
    const c = client(srv);
    const open = (): Readable => Readable.from([blob]);
    expect(await c.pushBlob(desc, open, { expectMissing: true })).toBe('uploaded');
    expect(stored).toEqual(blob);
    const first = srv.seen.filter((x) => !x.startsWith('GET'));
    expect(first.map((x) => x.split(' ')[0]).sort()).toEqual(['HEAD', 'POST', 'PUT']);
    expect(headsWithoutPost).toBe(0);

    srv.seen.length = 0;
    expect(await c.pushBlob(desc, open, { expectMissing: true })).toBe('exists');
    const post = srv.seen.find((x) => x.startsWith('POST'));
    expect(post).toBeDefined();
    expect(srv.seen.filter((x) => x.startsWith('DELETE'))).toHaveLength(1);
    expect(srv.seen.filter((x) => x.startsWith('PUT'))).toHaveLength(0);

    expect(headsWithoutPost).toBe(0);

    // Without the hint, a blob that is there costs one HEAD (answered after the wait).
    srv.seen.length = 0;
    expect(await c.pushBlob(desc, open)).toBe('exists');
    expect(srv.seen).toEqual([`HEAD /v2/x/blobs/${desc.digest}`]);
    expect(headsWithoutPost).toBe(1);
  });

  it('uploads a stored blob through a BlobReader, with progress, in one PUT', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 5);
    for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff;
    const stored = await store.putBytes(big);
    const srv = await uploadTarget();
    const c = client(srv);
    const progress: number[] = [];
    expect(
      await c.pushBlob(stored, () => store.openBlobReader(stored.digest, stored.size), {
        onProgress: (b) => progress.push(b),
      }),
    ).toBe('uploaded');
    expect(srv.received().equals(big)).toBe(true);
    expect(progress[progress.length - 1]).toBe(big.length);
    expect(progress.length).toBeGreaterThan(4);
    expect(srv.seen.filter((x) => x.startsWith('PUT'))).toHaveLength(1);
  });

  it('a registry that answers a PUT before reading its body ends the send, and the file is closed', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    const stored = await store.putBytes(big);
    const srv = await fakeRegistry((req, res) => {
      if (req.method === 'PUT') {
        // Answer at once and never read what the client sends.
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"no"}]}');
        return;
      }
      whenRead(req, () => {
        if (req.method === 'HEAD') res.writeHead(404).end();
        else if (req.method === 'POST')
          res.writeHead(202, { location: '/v2/x/blobs/uploads/u1' }).end();
        else res.writeHead(500).end();
      });
    });
    const c = client(srv);
    let sending: Promise<void> | undefined;
    await expect(
      c.pushBlob(stored, async () => {
        const reader = await store.openBlobReader(stored.digest, stored.size);
        return {
          pipeTo: (write: (chunk: Buffer) => Promise<void>) => (sending = reader.pipeTo(write)),
          close: () => reader.close(),
        };
      }),
    ).rejects.toThrow(/BLOB_UPLOAD_INVALID|no/);
    expect(sending).toBeDefined();
    // The body's send settles (it does not hang on writes the socket will never take).
    await expect(sending).rejects.toThrow();
  });

  /** An image of one (gzip-typed) layer of `bytes`, tagged `img` in the store, as a push reads it. */
  async function taggedImage(bytes: Buffer, diffIdSeed: string) {
    const layer = await store.putBytes(bytes);
    const config = await store.putJson(
      {
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [sha256(diffIdSeed)] },
      },
      MediaTypes.imageConfig,
    );
    const manifest = await store.putJson(
      {
        schemaVersion: 2,
        mediaType: MediaTypes.imageManifest,
        config,
        layers: [{ mediaType: MediaTypes.layerGzip, ...layer }],
      },
      MediaTypes.imageManifest,
    );
    await store.tag('img', manifest);
    return { layer, config, manifest };
  }

  it('a push pings first, and each blob it uploads opens its own session', async () => {
    const { layer, config } = await taggedImage(Buffer.alloc(2 * 1024 * 1024, 3), 'x');
    const have = new Set<string>();
    let sessions = 0;
    const srv = await fakeRegistry((req, res) => {
      whenRead(req, (body, url) => {
        const blobDigest = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname)?.[1];
        if (req.method === 'HEAD')
          res.writeHead(blobDigest && have.has(blobDigest) ? 200 : 404).end();
        else if (req.method === 'POST')
          res.writeHead(202, { location: `/v2/x/blobs/uploads/s${++sessions}` }).end();
        else if (req.method === 'PUT' && url.pathname.includes('/uploads/')) {
          const d = url.searchParams.get('digest') ?? '';
          have.add(d);
          res.writeHead(sha256(body) === d ? 201 : 400).end();
        } else if (req.method === 'PUT') res.writeHead(201).end();
        else if (req.method === 'DELETE') res.writeHead(204).end();
        else res.writeHead(500).end();
      });
    });
    try {
      const r = await push(store, 'img', parseReference(`${srv.host}/x:t`));
      expect(r.uploaded).toBe(2);
      expect(srv.seen[0]).toBe('GET /v2/');
      // One session for the layer, one for the config; none opened ahead and none cancelled.
      expect(srv.seen.filter((x) => x.startsWith('POST'))).toHaveLength(2);
      expect(srv.seen.filter((x) => x.startsWith('DELETE'))).toEqual([]);
      const puts = srv.seen.filter((x) => x.startsWith('PUT /v2/x/blobs/uploads/'));
      expect(puts.map((x) => x.replace(/\/s[12]\?/, '/s?')).sort()).toEqual(
        [layer.digest, config.digest]
          .map((d) => `PUT /v2/x/blobs/uploads/s?digest=${encodeURIComponent(d)}`)
          .sort(),
      );

      // An identical re-push pings, and sends only HEADs before its manifest.
      srv.seen.length = 0;
      const again = await push(store, 'img', parseReference(`${srv.host}/x:t`));
      expect(again.skipped).toBe(2);
      expect(srv.seen[0]).toBe('GET /v2/');
      expect(srv.seen.filter((x) => x.startsWith('POST') || x.startsWith('DELETE'))).toEqual([]);
    } finally {
      await srv.close();
    }
  });

  it('a push that fails says which blobs and which manifest were not pushed, and keeps its error class', async () => {
    const { layer, config, manifest } = await taggedImage(Buffer.alloc(64 * 1024, 9), 'y');
    // The config is there already; the layer's upload is refused.
    const srv = await fakeRegistry((req, res) => {
      whenRead(req, (_body, url) => {
        if (req.method === 'HEAD')
          res.writeHead(url.pathname.endsWith(config.digest) ? 200 : 404).end();
        else res.writeHead(400).end('{"errors":[{"code":"DENIED","message":"no"}]}');
      });
    });
    opened.push(() => srv.close());
    const e = await push(store, 'img', parseReference(`${srv.host}/x:t`), { retries: 0 }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(RegistryError);
    expect(e).toMatchObject({ status: 400, code: 'INVALID_ARGUMENT' });
    expect((e as Error).message).toMatch(
      new RegExp(
        `; not pushed: 1 of 2 blobs \\(${layer.digest.slice(0, 19)}\\) and the manifest ${manifest.digest.slice(0, 19)}, so ${srv.host}/x:t was not tagged$`,
      ),
    );
    // The local store was only read.
    expect((await store.resolve('img')).digest).toBe(manifest.digest);
  });

  it('a pull pings first, then fetches its manifest and the blobs', async () => {
    const layerBytes = Buffer.alloc(64 * 1024, 5);
    const configBytes = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [sha256('x')] },
      }),
    );
    const manifestBytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.imageManifest,
        config: {
          mediaType: MediaTypes.imageConfig,
          digest: sha256(configBytes),
          size: configBytes.length,
        },
        layers: [
          { mediaType: MediaTypes.layerGzip, digest: sha256(layerBytes), size: layerBytes.length },
        ],
      }),
    );
    const blobs = new Map([
      [sha256(layerBytes), layerBytes],
      [sha256(configBytes), configBytes],
    ]);
    const srv = await fakeRegistry((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/x/manifests/t')
        res.writeHead(200, { 'content-type': MediaTypes.imageManifest }).end(manifestBytes);
      else {
        const b = blobs.get(url.replace('/v2/x/blobs/', '') as Digest);
        if (b) res.writeHead(200, { 'content-length': b.length }).end(b);
        else res.writeHead(404).end();
      }
    });
    try {
      const r = await pull(store, parseReference(`${srv.host}/x:t`));
      expect(r.downloaded).toBe(2);
      expect(srv.seen.slice(0, 2)).toEqual(['GET /v2/', 'GET /v2/x/manifests/t']);
      expect(await store.readBlob(sha256(layerBytes))).toEqual(layerBytes);
    } finally {
      await srv.close();
    }
  });

  it('a pull of a single image of another platform than --platform fails before any layer', async () => {
    const layerBytes = Buffer.alloc(1024, 6);
    const configBytes = Buffer.from(
      JSON.stringify({
        architecture: 'arm64',
        os: 'linux',
        variant: 'v8',
        rootfs: { type: 'layers', diff_ids: [sha256('y')] },
      }),
    );
    const manifestBytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.imageManifest,
        config: {
          mediaType: MediaTypes.imageConfig,
          digest: sha256(configBytes),
          size: configBytes.length,
        },
        layers: [
          { mediaType: MediaTypes.layerGzip, digest: sha256(layerBytes), size: layerBytes.length },
        ],
      }),
    );
    const blobs = new Map([
      [sha256(layerBytes), layerBytes],
      [sha256(configBytes), configBytes],
    ]);
    const srv = await fakeRegistry((req, res) => {
      const url = req.url ?? '';
      if (url === '/v2/x/manifests/arm' || url === `/v2/x/manifests/${sha256(manifestBytes)}`)
        res.writeHead(200, { 'content-type': MediaTypes.imageManifest }).end(manifestBytes);
      else {
        const b = blobs.get(url.replace('/v2/x/blobs/', '') as Digest);
        if (b) res.writeHead(200, { 'content-length': b.length }).end(b);
        else res.writeHead(404).end();
      }
    });
    try {
      const amd64 = { os: 'linux', architecture: 'amd64' };
      for (const ref of [`${srv.host}/x:arm`, `${srv.host}/x@${sha256(manifestBytes)}`]) {
        await expect(
          pull(store, parseReference(ref), { tag: 'wrong:1', platform: amd64 }),
        ).rejects.toThrow(`${ref} is an image for linux/arm64/v8, not for linux/amd64`);
      }
      expect(srv.seen.some((l) => l.includes(sha256(layerBytes)))).toBe(false);
      await expect(store.resolve('wrong:1')).rejects.toThrow();
      const r = await pull(store, parseReference(`${srv.host}/x:arm`), {
        tag: 'right:1',
        platform: { os: 'linux', architecture: 'arm64' },
      });
      expect(r.tag).toBe('right:1');
    } finally {
      await srv.close();
    }
  });

  it('retries a registry that answers 503 for ever 1 + retries times, not retries squared', async () => {
    const srv = await fakeRegistry((_req, res) => res.writeHead(503).end());
    const c = client(srv);
    const e = await pullInto(store, c, desc).catch((x: unknown) => x);
    expect(e).toMatchObject({ status: 503 });
    expect(srv.seen.filter((l) => l.startsWith('GET /v2/x/blobs/'))).toHaveLength(1 + 3);
  });

  it('asks a token service that answers 500 1 + retries times, then says so', async () => {
    const srv = await fakeRegistry((req, res) => {
      if (req.url?.startsWith('/token')) res.writeHead(500).end();
      else
        res
          .writeHead(401, {
            'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="s"`,
          })
          .end();
    });
    const c = client(srv);
    const e = await c.getManifest('1').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryAuthError);
    expect((e as Error).message).toMatch(/token service .* answered HTTP 500/);
    expect(srv.seen.filter((l) => l.startsWith('GET /token'))).toHaveLength(1 + 3);
  });

  it('ends a redirect loop after 5 hops, saying so, without retrying it', async () => {
    const srv = await fakeRegistry((req, res) =>
      res.writeHead(302, { location: `${req.url?.split('?')[0]}?again` }).end(),
    );
    const c = client(srv);
    const e = await pullInto(store, c, desc).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(
      new RegExp(`GET blob ${desc.digest}: redirected more than 5 times`),
    );
    expect(srv.seen.filter((l) => l.startsWith('GET /v2/x/blobs/'))).toHaveLength(1 + 5);
  });

  it.each([
    ['announced by its Content-Length', true],
    ['chunked', false],
  ])('refuses a manifest over 4 MiB, %s, without reading it', async (_name, withLength) => {
    const size = 64 * 1024 * 1024;
    let sent = 0;
    const srv = await fakeRegistry((_req, res) => {
      res.writeHead(200, {
        'content-type': MediaTypes.imageManifest,
        ...(withLength ? { 'content-length': size } : {}),
      });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = (): void => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      res.on('close', () => (sent = size + 1));
      pump();
    });
    const c = client(srv);
    const e = await c.getManifest('1').catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'INVALID_DOCUMENT' });
    expect((e as Error).message).toMatch(/manifest 1 is larger than the 4 MiB limit/);
    expect(srv.seen.filter((l) => l.startsWith('GET /v2/x/manifests/'))).toHaveLength(1);
  });

  it('gives up on a blob whose headers come and then nothing, naming the timeout', async () => {
    const srv = await fakeRegistry((_req, res) => {
      res.writeHead(200, { 'content-length': blob.length });
      res.flushHeaders();
    });
    const c = new RegistryClient({
      registry: srv.host,
      repository: 'x',
      retries: 1,
      retryBaseMs: 5,
      timeoutMs: 200,
    });
    opened.push(
      () => srv.close(),
      () => c.close(),
    );
    const e = await pullInto(store, c, desc).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(
      new RegExp(
        `GET blob ${desc.digest}: the connection timed out \\(no data for 0.2s\\) with 0 of ${blob.length} bytes received, after 1 retry`,
      ),
    );
    expect(await store.hasBlob(desc.digest)).toBe(false);
  });

  it('a pull that fails before its new store is open lets the store finish opening first', async () => {
    const srv = await fakeRegistry((_req, res) => res.writeHead(404).end());
    opened.push(() => srv.close());
    let ready = false;
    // A caller exits on the error: a store half made then would leave its index lock behind.
    const into = new Promise<Store>((r) =>
      setTimeout(() => {
        ready = true;
        r(store);
      }, 300),
    );
    const e = await pull(into, parseReference(`${srv.host}/x:1`), { retries: 0 }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(RegistryError);
    expect(ready).toBe(true);
  });

  it('fails with a hint when nothing answers the ping', async () => {
    const srv = await fakeRegistry((_req, res) => res.writeHead(500).end());
    await srv.close();
    // The server is gone already: only the client is left to close.
    const c = client({ host: srv.host, close: async () => undefined });
    const e = await c.startUpload().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as RegistryError).hint).toMatch(/is the registry running/);
    // On loopback plain http is tried as well: the message names no scheme that did not fail.
    expect((e as RegistryError).message).toMatch(
      new RegExp(`^${srv.host}: GET /v2/: connect ECONNREFUSED`),
    );
  });

  it('fails auth with one clear message that carries no secret', async () => {
    const srv = await fakeRegistry((_req, res) =>
      res
        .writeHead(401, { 'www-authenticate': 'Basic realm="r"' })
        .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'),
    );
    const c = new RegistryClient({
      registry: srv.host,
      repository: 'x',
      credentials: { username: 'alice', password: 'hunter2-secret' },
    });
    try {
      const e = await c.hasBlob(desc.digest).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RegistryAuthError);
      expect((e as Error).message).toMatch(/authentication failed/);
      expect(`${(e as Error).message} ${(e as RegistryAuthError).hint}`).not.toMatch(
        /hunter2|alice:/,
      );
    } finally {
      c.close();
      await srv.close();
    }
  });
});

describe('credentials and upload Locations on another origin', () => {
  const creds = { username: 'alice', password: 'Pa55w0rdXYZ' };
  const basic = `Basic ${Buffer.from('alice:Pa55w0rdXYZ').toString('base64')}`;

  /** A server that logs each request's method and Authorization header. */
  async function logging(
    handler: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void,
  ): Promise<{ host: string; log: string[]; close: () => Promise<void> }> {
    const log: string[] = [];
    const server = http.createServer((req, res) => {
      log.push(`${req.method} ${req.headers.authorization ?? '-'}`);
      whenRead(req, (body) => handler(req, res, body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    return {
      host: `127.0.0.1:${port}`,
      log,
      close: () =>
        new Promise((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
    };
  }

  it.each([
    ['one PUT', undefined],
    ['PATCH chunks', 64 * 1024],
  ])(
    'sends Basic credentials to the registry only, not to the Location it names (%s)',
    async (_how, chunkSize) => {
      const storage = await logging((req, res) => {
        if (req.method === 'PATCH') res.writeHead(202, { location: '/upload/abc' }).end();
        else if (req.method === 'PUT') res.writeHead(201).end();
        else res.writeHead(500).end();
      });
      const registry = await logging((req, res) => {
        if (req.headers.authorization !== basic)
          res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
        else if (req.method === 'HEAD') res.writeHead(404).end();
        else if (req.method === 'POST')
          res.writeHead(202, { location: `http://${storage.host}/upload/abc` }).end();
        else res.writeHead(500).end();
      });
      const c = new RegistryClient({
        registry: registry.host,
        repository: 'x',
        credentials: creds,
        retries: 0,
      });
      try {
        const open = (start = 0, end = blob.length - 1): Readable =>
          Readable.from([blob.subarray(start, end + 1)]);
        const pushed = await c.pushBlob(desc, open, {
          ...(chunkSize ? { chunkSize } : {}),
        });
        expect(pushed).toBe('uploaded');
        expect(registry.log).toContain(`POST ${basic}`);
        expect(storage.log.length).toBeGreaterThan(0);
        expect(storage.log.every((l) => l.endsWith(' -'))).toBe(true);
      } finally {
        c.close();
        await registry.close();
        await storage.close();
      }
    },
  );

  it('sends a registry token to the registry only', async () => {
    const storage = await logging((req, res) => res.writeHead(201).end());
    const registry = await logging((req, res) => {
      if (req.url === '/v2/') res.writeHead(200).end('{}');
      else if (req.method === 'HEAD') res.writeHead(404).end();
      else if (req.method === 'POST')
        res.writeHead(202, { location: `http://${storage.host}/upload/abc` }).end();
      else res.writeHead(500).end();
    });
    const c = new RegistryClient({
      registry: registry.host,
      repository: 'x',
      credentials: { registryToken: 'tok-secret' },
      retries: 0,
    });
    try {
      expect(await c.pushBlob(desc, () => Readable.from([blob]))).toBe('uploaded');
      expect(registry.log).toContain('POST Bearer tok-secret');
      expect(storage.log).toEqual(['PUT -']);
    } finally {
      c.close();
      await registry.close();
      await storage.close();
    }
  });

  it('refuses a plain-http Location named by an https registry', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
      ].concat([
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        path.join(dir, 'k'),
        '-out',
        path.join(dir, 'c'),
      ]),
      { stdio: 'ignore' },
    );
    const storage = await logging((_req, res) => res.writeHead(201).end());
    const server = https.createServer(
      {
        key: await fsp.readFile(path.join(dir, 'k')),
        cert: await fsp.readFile(path.join(dir, 'c')),
      },
      (req, res) => {
        if (req.headers.authorization !== basic)
          res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
        else if (req.method === 'HEAD') res.writeHead(404).end();
        else if (req.method === 'POST')
          res.writeHead(202, { location: `http://${storage.host}/upload/abc` }).end();
        else res.writeHead(500).end();
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const c = new RegistryClient({
      registry: `127.0.0.1:${port}`,
      repository: 'x',
      credentials: creds,
      insecure: true,
      retries: 0,
    });
    try {
      const e = await c.pushBlob(desc, () => Readable.from([blob])).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RegistryError);
      expect((e as Error).message).toMatch(/refusing to follow the registry from https to http:/);
      expect(storage.log).toEqual([]);
    } finally {
      c.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await storage.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it("does not learn a token realm from another origin's 401", async () => {
    const realm = await logging((_req, res) => res.writeHead(200).end('{"token":"t"}'));
    const storage = await logging((_req, res) =>
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${realm.host}/token"` }).end(),
    );
    const registry = await logging((req, res) => {
      if (req.headers.authorization !== basic)
        res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      else if (req.method === 'HEAD') res.writeHead(404).end();
      else if (req.method === 'POST')
        res.writeHead(202, { location: `http://${storage.host}/upload/abc` }).end();
      else res.writeHead(500).end();
    });
    const c = new RegistryClient({
      registry: registry.host,
      repository: 'x',
      credentials: creds,
      retries: 0,
    });
    try {
      const e = await c.pushBlob(desc, () => Readable.from([blob])).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(RegistryAuthError);
      expect(await c.hasBlob(desc.digest)).toBeUndefined();
      expect(registry.log[registry.log.length - 1]).toBe(`HEAD ${basic}`);
      expect(realm.log).toEqual([]);
      expect(storage.log.every((l) => l.endsWith(' -'))).toBe(true);
    } finally {
      c.close();
      await registry.close();
      await storage.close();
      await realm.close();
    }
  });
});

describe('withQuery', () => {
  const d = 'sha256:ab';
  it("adds the parameters, encoded, and keeps the registry's own byte for byte", () => {
    expect(withQuery('/v2/x/blobs/uploads/u1', { digest: d })).toBe(
      '/v2/x/blobs/uploads/u1?digest=sha256%3Aab',
    );
    expect(
      withQuery('http://h:5000/v2/x/blobs/uploads/u1?_state=a%3Db+c~&n=1', { digest: d }),
    ).toBe('http://h:5000/v2/x/blobs/uploads/u1?_state=a%3Db+c~&n=1&digest=sha256%3Aab');
  });
  it('replaces a parameter of the same name, and drops a fragment', () => {
    expect(withQuery('/u?digest=old&a=1&dig%65st=x#f', { digest: d })).toBe(
      '/u?a=1&digest=sha256%3Aab',
    );
    expect(withQuery('/u?#f', { digest: d })).toBe('/u?digest=sha256%3Aab');
    expect(withQuery('/u?%zz=1', { digest: d })).toBe('/u?%zz=1&digest=sha256%3Aab');
  });
});
