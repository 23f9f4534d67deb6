/** The package versions the current apt indices offer, for `strata check`'s newer-version report. */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { StrataError, ToolFailedError } from '@strata/oci';
import { AptSources, parsePackagesIndex } from '@strata/debian';
import { aptGetUpdate } from '@strata/tools';

/**
 * Download the Packages indices of `sources` with the host's apt into `dir` (kept between runs,
 * so a second check only revalidates) and return the highest version of every package.
 */
export async function availableVersions(
  sources: AptSources,
  architecture: string,
  dir: string,
  /** apt's auth.conf for a private repository (the `apt-auth` secret). */
  auth?: Buffer,
): Promise<Map<string, string>> {
  const lists = path.join(dir, 'lists');
  await fsp.mkdir(path.join(lists, 'partial'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'cache'), { recursive: true });
  const sourcesFile = path.join(dir, 'sources.list');
  await fsp.writeFile(sourcesFile, sources.text);
  const authDir = path.join(dir, 'auth');
  if (auth !== undefined) await fsp.mkdir(authDir, { recursive: true });
  await aptGetUpdate(
    [
      `Dir::Etc::SourceList=${sourcesFile}`,
      'Dir::Etc::SourceParts=/dev/null',
      `Dir::State::Lists=${lists}`,
      'Dir::State::Status=/dev/null',
      `Dir::Cache=${path.join(dir, 'cache')}`,
      'Dir::Cache::pkgcache=',
      'Dir::Cache::srcpkgcache=',
      `APT::Architecture=${architecture}`,
      `APT::Architectures=${architecture}`,
      'APT::Sandbox::User=root',
      'Acquire::Languages=none',
      'Acquire::GzipIndexes=false',
    ],
    auth !== undefined ? { conf: auth, dir: authDir } : undefined,
  ).catch((e: unknown) => {
    if (e instanceof ToolFailedError && /\b401\s+Unauthorized\b/.test(e.message))
      throw new StrataError('UNAVAILABLE', e.message, {
        cause: e,
        hint:
          auth === undefined
            ? "give apt's auth.conf for the repository: --secret id=apt-auth,src=auth.conf"
            : 'the repository refused the credentials of the apt-auth secret',
      });
    throw e;
  });
  const versions = new Map<string, string>();
  for (const f of (await fsp.readdir(lists)).sort()) {
    if (!f.endsWith('_Packages')) continue;
    parsePackagesIndex(await fsp.readFile(path.join(lists, f), 'utf8'), versions);
  }
  return versions;
}
