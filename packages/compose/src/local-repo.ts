import { createReadStream, promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { flatRelease, packagesIndex, parseDeb822, RepoPackage } from '@strata/debian';
import { writeFileAtomic } from '@strata/store';
import { debControl } from '@strata/tools';
import { linkOrCopy } from './apt-state';

/** What {@link writeDebsRepo} wrote: each package by name, version and architecture. */
export interface RepoContents {
  dir: string;
  packages: Array<{ name: string; version: string; architecture: string; filename: string }>;
  /** sha256 of the Release file: the repository's state, for cache keys and apt's lists. */
  release: string;
}

async function hashes(file: string): Promise<{ size: number; md5: string; sha256: string }> {
  const md5 = createHash('md5');
  const sha = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    md5.update(chunk as Buffer);
    sha.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, md5: md5.digest('hex'), sha256: sha.digest('hex') };
}

/**
 * Make `dir` a flat apt repository of `debs` (paths of .deb files): the files, a `Packages`
 * index and a `Release`, which plain apt uses as `deb [trusted=yes] file:DIR ./`. The same debs
 * and date make the same files, byte for byte.
 */
export async function writeDebsRepo(
  dir: string,
  debs: readonly string[],
  opts: { date: Date },
): Promise<RepoContents> {
  await fsp.mkdir(dir, { recursive: true });
  const pkgs: RepoPackage[] = [];
  const packages: RepoContents['packages'] = [];
  const architectures = new Set<string>();
  for (const deb of debs) {
    const filename = path.basename(deb);
    const target = path.join(dir, filename);
    if (path.resolve(deb) !== path.resolve(target)) {
      await fsp.rm(target, { force: true });
      await linkOrCopy(deb, target);
    }
    const control = await debControl(target);
    const fields = parseDeb822(control)[0] ?? new Map<string, string>();
    const architecture = fields.get('architecture') ?? 'all';
    architectures.add(architecture);
    packages.push({
      name: fields.get('package') ?? '',
      version: fields.get('version') ?? '',
      architecture,
      filename,
    });
    pkgs.push({ control, filename, ...(await hashes(target)) });
  }
  const index = packagesIndex(pkgs);
  await writeFileAtomic(path.join(dir, 'Packages'), index);
  const h = (algo: string) => createHash(algo).update(index).digest('hex');
  const release = flatRelease(
    [{ path: 'Packages', size: Buffer.byteLength(index), md5: h('md5'), sha256: h('sha256') }],
    { date: opts.date, architectures: [...architectures] },
  );
  await writeFileAtomic(path.join(dir, 'Release'), release);
  return { dir, packages, release: createHash('sha256').update(release).digest('hex') };
}
