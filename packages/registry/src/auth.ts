import type { Credentials } from './auth-config';
import { Challenge, parseChallenges } from './challenge';
import { RegistryAuthError, describeErrors, parseDistributionErrors } from './errors';
import { HttpConnection, Response } from './http';
import { RetryPolicy, retriesSpent, withRetries } from './retry';

/** How a registry wants requests authorised, as its last challenge said. */
export type AuthScheme =
  { kind: 'none' } | { kind: 'basic' } | { kind: 'bearer'; realm: string; service?: string };

/**
 * The auth handshake with one registry: the scheme learnt from its `WWW-Authenticate`
 * challenges, basic credentials, and bearer tokens from the challenge's token service, one per
 * set of scopes (fetched once, shared by concurrent requests). Credentials never appear in errors.
 */
export class RegistryAuth {
  private scheme: AuthScheme = { kind: 'none' };
  private readonly tokens = new Map<string, Promise<string>>();

  constructor(
    private readonly registry: string,
    private readonly credentials: Credentials | undefined,
    private readonly http: HttpConnection,
    private readonly policy: RetryPolicy,
  ) {}

  /** The scheme in use: `none` until a challenge taught another. */
  get kind(): AuthScheme['kind'] {
    return this.scheme.kind;
  }

  /** Forget the tokens fetched so far (a new challenge may want other ones). */
  clearTokens(): void {
    this.tokens.clear();
  }

  /** Learn the scheme from a challenge (`WWW-Authenticate`); the challenge it took, if any. */
  learn(header: string | string[] | undefined): Challenge | undefined {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer && bearer.params.realm) {
      this.scheme = {
        kind: 'bearer',
        realm: bearer.params.realm,
        ...(bearer.params.service ? { service: bearer.params.service } : {}),
      };
      return bearer;
    }
    if (basic) {
      this.scheme = { kind: 'basic' };
      return basic;
    }
    return undefined;
  }

  private basicHeader(): string | undefined {
    const c = this.credentials;
    if (c?.username === undefined || c.password === undefined) return undefined;
    return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
  }

  /** The Authorization header for a request that needs `scopes`, if the scheme wants one. */
  async authorization(scopes: readonly string[]): Promise<string | undefined> {
    if (this.credentials?.registryToken) return `Bearer ${this.credentials.registryToken}`;
    switch (this.scheme.kind) {
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
          t = this.fetchToken(this.scheme, scopes);
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
    const creds = this.credentials;
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
      res = await withRetries(this.policy, () =>
        this.http.send(
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
      res = await withRetries(this.policy, () => this.http.send(url, 'GET', headers));
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
      // Retried above already (withRetries): the request that needed the token must not retry it.
      throw retriesSpent(
        new RegistryAuthError(
          `${this.registry}: token service ${realm.host} answered HTTP ${res.status}`,
          res.status,
        ),
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

  /** The error for a request the registry refused with 401 after the handshake. */
  failure(res: Response, what: string): RegistryAuthError {
    const errors = parseDistributionErrors(res.body);
    const detail = describeErrors(errors);
    const who = this.credentials ? 'authentication failed' : 'authentication required';
    return new RegistryAuthError(
      `${this.registry}: ${who} (${what}: HTTP 401${detail ? ` ${detail}` : ''})`,
      401,
      {
        hint: this.credentials
          ? `check the username and password, or run \`strata login ${this.registry}\``
          : `run \`strata login ${this.registry}\``,
      },
    );
  }
}
