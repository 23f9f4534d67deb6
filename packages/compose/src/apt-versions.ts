/** The package versions the current apt indices offer, for `strata check`'s newer-version report. */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ToolFailedError } from '@strata/oci';
import { AptSources, parsePackagesIndex } from '@strata/debian';

function execApt(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('apt-get', args, { maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const lines = String(stderr).trim().split('\n');
      reject(
        new ToolFailedError('apt-get', `update failed: ${lines[lines.length - 1] ?? err.message}`),
      );
    });
  });
}

/**
 * Download the Packages indices of `sources` with the host's apt into `dir` (kept between runs,
 * so a second check only revalidates) and return the highest version of every package.
 */
export async function availableVersions(
  sources: AptSources,
  architecture: string,
  dir: string,
): Promise<Map<string, string>> {
  const lists = path.join(dir, 'lists');
  await fsp.mkdir(path.join(lists, 'partial'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'cache'), { recursive: true });
  const sourcesFile = path.join(dir, 'sources.list');
  await fsp.writeFile(sourcesFile, sources.text);
  await execApt([
    'update',
    '-q',
    '-o',
    `Dir::Etc::SourceList=${sourcesFile}`,
    '-o',
    'Dir::Etc::SourceParts=/dev/null',
    '-o',
    `Dir::State::Lists=${lists}`,
    '-o',
    'Dir::State::Status=/dev/null',
    '-o',
    `Dir::Cache=${path.join(dir, 'cache')}`,
    '-o',
    'Dir::Cache::pkgcache=',
    '-o',
    'Dir::Cache::srcpkgcache=',
    '-o',
    `APT::Architecture=${architecture}`,
    '-o',
    `APT::Architectures=${architecture}`,
    '-o',
    'APT::Sandbox::User=root',
    '-o',
    'Acquire::Languages=none',
    '-o',
    'Acquire::GzipIndexes=false',
  ]);
  const versions = new Map<string, string>();
  for (const f of (await fsp.readdir(lists)).sort()) {
    if (!f.endsWith('_Packages')) continue;
    parsePackagesIndex(await fsp.readFile(path.join(lists, f), 'utf8'), versions);
  }
  return versions;
}
