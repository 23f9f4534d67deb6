import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type * as Https from 'node:https';
import { Readable } from 'node:stream';
import { BodyTooLargeError, RegistryError } from './errors';

// node:https (and node:tls under it) loads with the first TLS exchange: a registry on loopback
// speaks plain http, and a command that reaches none needs neither.
let https: typeof Https | undefined;
function loadHttps(): typeof Https {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  https ??= require('node:https') as typeof Https;
  return https;
}

/** How to reach one registry over HTTP. */
export interface HttpOptions {
  /** Registry host[:port]. */
  registry: string;
  /** Allow plain http, and TLS without verification. Only when the user asks. */
  insecure?: boolean;
  /** Extra CA certificates (PEM) trusted besides the system ones. */
  caCert?: string | Buffer;
  /** Socket idle timeout in ms. Default 60000. */
  timeoutMs?: number;
  /** Parallel connections per registry. Default 8. */
  maxSockets?: number;
  userAgent?: string;
}

/**
 * A body that writes itself, chunk by chunk (a stored blob's `BlobReader`). `write` resolves once
 * its chunk is handed to the socket, so that the body can reuse the chunk's buffer; it rejects
 * when the exchange ended first. `close` releases a body that was not sent.
 */
export interface ChunkBody {
  pipeTo(write: (chunk: Buffer) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** A body that is sent as it is produced: a stream, or a {@link ChunkBody}. */
export type StreamBody = Readable | ChunkBody;

/** A request body, re-created for each attempt so that a retry never replays a spent stream. */
export type BodySource = Buffer | (() => StreamBody | Promise<StreamBody>);

/** Let go of a body that will not be sent, of either kind. */
export function discardBody(body: StreamBody): void {
  if (body instanceof Readable) body.destroy();
  else void body.close();
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The buffered body (when not streaming). */
  body: Buffer;
  /** The live body (when streaming); the caller must consume or destroy it. */
  stream?: http.IncomingMessage;
  /** The URL that answered, for resolving relative Locations. */
  url: URL;
}

export function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The PEM file named by NODE_EXTRA_CA_CERTS. Node adds it to its default trust store, but a
 * `ca` option replaces that store, and `tls.rootCertificates` holds only the bundled roots: so
 * when `--ca-cert` is given, the file is read here, to trust both. As in Node, a file that cannot
 * be read adds nothing.
 */
function extraCaCerts(): string | undefined {
  const file = process.env.NODE_EXTRA_CA_CERTS;
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Single HTTP exchanges with one registry, over keep-alive connections: TLS trust, the refusal of
 * plain http where it is not allowed, timeouts, and bodies sent as they are produced. Knows
 * nothing about auth, retries or the distribution API.
 */
export class HttpConnection {
  private readonly registry: string;
  private readonly opts: HttpOptions;
  private tlsAgent?: Https.Agent;
  private readonly httpAgent: http.Agent;

  constructor(opts: HttpOptions) {
    this.registry = opts.registry;
    this.opts = opts;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 8 });
  }

  /** Made on first use, so that only a command that speaks TLS reads CA files. */
  private get httpsAgent(): Https.Agent {
    if (!this.tlsAgent) {
      const own = this.opts.caCert?.toString();
      const extra = own ? [extraCaCerts(), own].filter((x): x is string => Boolean(x)) : [];
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { rootCertificates } = require('node:tls') as typeof import('node:tls');
      this.tlsAgent = new (loadHttps().Agent)({
        keepAlive: true,
        maxSockets: this.opts.maxSockets ?? 8,
        ...(extra.length ? { ca: [...rootCertificates, ...extra] } : {}),
        rejectUnauthorized: !this.opts.insecure,
      });
    }
    return this.tlsAgent;
  }

  /** Close idle keep-alive sockets. */
  close(): void {
    this.tlsAgent?.destroy();
    this.httpAgent.destroy();
  }

  /** One HTTP exchange. */
  send(
    url: URL,
    method: string,
    headers: Record<string, string | number>,
    body?: Buffer | StreamBody,
    stream = false,
    maxBody = 4 * 1024 * 1024,
  ): Promise<Response> {
    const isHttps = url.protocol === 'https:';
    if (!isHttps && url.protocol !== 'http:') {
      return Promise.reject(
        new RegistryError('UNAVAILABLE', `unsupported URL scheme ${url.protocol}`),
      );
    }
    if (!isHttps && url.host === new URL(`http://${this.registry}`).host) {
      if (!this.opts.insecure && !isLoopback(this.registry)) {
        return Promise.reject(
          new RegistryError(
            'UNAVAILABLE',
            `${this.registry}: refusing plain http without --insecure`,
          ),
        );
      }
    }
    const h: Record<string, string | number> = {
      'user-agent': this.opts.userAgent ?? 'strata',
      ...headers,
    };
    if (
      body === undefined &&
      ['PUT', 'POST', 'PATCH'].includes(method) &&
      h['content-length'] === undefined
    ) {
      h['content-length'] = 0;
    }
    return new Promise<Response>((resolve, reject) => {
      const req = (isHttps ? loadHttps() : http).request(url, {
        method,
        headers: h,
        agent: isHttps ? this.httpsAgent : this.httpAgent,
      });
      let settled = false;
      // Writes of a ChunkBody still waiting for the socket. Node drops the callback of a write
      // to a socket that is gone, so they are rejected here when the exchange ends.
      const writing = new Set<(e: Error) => void>();
      const endWrites = (e: Error): void => {
        for (const rej of writing) rej(e);
        writing.clear();
      };
      const fail = (e: Error): void => {
        if (settled) return;
        settled = true;
        if (body !== undefined && !Buffer.isBuffer(body)) discardBody(body);
        endWrites(e);
        req.destroy();
        reject(e);
      };
      req.setTimeout(this.opts.timeoutMs ?? 60000, () => {
        const e = new Error(
          `no response for ${(this.opts.timeoutMs ?? 60000) / 1000}s`,
        ) as NodeJS.ErrnoException;
        e.code = 'ETIMEDOUT';
        fail(e);
      });
      req.on('error', fail);
      req.on('response', (res) => {
        if (stream && res.statusCode !== undefined && res.statusCode < 300 && method !== 'HEAD') {
          settled = true;
          endWrites(answeredEarly());
          res.setTimeout(this.opts.timeoutMs ?? 60000, () => {
            const e = new Error(
              `no data for ${(this.opts.timeoutMs ?? 60000) / 1000}s`,
            ) as NodeJS.ErrnoException;
            e.code = 'ETIMEDOUT';
            res.destroy(e);
          });
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: Buffer.alloc(0),
            stream: res,
            url,
          });
          return;
        }
        // A body announced as too large is refused unread (a HEAD announces one it never sends).
        if (
          method !== 'HEAD' &&
          Number(headerValue(res.headers['content-length']) ?? 0) > maxBody
        ) {
          res.destroy();
          fail(new BodyTooLargeError(maxBody));
          return;
        }
        readBody(res, maxBody).then(
          (buf) => {
            settled = true;
            endWrites(answeredEarly());
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, url });
          },
          (e: Error) => fail(e),
        );
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else if (body instanceof Readable) {
        body.on('error', (e) => fail(e));
        body.pipe(req);
      } else {
        const write = (chunk: Buffer): Promise<void> =>
          new Promise<void>((res, rej) => {
            if (settled) {
              rej(answeredEarly());
              return;
            }
            writing.add(rej);
            req.write(chunk, (e) => {
              writing.delete(rej);
              if (e) rej(e);
              else res();
            });
          });
        body.pipeTo(write).then(
          () => {
            // Also after an answer that came first: an ended request frees its socket for reuse.
            if (!req.destroyed) req.end();
          },
          (e: Error) => fail(e),
        );
      }
    });
  }
}

/** Why a body stopped being sent: the registry answered (or the exchange ended) first. */
function answeredEarly(): Error {
  const e = new Error('the request ended before its body was sent') as NodeJS.ErrnoException;
  e.code = 'ERR_STREAM_DESTROYED';
  return e;
}

export function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/**
 * Buffer a response body, refusing one larger than `max`. Also settles when the stream closes
 * before its end without an error of its own.
 */
export function readBody(res: Readable, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    res.on('data', (b: Buffer) => {
      n += b.length;
      if (n > max) {
        reject(new BodyTooLargeError(max));
        res.destroy();
        return;
      }
      chunks.push(b);
    });
    res.once('end', () =>
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, n)),
    );
    res.once('error', reject);
    // Closed before its end without an error of its own (a stream destroyed under us).
    res.once('close', () => {
      const e = new Error('Premature close') as NodeJS.ErrnoException;
      e.code = 'ERR_STREAM_PREMATURE_CLOSE';
      reject(e);
    });
  });
}
