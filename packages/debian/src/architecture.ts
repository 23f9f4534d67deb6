/**
 * Debian architectures: which one a rootfs is, and its OCI platform.
 */
import type { DebianPackage } from '@strata/oci';

/** The Debian architecture of a rootfs: dpkg's own, else the most common package architecture. */
export function debianArchitecture(
  pkgs: readonly DebianPackage[],
  dpkgArch?: string,
): string | undefined {
  if (dpkgArch) return dpkgArch;
  const dpkg = pkgs.find((p) => p.name === 'dpkg');
  if (dpkg && dpkg.architecture !== 'all') return dpkg.architecture;
  const counts = new Map<string, number>();
  for (const p of pkgs) {
    if (p.architecture !== 'all') counts.set(p.architecture, (counts.get(p.architecture) ?? 0) + 1);
  }
  let best: string | undefined;
  for (const [a, n] of counts) if (best === undefined || n > (counts.get(best) ?? 0)) best = a;
  return best;
}

/** OCI platform for a Debian architecture. */
export function ociPlatform(debArch: string): { architecture: string; variant?: string } {
  switch (debArch) {
    case 'amd64':
      return { architecture: 'amd64' };
    case 'arm64':
      return { architecture: 'arm64', variant: 'v8' };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v5' };
    case 'i386':
      return { architecture: '386' };
    case 'ppc64el':
      return { architecture: 'ppc64le' };
    case 'mips64el':
      return { architecture: 'mips64le' };
    default:
      return { architecture: debArch };
  }
}

/**
 * The Debian architecture of an OCI platform: the inverse of {@link ociPlatform}. `arm` without a
 * variant is armhf (v7), as docker takes `linux/arm` to mean `linux/arm/v7`.
 */
export function debianArchitectureOf(p: { architecture: string; variant?: string }): string {
  switch (p.architecture) {
    case 'amd64':
      return 'amd64';
    case 'arm64':
      return 'arm64';
    case 'arm':
      return p.variant === 'v5' || p.variant === 'v6' ? 'armel' : 'armhf';
    case '386':
      return 'i386';
    case 'ppc64le':
      return 'ppc64el';
    case 'mips64le':
      return 'mips64el';
    default:
      return p.architecture;
  }
}

/** The full OCI platform of a Debian architecture: `linux`, its architecture and variant. */
export function linuxPlatform(debArch: string): {
  os: string;
  architecture: string;
  variant?: string;
} {
  return { os: 'linux', ...ociPlatform(debArch) };
}

/** Other tools' names of Debian architectures: uname's, docker's, GNU triplets'. */
const NOT_DEBIAN: Record<string, string> = {
  aarch64: 'arm64',
  x86_64: 'amd64',
  'x86-64': 'amd64',
  armv7l: 'armhf',
  armv7: 'armhf',
  arm: 'armhf',
  '386': 'i386',
  i686: 'i386',
  x86: 'i386',
  ppc64le: 'ppc64el',
  mips64le: 'mips64el',
};

/**
 * The Debian architecture meant by `name` when it is another tool's spelling of one (`aarch64`
 * for arm64), else undefined: a build for `aarch64` would look for packages Debian has none of.
 */
export function debianArchitectureFor(name: string): string | undefined {
  return Object.hasOwn(NOT_DEBIAN, name) ? NOT_DEBIAN[name] : undefined;
}
