import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { rootCertificates } from 'node:tls';
import { Readable } from 'node:stream';
import { InvalidArgumentError, redact } from '@strata/oci';
import type { Credentials } from './auth-config';
import { Challenge, parseChallenges } from './challenge';
import {
  RegistryAuthError,
  RegistryError,
  describeErrors,
  parseDistributionErrors,
} from './errors';

export interface TransportOptions {
  /** Registry host[:port]. */
  registry: string;
  /** Anonymous when undefined. */
  credentials?: Credentials;
  /** Allow plain http, and TLS without verification. Only when the user asks. */
  insecure?: boolean;
  /** Extra CA certificates (PEM) trusted besides the system ones. */
  caCert?: string | Buffer;
  /** Attempts after the first for retriable failures (5xx, 429, connection resets). Default 4. */
  retries?: number;
  /** First backoff delay in ms, doubled on each retry (with jitter). Default 250. */
  retryBaseMs?: number;
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

export interface RequestSpec {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path under the registry (`/v2/…`), or an absolute URL (an upload Location). */
  url: string;
  headers?: Record<string, string | number>;
  body?: BodySource;
  /** Token scopes this request needs, e.g. `repository:x:pull,push`. */
  scopes: readonly string[];
  /** Statuses that are success; anything else throws. */
  expect: readonly number[];
  /** What we were doing, for error messages ("HEAD blob sha256:…"). */
  what: string;
  /** Hand back the response body as a stream instead of buffering it. */
  stream?: boolean;
  /** Largest body to buffer. Default 4 MiB. */
  maxBody?: number;
  /** Retry transient failures (only safe when the request is idempotent). Default true. */
  retry?: boolean;
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

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRY_ERRNO = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EAI_AGAIN',
  'ECONNABORTED',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
]);

/** Whether a failure is worth another attempt (connection resets, timeouts, 5xx, 429). */
export function isRetriable(e: unknown): boolean {
  if (e instanceof RegistryError) return e.status !== undefined && RETRY_STATUS.has(e.status);
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && RETRY_ERRNO.has(code)) return true;
  return (e as Error)?.message === 'aborted';
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

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Exponential backoff with full jitter; honours Retry-After (seconds) when given. */
export function backoffDelay(attempt: number, baseMs: number, retryAfter?: string): number {
  if (retryAfter && /^\d+$/.test(retryAfter)) return Math.min(Number(retryAfter) * 1000, 30000);
  const cap = baseMs * 2 ** attempt;
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

type Auth =
  { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

/**
 * HTTP to one registry: scheme selection (https, and http for loopback or --insecure), TLS
 * trust, the auth handshake (basic, or bearer tokens per scope set from the challenge's token
 * service), retries with backoff, redirects. Knows nothing about blobs or manifests.
 */
export class Transport {
  readonly registry: string;
  private readonly opts: TransportOptions;
  private tlsAgent?: https.Agent;
  private readonly httpAgent: http.Agent;
  private base?: Promise<URL>;
  private auth: Auth = { kind: 'none' };
  private readonly tokens = new Map<string, Promise<string>>();

  constructor(opts: TransportOptions) {
    if (!/^[A-Za-z0-9.-]+(?::\d+)?$|^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(opts.registry)) {
      throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(opts.registry)}`);
    }
    this.registry = opts.registry;
    this.opts = opts;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 8 });
  }

  /** Made on first use, so that only a command that speaks TLS reads CA files. */
  private get httpsAgent(): https.Agent {
    if (!this.tlsAgent) {
      const own = this.opts.caCert?.toString();
      const extra = own ? [extraCaCerts(), own].filter((x): x is string => Boolean(x)) : [];
      this.tlsAgent = new https.Agent({
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

  get credentials(): Credentials | undefined {
    return this.opts.credentials;
  }

  /** Attempts after the first for transient failures. */
  get retries(): number {
    return this.opts.retries ?? 4;
  }

  /** First backoff delay, in ms. */
  get retryBaseMs(): number {
    return this.opts.retryBaseMs ?? 250;
  }

  /** Resolve the base URL with `GET /v2/`, and learn the auth scheme from its challenge. */
  ping(): Promise<URL> {
    if (!this.base) {
      const base = this.doPing();
      this.base = base;
      // A failed ping may be retried by the next call.
      base.catch(() => {
        if (this.base === base) this.base = undefined;
      });
    }
    return this.base;
  }

  private async doPing(): Promise<URL> {
    const httpsBase = new URL(`https://${this.registry}/`);
    const httpBase = new URL(`http://${this.registry}/`);
    let base = httpsBase;
    let res: Response | undefined;
    if (isLoopback(this.registry)) {
      // A registry on loopback usually speaks plain http, and plain http is allowed there, so it
      // is asked first: that spares every command a failed TLS handshake and building Node's CA
      // store. A TLS server answers it with 400 or drops it, and https is tried next. Only the
      // anonymous ping goes this way; credentials follow the scheme that answered.
      const plain = await this.send(new URL('/v2/', httpBase), 'GET', {}).catch(() => undefined);
      if (plain && (plain.status === 200 || plain.status === 401)) {
        res = plain;
        base = httpBase;
      }
    }
    if (!res) {
      try {
        res = await this.withRetries('GET /v2/', () =>
          this.send(new URL('/v2/', httpsBase), 'GET', {}),
        );
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        const notTls =
          code === 'EPROTO' ||
          code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
          code === 'ECONNRESET' ||
          /wrong version number|packet length too long/i.test((e as Error).message);
        const mayHttp = this.opts.insecure || isLoopback(this.registry);
        if (!mayHttp || !notTls) throw this.networkError(e, `https://${this.registry}/v2/`);
        base = httpBase;
        res = await this.withRetries('GET /v2/', () =>
          this.send(new URL('/v2/', httpBase), 'GET', {}),
        );
      }
    }
    if (res.status === 401) {
      this.learnChallenge(res.headers['www-authenticate']);
    } else if (res.status !== 200) {
      throw new RegistryError(
        'UNAVAILABLE',
        `${this.registry} does not look like an OCI registry: GET /v2/ answered HTTP ${res.status}`,
        res.status,
      );
    }
    return base;
  }

  private learnChallenge(header: string | string[] | undefined): Challenge | undefined {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer && bearer.params.realm) {
      this.auth = {
        kind: 'bearer',
        realm: bearer.params.realm,
        ...(bearer.params.service ? { service: bearer.params.service } : {}),
      };
      return bearer;
    }
    if (basic) {
      this.auth = { kind: 'basic' };
      return basic;
    }
    return undefined;
  }

  private basicHeader(): string | undefined {
    const c = this.opts.credentials;
    if (c?.username === undefined || c.password === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
  }

  private async authorization(scopes: readonly string[]): Promise<string | undefined> {
    if (this.opts.credentials?.registryToken)
      return `Bearer ${this.opts.credentials.registryToken}`;
    switch (this.auth.kind) {
      case 'none':
        return undefined;
      case 'basic': {
        const h = this.basicHeader();
        if (!h) {
          throw new RegistryAuthError(`${this.registry} requires a login`, 401, {
            hint: `run \`strata login ${this.registry}\``,
          });
        }
        return h;
      }
      case 'bearer': {
        const key = [...scopes].sort().join(' ');
        let t = this.tokens.get(key);
        if (!t) {
          t = this.fetchToken(this.auth, scopes);
          this.tokens.set(key, t);
          t.catch(() => this.tokens.delete(key));
        }
        return `Bearer ${await t}`;
      }
    }
  }

  /** Ask the challenge's token service for a bearer token covering `scopes`. */
  private async fetchToken(
    auth: { realm: string; service?: string },
    scopes: readonly string[],
  ): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(auth.realm);
    } catch {
      throw new RegistryAuthError(`${this.registry} named an invalid token realm`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new RegistryAuthError(`${this.registry} named a token realm that is not http(s)`);
    }
    const creds = this.opts.credentials;
    let res: Response;
    if (creds?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: creds.identityToken,
        client_id: 'strata',
        ...(auth.service ? { service: auth.service } : {}),
        scope: scopes.join(' '),
      });
      const body = Buffer.from(form.toString());
      res = await this.withRetries('token', () =>
        this.send(
          realm,
          'POST',
          {
            'content-type': 'application/x-www-form-urlencoded',
            'content-length': body.length,
          },
          body,
        ),
      );
    } else {
      const url = new URL(realm.toString());
      if (auth.service) url.searchParams.set('service', auth.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      const basic = this.basicHeader();
      if (basic) headers.authorization = basic;
      res = await this.withRetries('token', () => this.send(url, 'GET', headers));
    }
    if (res.status === 401 || res.status === 403) {
      const detail = describeErrors(parseDistributionErrors(res.body));
      throw new RegistryAuthError(
        `${this.registry}: authentication failed (token service answered HTTP ${res.status}${detail ? `: ${detail}` : ''})`,
        res.status,
        { hint: `check the username and password, or run \`strata login ${this.registry}\`` },
      );
    }
    if (res.status !== 200) {
      throw new RegistryAuthError(
        `${this.registry}: token service ${realm.host} answered HTTP ${res.status}`,
        res.status,
      );
    }
    let doc: { token?: unknown; access_token?: unknown };
    try {
      doc = JSON.parse(res.body.toString('utf8')) as typeof doc;
    } catch {
      throw new RegistryAuthError(
        `${this.registry}: token service sent something that is not JSON`,
      );
    }
    const token = typeof doc.token === 'string' ? doc.token : doc.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new RegistryAuthError(`${this.registry}: token service sent no token`);
    }
    return token;
  }

  /** Run an attempt with retries for transient failures. */
  private async withRetries(what: string, attempt: () => Promise<Response>): Promise<Response> {
    for (let n = 0; ; n++) {
      try {
        const res = await attempt();
        if (RETRY_STATUS.has(res.status) && n < this.retries) {
          res.stream?.destroy();
          await sleep(backoffDelay(n, this.retryBaseMs, headerValue(res.headers['retry-after'])));
          continue;
        }
        return res;
      } catch (e) {
        if (n < this.retries && isRetriable(e)) {
          await sleep(backoffDelay(n, this.retryBaseMs));
          continue;
        }
        throw e;
      }
    }
  }

  /** Send a request: ping first, authorise, retry, re-authorise once on 401, follow redirects. */
  async request(spec: RequestSpec): Promise<Response> {
    const base = await this.ping();
    const url = new URL(spec.url, base);
    let reauthed = false;
    for (let n = 0; ; n++) {
      let res: Response;
      try {
        const authz = await this.authorization(spec.scopes);
        const headers: Record<string, string | number> = { ...(spec.headers ?? {}) };
        if (authz) headers.authorization = authz;
        const body =
          spec.body === undefined
            ? undefined
            : Buffer.isBuffer(spec.body)
              ? spec.body
              : await spec.body();
        res = await this.send(url, spec.method, headers, body, spec.stream, spec.maxBody);
        res = await this.followRedirects(res, spec, headers);
      } catch (e) {
        if (spec.retry !== false && n < this.retries && isRetriable(e)) {
          await sleep(backoffDelay(n, this.retryBaseMs));
          continue;
        }
        if (e instanceof RegistryError) throw e;
        throw this.networkError(e, `${spec.what}`);
      }
      if (res.status === 401 && !reauthed) {
        res.stream?.destroy();
        reauthed = true;
        const prevKind = this.auth.kind;
        const ch = this.learnChallenge(res.headers['www-authenticate']);
        if (ch) {
          this.tokens.clear();
          if (prevKind !== 'none' || this.auth.kind !== 'none') continue;
        }
      }
      if (res.status === 401) {
        res.stream?.destroy();
        throw this.authFailure(res, spec.what);
      }
      if (spec.retry !== false && RETRY_STATUS.has(res.status) && n < this.retries) {
        res.stream?.destroy();
        await sleep(backoffDelay(n, this.retryBaseMs, headerValue(res.headers['retry-after'])));
        continue;
      }
      if (!spec.expect.includes(res.status)) {
        if (res.stream)
          res.body = await readBody(res.stream, 64 * 1024).catch(() => Buffer.alloc(0));
        throw this.statusError(res, spec.what);
      }
      return res;
    }
  }

  private authFailure(res: Response, what: string): RegistryAuthError {
    const errors = parseDistributionErrors(res.body);
    const detail = describeErrors(errors);
    const who = this.opts.credentials ? 'authentication failed' : 'authentication required';
    return new RegistryAuthError(
      `${this.registry}: ${who} (${what}: HTTP 401${detail ? ` ${detail}` : ''})`,
      401,
      {
        hint: this.opts.credentials
          ? `check the username and password, or run \`strata login ${this.registry}\``
          : `run \`strata login ${this.registry}\``,
      },
    );
  }

  private statusError(res: Response, what: string): RegistryError {
    const errors = parseDistributionErrors(res.body);
    const detail = describeErrors(errors);
    const code =
      res.status === 404
        ? 'NOT_FOUND'
        : res.status === 400 || res.status === 405
          ? 'INVALID_ARGUMENT'
          : 'UNAVAILABLE';
    const msg = `${this.registry}: ${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`;
    if (res.status === 403) {
      return new RegistryAuthError(msg, 403, {
        hint: 'the account lacks permission for this repository',
      });
    }
    return new RegistryError(code, msg, res.status, errors);
  }

  private networkError(e: unknown, what: string): RegistryError {
    const err = e as NodeJS.ErrnoException;
    const code = err.code ?? '';
    let hint: string | undefined;
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      hint = "trust the registry's CA with --ca-cert FILE (or, only if you must, --insecure)";
    } else if (code === 'ECONNREFUSED') {
      hint = 'is the registry running, and is the host:port right?';
    }
    return new RegistryError(
      'UNAVAILABLE',
      `${this.registry}: ${what}: ${redact(err.message ?? String(e))}`,
      undefined,
      [],
      { cause: e, ...(hint ? { hint } : {}) },
    );
  }

  private async followRedirects(
    res: Response,
    spec: RequestSpec,
    headers: Record<string, string | number>,
  ): Promise<Response> {
    let hops = 0;
    while (
      (spec.method === 'GET' || spec.method === 'HEAD') &&
      [301, 302, 303, 307, 308].includes(res.status) &&
      res.headers.location &&
      hops++ < 5
    ) {
      res.stream?.destroy();
      const next = new URL(res.headers.location, res.url);
      const h = { ...headers };
      if (next.host !== res.url.host) delete h.authorization;
      res = await this.send(next, spec.method, h, undefined, spec.stream, spec.maxBody);
    }
    return res;
  }

  /** One HTTP exchange. */
  private send(
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
      const req = (isHttps ? https : http).request(url, {
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
          `no response for ${Math.round((this.opts.timeoutMs ?? 60000) / 1000)}s`,
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
            const e = new Error('transfer stalled') as NodeJS.ErrnoException;
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
 * Buffer a response body, refusing one larger than `max`. Listens for 'data' and 'end' rather
 * than iterating: most answers are a few bytes, and in a fresh process the async iterator's
 * machinery costs a millisecond or more of each exchange.
 */
export function readBody(res: Readable, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    res.on('data', (b: Buffer) => {
      n += b.length;
      if (n > max) {
        reject(new RegistryError('UNAVAILABLE', `response body larger than ${max} bytes`));
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
