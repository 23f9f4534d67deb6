/**
 * Release files: the date and the state of the mirror an apt source resolves to.
 */
import { createHash } from 'node:crypto';
import { Digest, StrataError, sha256 } from '@strata/oci';
import { Authorizer, readIndexFile } from './fetch';
import type { AptSources } from './sources';

/** What the apt sources resolve to right now. */
export interface IndexState {
  /** A digest over each suite's InRelease (or Release, or for flat repositories Packages) file. */
  digest: Digest;
  /**
   * The newest `Date:` of those Release files, in seconds since the epoch: the date of the mirror
   * state. Undefined when no file has one (a flat repository's Packages file has none).
   */
  date?: number;
  /**
   * The sha256 (hex) of each suite's InRelease or Release file, when every suite has one (a flat
   * repository's Packages file is not a Release file). apt keeps these files in its lists only
   * with the indices they sign, so lists holding all of them are at this state.
   */
  releases?: string[];
}

/** The `Date:` field of a Release or InRelease file, in seconds since the epoch. */
export function releaseDate(text: string): number | undefined {
  const m = /^Date:[ \t]*(.+?)[ \t]*$/m.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(m[1] as string);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/**
 * The state of the apt indices the sources resolve to. Cheap: a few small requests, no apt run.
 * A changed mirror gives a different digest.
 */
export async function indexState(sources: AptSources, auth?: Authorizer): Promise<IndexState> {
  const parts = await Promise.all(
    sources.entries.map(async (e) => {
      const base = e.suite.endsWith('/') ? e.suite : `dists/${e.suite}/`;
      for (const name of ['InRelease', 'Release', 'Packages']) {
        const data = await readIndexFile(e.uri, `${base}${name}`, auth);
        if (data !== undefined) {
          return {
            line: `${e.uri} ${e.suite} ${name} ${createHash('sha256').update(data).digest('hex')}`,
            date: name === 'Packages' ? undefined : releaseDate(data.toString('utf8')),
            release:
              name === 'Packages' ? undefined : createHash('sha256').update(data).digest('hex'),
          };
        }
      }
      throw new StrataError(
        'UNAVAILABLE',
        `apt source ${e.uri} ${e.suite}: no InRelease, Release or Packages file`,
      );
    }),
  );
  const dates = parts.map((p) => p.date).filter((d): d is number => d !== undefined);
  const releases = parts.map((p) => p.release).filter((r): r is string => r !== undefined);
  return {
    digest: sha256(parts.map((p) => p.line).join('\n')),
    ...(dates.length > 0 ? { date: Math.max(...dates) } : {}),
    ...(releases.length === parts.length && releases.length > 0 ? { releases } : {}),
  };
}
