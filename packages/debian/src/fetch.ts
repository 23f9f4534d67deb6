/**
 * The one place this package reaches the network: reading a file of an apt repository
 * over http(s), or from a `file:` URI.
 */
import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type * as Https from 'node:https';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, StrataError } from '@strata/oci';

/** node:https (and node:tls under it), loaded for the first https source only. */
function loadHttps(): typeof Https {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('node:https') as typeof Https;
}

/** The `Authorization` header for a URL, if the caller has credentials for it. */
export type Authorizer = (url: string) => string | undefined;

/**
 * GET `url`, following redirects: the response body as a stream, or undefined when the server
 * says the file is not there (404, 403, 410). The timeout covers the wait for each chunk.
 */
function openUrl(
  url: string,
  auth: Authorizer | undefined,
  timeoutMs = 15000,
  redirects = 5,
): Promise<http.IncomingMessage | undefined> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? loadHttps() : http;
    // Asked for each URL, a redirect included: credentials go only where they are meant for.
    const authorization = auth?.(url);
    const headers = authorization !== undefined ? { authorization } : undefined;
    const req = mod.get(url, { timeout: timeoutMs, headers }, (res) => {
      const code = res.statusCode ?? 0;
      if (code >= 300 && code < 400 && res.headers.location && redirects > 0) {
        res.resume();
        resolve(
          openUrl(new URL(res.headers.location, url).toString(), auth, timeoutMs, redirects - 1),
        );
        return;
      }
      if (code === 401) {
        res.resume();
        reject(
          new StrataError(
            'UNAVAILABLE',
            `GET ${url}: HTTP 401: the repository wants credentials${authorization !== undefined ? ', and refused the ones given' : ''}`,
            {
              hint: "give apt's auth.conf for it: --secret id=apt-auth,src=auth.conf",
            },
          ),
        );
        return;
      }
      if (code === 404 || code === 403 || code === 410) {
        res.resume();
        resolve(undefined);
        return;
      }
      if (code !== 200) {
        res.resume();
        reject(new StrataError('UNAVAILABLE', `GET ${url}: HTTP ${code}`));
        return;
      }
      resolve(res);
    });
    req.on('timeout', () => req.destroy(new StrataError('UNAVAILABLE', `GET ${url}: timed out`)));
    req.on('error', (e) =>
      reject(
        e instanceof StrataError ? e : new StrataError('UNAVAILABLE', `GET ${url}: ${e.message}`),
      ),
    );
  });
}

async function fetchUrl(url: string, auth: Authorizer | undefined): Promise<Buffer | undefined> {
  const res = await openUrl(url, auth);
  if (res === undefined) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function localPath(uri: string, rel: string): string {
  return path.join(decodeURIComponent(uri.replace(/^file:(\/\/)?/, '/')), rel);
}

function requireHttp(uri: string): void {
  if (!/^https?:/.test(uri))
    throw new InvalidArgumentError(`apt source ${uri}: only http, https and file URIs`);
}

export async function readIndexFile(
  uri: string,
  rel: string,
  auth?: Authorizer,
): Promise<Buffer | undefined> {
  if (uri.startsWith('file:')) {
    try {
      return await fsp.readFile(localPath(uri, rel));
    } catch {
      return undefined;
    }
  }
  requireHttp(uri);
  return fetchUrl(`${uri}/${rel}`, auth);
}

/**
 * A file of an apt repository as a stream (for files too large to hold, such as source
 * tarballs), or undefined when the repository does not have it. Unverified: the caller checks
 * what it reads against the digest an index gave it.
 */
export async function openRepoFile(
  uri: string,
  rel: string,
  auth?: Authorizer,
): Promise<Readable | undefined> {
  if (uri.startsWith('file:')) {
    try {
      const fh = await fsp.open(localPath(uri, rel), 'r');
      return fh.createReadStream();
    } catch {
      return undefined;
    }
  }
  requireHttp(uri);
  return openUrl(`${uri}/${rel}`, auth);
}
