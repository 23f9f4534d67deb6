import { InvalidArgumentError, redact } from '@strata/oci';
import { RegistryAuth } from './auth';
import type { Credentials } from './auth-config';
import {
  RegistryAuthError,
  RegistryError,
  describeErrors,
  parseDistributionErrors,
} from './errors';
import {
  BodySource,
  HttpConnection,
  HttpOptions,
  Response,
  headerValue,
  isLoopback,
  readBody,
} from './http';
import {
  RetryPolicy,
  backoffDelay,
  isRetriable,
  isRetriableStatus,
  retriesSpent,
  sleep,
  withRetries,
} from './retry';

const REDIRECTS = [301, 302, 303, 307, 308];
/** Redirects followed for one request (blob GETs go to storage backends, rarely more than one hop). */
export const MAX_REDIRECTS = 5;

export interface TransportOptions extends HttpOptions {
  /** Anonymous when undefined. */
  credentials?: Credentials;
  /** Attempts after the first for retriable failures (5xx, 429, connection resets). Default 4. */
  retries?: number;
  /** First backoff delay in ms, doubled on each retry (with jitter). Default 250. */
  retryBaseMs?: number;
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

/**
 * Requests to one registry: scheme selection (https, and http for loopback or --insecure) by the
 * `GET /v2/` ping, then auth (auth.ts), retries with backoff (retry.ts) and redirects around
 * single HTTP exchanges (http.ts). Knows nothing about blobs or manifests.
 */
export class Transport {
  readonly registry: string;
  private readonly opts: TransportOptions;
  private readonly http: HttpConnection;
  private readonly auth: RegistryAuth;
  private base?: Promise<URL>;

  constructor(opts: TransportOptions) {
    if (!/^[A-Za-z0-9.-]+(?::\d+)?$|^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(opts.registry)) {
      throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(opts.registry)}`);
    }
    this.registry = opts.registry;
    this.opts = opts;
    this.http = new HttpConnection(opts);
    this.auth = new RegistryAuth(opts.registry, opts.credentials, this.http, this.policy);
  }

  /** Close idle keep-alive sockets. */
  close(): void {
    this.http.close();
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

  private get policy(): RetryPolicy {
    return { retries: this.retries, baseMs: this.retryBaseMs };
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
      const plain = await this.http
        .send(new URL('/v2/', httpBase), 'GET', {})
        .catch(() => undefined);
      if (plain && (plain.status === 200 || plain.status === 401)) {
        res = plain;
        base = httpBase;
      }
    }
    if (!res) {
      try {
        res = await withRetries(this.policy, () =>
          this.http.send(new URL('/v2/', httpsBase), 'GET', {}),
        );
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        const notTls =
          code === 'EPROTO' ||
          code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
          code === 'ECONNRESET' ||
          /wrong version number|packet length too long/i.test((e as Error).message);
        const mayHttp = this.opts.insecure || isLoopback(this.registry);
        // Where plain http would have been tried next, the scheme is not what failed.
        if (!mayHttp || !notTls)
          throw this.networkError(e, mayHttp ? 'GET /v2/' : `https://${this.registry}/v2/`);
        base = httpBase;
        res = await withRetries(this.policy, () =>
          this.http.send(new URL('/v2/', httpBase), 'GET', {}),
        );
      }
    }
    if (res.status === 401) {
      this.auth.learn(res.headers['www-authenticate']);
    } else if (res.status !== 200) {
      throw retriesSpent(
        new RegistryError(
          'UNAVAILABLE',
          `${this.registry} does not look like an OCI registry: GET /v2/ answered HTTP ${res.status}`,
          res.status,
        ),
      );
    }
    return base;
  }

  /** Send a request: ping first, authorise, retry, re-authorise once on 401, follow redirects. */
  async request(spec: RequestSpec): Promise<Response> {
    const base = await this.ping();
    const url = new URL(spec.url, base);
    // An upload Location may name another host (a storage backend): it gets the request, but
    // not the credentials, which are the registry's own; as in docker's distribution client.
    const ownOrigin = url.origin === base.origin;
    if (!ownOrigin && base.protocol === 'https:' && url.protocol !== 'https:') {
      throw new RegistryError(
        'UNAVAILABLE',
        `${this.registry}: ${spec.what}: refusing to follow the registry from https to ${url.protocol}//${url.host}`,
      );
    }
    let reauthed = false;
    for (let n = 0; ; n++) {
      let res: Response;
      try {
        const authz = ownOrigin ? await this.auth.authorization(spec.scopes) : undefined;
        const headers: Record<string, string | number> = { ...(spec.headers ?? {}) };
        if (authz) headers.authorization = authz;
        const body =
          spec.body === undefined
            ? undefined
            : Buffer.isBuffer(spec.body)
              ? spec.body
              : await spec.body();
        res = await this.http.send(url, spec.method, headers, body, spec.stream, spec.maxBody);
        res = await this.followRedirects(res, spec, headers);
      } catch (e) {
        if (spec.retry !== false && n < this.retries && isRetriable(e)) {
          await sleep(backoffDelay(n, this.retryBaseMs));
          continue;
        }
        const err = e instanceof RegistryError ? e : this.networkError(e, `${spec.what}`);
        throw spec.retry === false ? err : retriesSpent(err);
      }
      // Only the registry itself teaches how to authorise with it.
      if (res.status === 401 && !reauthed && ownOrigin) {
        res.stream?.destroy();
        reauthed = true;
        const prevKind = this.auth.kind;
        const ch = this.auth.learn(res.headers['www-authenticate']);
        if (ch) {
          this.auth.clearTokens();
          if (prevKind !== 'none' || this.auth.kind !== 'none') continue;
        }
      }
      if (res.status === 401) {
        res.stream?.destroy();
        throw this.auth.failure(res, spec.what);
      }
      if (spec.retry !== false && isRetriableStatus(res.status) && n < this.retries) {
        res.stream?.destroy();
        await sleep(backoffDelay(n, this.retryBaseMs, headerValue(res.headers['retry-after'])));
        continue;
      }
      if (!spec.expect.includes(res.status)) {
        if (res.stream)
          res.body = await readBody(res.stream, 64 * 1024).catch(() => Buffer.alloc(0));
        const err = this.statusError(res, spec.what);
        throw spec.retry === false ? err : retriesSpent(err);
      }
      return res;
    }
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
      REDIRECTS.includes(res.status) &&
      res.headers.location &&
      hops++ < MAX_REDIRECTS
    ) {
      res.stream?.destroy();
      const next = new URL(res.headers.location, res.url);
      const h = { ...headers };
      if (next.origin !== res.url.origin) delete h.authorization;
      res = await this.http.send(next, spec.method, h, undefined, spec.stream, spec.maxBody);
    }
    if (REDIRECTS.includes(res.status) && res.headers.location && hops > MAX_REDIRECTS) {
      res.stream?.destroy();
      throw new RegistryError(
        'UNAVAILABLE',
        `${this.registry}: ${spec.what}: redirected more than ${MAX_REDIRECTS} times (a redirect loop?)`,
        res.status,
      );
    }
    return res;
  }
}
