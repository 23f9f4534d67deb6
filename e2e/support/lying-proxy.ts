/**
 * A lying or failing registry for the reliability tests: a plain-http proxy on 127.0.0.1 in front
 * of a real docker-registry that can be switched, per test, into one misbehaviour at a time, and
 * that can play a bearer-token service of its own. Every request is recorded with the time it
 * arrived, so that tests can count retries and measure the backoff between them.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type * as net from 'node:net';

/** What the proxy does wrong. `honest` forwards everything untouched. */
export type Fault =
  | 'honest'
  /** A blob arrives with one byte flipped (same length). */
  | 'flip-byte'
  /** A blob arrives cut to half its size, with a Content-Length that matches the cut. */
  | 'truncate'
  /** A blob arrives whole, under a Content-Length one byte larger, and the connection closes. */
  | 'wrong-length'
  /**
   * A manifest arrives with other bytes (a different digest) than asked for: by digest, or by
   * tag under the registry's `Docker-Content-Digest` of the true one.
   */
  | 'wrong-manifest'
  /** A manifest fetched by tag is an index of one image manifest that the registry does not hold. */
  | 'missing-child'
  /** Every matching request is redirected to itself, forever. */
  | 'redirect-loop'
  /** 429 Too Many Requests with `Retry-After: retryAfter`. */
  | 'too-many-requests'
  /** The statuses of `statuses` in turn (500, 503, ...). */
  | 'error-burst'
  /** Half a blob, then the connection is destroyed. */
  | 'drop-mid-blob'
  /** The status line and headers, then nothing ever again. */
  | 'stall-headers'
  /** Not even a status line: the request is read and never answered. */
  | 'stall-silent'
  /** A manifest of `hugeBytes` bytes, produced as it is sent, never held in memory. */
  | 'huge-manifest'
  /** Well-formed JSON that is not a manifest. */
  | 'not-a-manifest'
  /** The connection is destroyed as soon as the request arrives. */
  | 'drop-request';

/** Which requests a fault applies to (the others pass honestly). */
export type Target =
  | 'blob-get'
  | 'manifest-get'
  | 'manifest-by-digest'
  | 'manifest-by-tag'
  | 'upload'
  | 'manifest-put'
  | 'any';

export interface FaultSpec {
  fault: Fault;
  /** Default: the one that fits the fault (blobs for blob faults, manifests for manifest faults). */
  on?: Target;
  /** Only requests whose URL contains this (a digest, say). */
  only?: string;
  /** Misbehave on this many matching requests, then be honest. Default: forever. */
  times?: number;
  /** For `too-many-requests`: the Retry-After value, in seconds. Default 1. */
  retryAfter?: number;
  /** For `error-burst`: the statuses answered in turn. Default [500, 503]. */
  statuses?: number[];
  /** For `huge-manifest`: its size. Default 100 MiB. */
  hugeBytes?: number;
  /** For `huge-manifest`: send a Content-Length header (otherwise chunked). Default false. */
  hugeWithLength?: boolean;
}

/** The bearer-token service the proxy plays, and how it lies. */
export type TokenMode =
  /** No auth: requests go straight through. */
  | 'off'
  /** Tokens for the scopes asked for. */
  | 'honest'
  /** The token endpoint answers 500. */
  | 'error'
  /** Tokens for another repository than the one asked for. */
  | 'wrong-scope';

export interface ProxyRequest {
  /** `performance.now()` when the request arrived, in ms. */
  t: number;
  method: string;
  url: string;
  /** The status answered (0 when none was, as for a stall or a dropped request). */
  status: number;
  /** Whether the request was given the fault rather than an honest answer. */
  faulted: boolean;
  /** Response body bytes sent. */
  down: number;
}

export interface LyingProxy {
  host: string;
  requests: ProxyRequest[];
  /** Switch into a misbehaviour (also clears the record). */
  set(spec: FaultSpec): void;
  /** Forward everything honestly again. */
  honest(): void;
  /** Turn the token service on, off, or into a liar. */
  setAuth(mode: TokenMode): void;
  /** The requests that got the fault. */
  faulted(): ProxyRequest[];
  /** Token requests seen since the last `set`. */
  tokenRequests(): ProxyRequest[];
  stop(): Promise<void>;
}

const BLOB = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})(?:\?.*)?$/;
const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/?]+)(?:\?.*)?$/;
const UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\//;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

function defaultTarget(f: Fault): Target {
  switch (f) {
    case 'wrong-manifest':
    case 'missing-child':
    case 'huge-manifest':
    case 'not-a-manifest':
      return 'manifest-by-tag';
    default:
      return 'blob-get';
  }
}

function matches(target: Target, method: string, url: string): boolean {
  const path = url.split('?')[0] ?? '';
  const manifest = MANIFEST.exec(path);
  switch (target) {
    case 'any':
      return path !== '/v2/' && path !== '/v2';
    case 'blob-get':
      return method === 'GET' && BLOB.test(url) && !UPLOAD.test(url);
    case 'manifest-get':
      return method === 'GET' && manifest !== null;
    case 'manifest-by-digest':
      return method === 'GET' && manifest !== null && DIGEST.test(manifest[2] ?? '');
    case 'manifest-by-tag':
      return method === 'GET' && manifest !== null && !DIGEST.test(manifest[2] ?? '');
    case 'upload':
      return UPLOAD.test(url) && ['POST', 'PUT', 'PATCH'].includes(method);
    case 'manifest-put':
      return method === 'PUT' && manifest !== null;
  }
}

/** The repository a /v2/ path is about, if any. */
function repositoryOf(url: string): string | undefined {
  const path = url.split('?')[0] ?? '';
  const m =
    /^\/v2\/(.+)\/(?:blobs|manifests|tags|referrers)\//.exec(path) ??
    /^\/v2\/(.+)\/tags\/list$/.exec(path);
  return m?.[1];
}

/** Start the proxy in front of `target` (host:port of a plain-http registry). */
export async function startLyingProxy(target: string): Promise<LyingProxy> {
  const requests: ProxyRequest[] = [];
  let spec: FaultSpec = { fault: 'honest' };
  let used = 0;
  let auth: TokenMode = 'off';
  const sockets = new Set<net.Socket>();
  let host = '';

  /** Scopes a token grants: tokens here are the granted scopes, base64url-encoded, and signed by nothing. */
  const grant = (scopes: string[]): string =>
    `lying.${Buffer.from(JSON.stringify(scopes)).toString('base64url')}`;
  const granted = (header: string | undefined): string[] | undefined => {
    const m = /^Bearer lying\.([A-Za-z0-9_-]+)$/.exec(header ?? '');
    if (!m?.[1]) return undefined;
    try {
      const v = JSON.parse(Buffer.from(m[1], 'base64url').toString('utf8')) as unknown;
      return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : undefined;
    } catch {
      return undefined;
    }
  };

  /** Whether a request carries a token good for it; the scope it needs otherwise. */
  const authorised = (req: http.IncomingMessage): { ok: boolean; scope?: string } => {
    const url = req.url ?? '/';
    const scopes = granted(req.headers.authorization);
    const repo = repositoryOf(url);
    if (!repo) return { ok: scopes !== undefined };
    const push = !['GET', 'HEAD'].includes(req.method ?? 'GET');
    const scope = `repository:${repo}:${push ? 'pull,push' : 'pull'}`;
    const ok = (scopes ?? []).some((s) => {
      const [type, ...rest] = s.split(':');
      const actions = (rest.pop() ?? '').split(',');
      return (
        type === 'repository' &&
        rest.join(':') === repo &&
        actions.includes('pull') &&
        (!push || actions.includes('push'))
      );
    });
    return { ok, scope };
  };

  const tokenEndpoint = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    rec: ProxyRequest,
  ) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' '));
    if (auth === 'error') {
      rec.status = 500;
      res.writeHead(500, { 'content-type': 'text/plain' }).end('token service is down\n');
      return;
    }
    const give = auth === 'wrong-scope' ? ['repository:someone-else:pull,push'] : scopes;
    const token = grant(give);
    rec.status = 200;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  };

  const challenge = (res: http.ServerResponse, rec: ProxyRequest, scope?: string) => {
    rec.status = 401;
    const params = [`realm="http://${host}/token"`, 'service="lying-proxy"'];
    if (scope) params.push(`scope="${scope}"`);
    res
      .writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer ${params.join(',')}`,
      })
      .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
  };

  /** Forward to the registry; `shape` gets the upstream answer to pass on or to bend. */
  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    rec: ProxyRequest,
    shape?: (up: http.IncomingMessage) => void,
  ) => {
    const headers = { ...req.headers, host: target };
    delete headers.authorization; // the registry behind the proxy has no auth of its own
    const up = http.request(
      `http://${target}${req.url ?? '/'}`,
      { method: req.method, headers },
      (ur) => {
        ur.on('error', () => res.destroy());
        if (shape) {
          shape(ur);
          return;
        }
        rec.status = ur.statusCode ?? 502;
        const h = { ...ur.headers };
        if (ur.headers.location) h.location = relocate(ur.headers.location);
        res.writeHead(ur.statusCode ?? 502, h);
        ur.on('data', (c: Buffer) => (rec.down += c.length));
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
    res.on('close', () => up.destroy());
  };

  /** The registry's own absolute Locations (upload sessions) point back at the proxy. */
  const relocate = (loc: string): string => loc.replace(`//${target}/`, `//${host}/`);

  /** The whole upstream body (manifests only: small). */
  const buffer = (ur: http.IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => resolve(Buffer.concat(chunks)));
      ur.on('error', reject);
    });

  const misbehave = (req: http.IncomingMessage, res: http.ServerResponse, rec: ProxyRequest) => {
    const url = req.url ?? '/';
    switch (spec.fault) {
      case 'honest':
        forward(req, res, rec);
        return;
      case 'redirect-loop': {
        req.resume();
        rec.status = 302;
        // Two URLs that send to each other, so that a client cannot tell the loop by URL alone.
        const [p, q] = url.split('?');
        const hop = new URLSearchParams(q ?? '');
        hop.set('hop', String(Number(hop.get('hop') ?? 0) + 1));
        res.writeHead(302, { location: `${p}?${hop.toString()}`, 'content-length': 0 }).end();
        return;
      }
      case 'too-many-requests':
        req.resume();
        rec.status = 429;
        res
          .writeHead(429, {
            'retry-after': String(spec.retryAfter ?? 1),
            'content-type': 'application/json',
          })
          .end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
        return;
      case 'error-burst': {
        req.resume();
        const statuses = spec.statuses ?? [500, 503];
        const status = statuses[(used - 1) % statuses.length] ?? 500;
        rec.status = status;
        res
          .writeHead(status, { 'content-type': 'application/json' })
          .end(`{"errors":[{"code":"UNKNOWN","message":"injected ${status}"}]}`);
        return;
      }
      case 'stall-silent':
        req.resume();
        return; // the socket stays open until the client gives up or the proxy stops
      case 'drop-request':
        req.socket.destroy();
        return;
      case 'huge-manifest': {
        req.resume();
        rec.status = 200;
        const total = spec.hugeBytes ?? 100 * 1024 * 1024;
        const head = Buffer.from(
          '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"padding":"',
        );
        const tail = Buffer.from('"}}');
        const filler = Buffer.alloc(64 * 1024, 'a');
        res.writeHead(200, {
          'content-type': 'application/vnd.oci.image.index.v1+json',
          ...(spec.hugeWithLength ? { 'content-length': total } : {}),
        });
        let sent = 0;
        const pump = (): void => {
          while (sent < total) {
            let chunk: Buffer;
            if (sent === 0) chunk = head;
            else if (total - sent <= tail.length) chunk = tail.subarray(0, total - sent);
            else chunk = filler.subarray(0, Math.min(filler.length, total - sent - tail.length));
            sent += chunk.length;
            rec.down += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        res.on('close', () => (sent = total)); // a client that hung up stops the pump
        pump();
        return;
      }
      case 'not-a-manifest': {
        req.resume();
        rec.status = 200;
        const body = Buffer.from('{"hello":"world","schemaVersion":"two","layers":"none"}');
        res
          .writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
          .end(body);
        return;
      }
      case 'wrong-manifest':
        forward(req, res, rec, (ur) => {
          buffer(ur).then(
            (b) => {
              rec.status = ur.statusCode ?? 502;
              // Other bytes, still a valid manifest: the header keeps the digest asked for.
              const lie = ur.statusCode === 200 ? Buffer.concat([b, Buffer.from('\n')]) : b;
              rec.down += lie.length;
              res.writeHead(rec.status, { ...ur.headers, 'content-length': lie.length }).end(lie);
            },
            () => res.destroy(),
          );
        });
        return;
      case 'missing-child': {
        req.resume();
        rec.status = 200;
        // An index whose one image manifest the registry has never seen.
        const missing = createHash('sha256').update(`missing ${url}`).digest('hex');
        const body = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.index.v1+json',
            manifests: [
              {
                mediaType: 'application/vnd.oci.image.manifest.v1+json',
                digest: `sha256:${missing}`,
                size: 1234,
                platform: { os: 'linux', architecture: 'amd64' },
              },
            ],
          }),
        );
        rec.down += body.length;
        res
          .writeHead(200, {
            'content-type': 'application/vnd.oci.image.index.v1+json',
            'content-length': body.length,
          })
          .end(body);
        return;
      }
      case 'flip-byte':
      case 'truncate':
      case 'wrong-length':
      case 'drop-mid-blob':
      case 'stall-headers':
        forward(req, res, rec, (ur) => bendBlob(ur, res, rec));
        return;
    }
  };

  /** The blob faults, applied to the registry's streamed answer. */
  const bendBlob = (ur: http.IncomingMessage, res: http.ServerResponse, rec: ProxyRequest) => {
    const status = ur.statusCode ?? 502;
    rec.status = status;
    const size = Number(ur.headers['content-length'] ?? 0);
    // A whole blob (200), or the rest of one asked for with Range (206), is bent alike.
    if ((status !== 200 && status !== 206) || !(size > 1)) {
      res.writeHead(status, ur.headers);
      ur.pipe(res);
      return;
    }
    const half = Math.floor(size / 2);
    const h = { ...ur.headers };
    if (spec.fault === 'truncate') h['content-length'] = String(half);
    if (spec.fault === 'wrong-length') h['content-length'] = String(size + 1);
    res.writeHead(status, h);
    if (spec.fault === 'stall-headers') {
      res.flushHeaders();
      ur.destroy();
      return; // nothing more, ever
    }
    let at = 0;
    ur.on('data', (chunk: Buffer) => {
      let c = chunk;
      if (spec.fault === 'flip-byte' && at <= half && half < at + c.length) {
        c = Buffer.from(c);
        c[half - at] = (c[half - at] ?? 0) ^ 0xff;
      }
      if ((spec.fault === 'truncate' || spec.fault === 'drop-mid-blob') && at + c.length >= half) {
        c = c.subarray(0, half - at);
        at += c.length;
        rec.down += c.length;
        ur.destroy();
        if (spec.fault === 'truncate') res.end(c);
        else res.write(c, () => res.socket?.destroy());
        return;
      }
      at += c.length;
      rec.down += c.length;
      if (!res.write(c)) {
        ur.pause();
        res.once('drain', () => ur.resume());
      }
    });
    ur.on('end', () => {
      // A lying Content-Length leaves the client waiting for a byte that never comes: hang up.
      if (spec.fault === 'wrong-length') res.socket?.destroy();
      else res.end();
    });
  };

  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const rec: ProxyRequest = {
      t: performance.now(),
      method: req.method ?? '',
      url,
      status: 0,
      faulted: false,
      down: 0,
    };
    requests.push(rec);
    if (url.startsWith('/token')) {
      req.resume();
      tokenEndpoint(req, res, rec);
      return;
    }
    if (auth !== 'off') {
      const a = authorised(req);
      if (!a.ok) {
        req.resume();
        challenge(res, rec, a.scope);
        return;
      }
    }
    const on = spec.on ?? defaultTarget(spec.fault);
    if (
      spec.fault !== 'honest' &&
      matches(on, req.method ?? '', url) &&
      (spec.only === undefined || url.includes(spec.only)) &&
      used < (spec.times ?? Infinity)
    ) {
      used++;
      rec.faulted = true;
      misbehave(req, res, rec);
      return;
    }
    forward(req, res, rec);
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const set = (s: FaultSpec): void => {
    spec = s;
    used = 0;
    requests.length = 0;
    // Connections left stalled by the last fault must not answer for the next one.
    for (const sock of sockets) sock.destroy();
  };
  return {
    host,
    requests,
    set,
    honest: () => set({ fault: 'honest' }),
    setAuth: (mode) => (auth = mode),
    faulted: () => requests.filter((r) => r.faulted),
    tokenRequests: () => requests.filter((r) => r.url.startsWith('/token')),
    stop: () =>
      new Promise((r) => {
        for (const sock of sockets) sock.destroy();
        server.close(() => r());
      }),
  };
}
