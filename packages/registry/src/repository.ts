import { Digest, InvalidArgumentError } from '@strata/oci';
import { headerValue } from './http';
import type { Transport } from './transport';

export type Action = 'pull' | 'push';

/** Per-blob progress: `bytes` of `size` moved so far. */
export type ProgressFn = (bytes: number) => void;

/**
 * One repository on one registry, as the upload, download and manifest requests need it: the
 * transport to its registry and the token scope its requests ask for. A `RegistryClient` is one.
 */
export interface Repo {
  readonly transport: Transport;
  readonly registry: string;
  readonly repository: string;
  /** The token scope of this repository's requests, e.g. `repository:x:pull,push`. */
  readonly scope: string;
}

export function checkRepository(repo: string): void {
  if (
    !/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(
      repo,
    )
  ) {
    throw new InvalidArgumentError(`invalid repository name ${JSON.stringify(repo)}`);
  }
}

export function blobUrl(r: Repo, digest: Digest): string {
  return `/v2/${r.repository}/blobs/${digest}`;
}

/** HEAD a blob: its size when the repository has it, undefined otherwise. */
export async function hasBlob(r: Repo, digest: Digest): Promise<number | undefined> {
  const res = await r.transport.request({
    method: 'HEAD',
    url: blobUrl(r, digest),
    scopes: [r.scope],
    expect: [200, 404],
    what: `HEAD blob ${digest}`,
  });
  if (res.status === 404) return undefined;
  const len = Number(headerValue(res.headers['content-length']));
  return Number.isFinite(len) ? len : -1;
}
