import type { DebianPackage, Distribution } from '@strata/oci';
import { debianArchitecture, parseDpkgStatus, parseOsRelease } from '@strata/debian';
import { readInRoot } from './rootfs';

export interface RootfsFacts {
  packages: DebianPackage[];
  distribution: Distribution;
  /** Debian architecture, when it can be told. */
  architecture: string | undefined;
}

/** Read what a Debian rootfs says about itself. */
export async function readRootfsFacts(root: string): Promise<RootfsFacts> {
  const status = await readInRoot(root, 'var/lib/dpkg/status');
  const packages = status === undefined ? [] : parseDpkgStatus(status);
  const osr =
    (await readInRoot(root, 'etc/os-release')) ?? (await readInRoot(root, 'usr/lib/os-release'));
  const distribution = osr === undefined ? {} : parseOsRelease(osr);
  const archFile = (await readInRoot(root, 'var/lib/dpkg/arch'))?.split('\n')[0]?.trim();
  return {
    packages,
    distribution,
    architecture: debianArchitecture(packages, archFile || undefined),
  };
}
