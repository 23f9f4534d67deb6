import type { DebianPackage, Distribution } from '@strata/oci';
import { readInRoot } from './rootfs';

/** Split a deb822 file (dpkg status) into paragraphs of fields; continuation lines are joined. */
export function parseDeb822(text: string): Array<Map<string, string>> {
  const out: Array<Map<string, string>> = [];
  let cur = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (cur.size > 0) out.push(cur);
      cur = new Map();
      last = undefined;
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
      cur.set(last, `${cur.get(last) ?? ''}\n${line.slice(1)}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).toLowerCase();
    cur.set(last, line.slice(colon + 1).trim());
  }
  if (cur.size > 0) out.push(cur);
  return out;
}

/** Installed packages from a dpkg status file, sorted by name then architecture. */
export function parseDpkgStatus(text: string): DebianPackage[] {
  const pkgs: DebianPackage[] = [];
  for (const p of parseDeb822(text)) {
    const name = p.get('package');
    const status = p.get('status')?.split(/\s+/);
    const version = p.get('version');
    if (!name || !version || status?.[2] !== 'installed') continue;
    const pkg: DebianPackage = {
      name,
      version,
      architecture: p.get('architecture') ?? 'all',
      source: name,
    };
    const src = p.get('source');
    if (src) {
      const m = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(src);
      if (m) {
        pkg.source = m[1] as string;
        if (m[2] !== undefined && m[2] !== version) pkg.sourceVersion = m[2];
      }
    }
    pkgs.push(pkg);
  }
  return pkgs.sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : a.architecture < b.architecture ? -1 : 1,
  );
}

/** Parse os-release (shell-style KEY=value, optionally quoted). */
export function parseOsRelease(text: string): Distribution {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2] as string;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) {
      v = v.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    }
    kv.set(m[1] as string, v);
  }
  const d: Distribution = {};
  const id = kv.get('ID');
  const versionId = kv.get('VERSION_ID');
  const codename = kv.get('VERSION_CODENAME');
  const pretty = kv.get('PRETTY_NAME');
  if (id) d.id = id;
  if (versionId) d.versionId = versionId;
  if (codename) d.versionCodename = codename;
  if (pretty) d.prettyName = pretty;
  return d;
}

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
