import { createHash } from 'node:crypto';
import type {
  BaseTemplate,
  DebianPackage,
  Digest,
  Distribution,
  ImageConfig,
  LayerRecord,
} from '@strata/oci';
import { parseDeb822, parseDpkgStatus, parseOsRelease } from '@strata/debian';
import { PackageLicense, packageLicense, unifyLicenseRefs } from './licenses';
import { RootfsFiles } from './rootfs';

/** One layer of the template, as an SBOM names it. */
export interface SbomLayer {
  index: number;
  /** Digest of the compressed blob, as the manifest lists it. */
  digest: Digest;
  diffId: Digest;
  createdBy?: string;
}

/** One installed Debian package, with everything an SBOM says about it. */
export interface SbomPackage extends DebianPackage {
  /** `pkg:deb/<distro id>/<name>@<version>?arch=<arch>&distro=<id>-<version>` (purl spec). */
  purl: string;
  license: PackageLicense;
  /**
   * The roll-up of dpkg's md5sums for the package (see filesChecksum), as hex sha256; undefined
   * when dpkg keeps no md5sums for it (a package without files, or one whose maintainer did
   * not ship them).
   */
  filesSha256?: string;
  /** How many files the md5sums list. */
  files: number;
  /** The layer that installed this version of the package, when the template says. */
  layer?: SbomLayer;
  /** dpkg's `Maintainer` (`Name <email>`): who supplies the package. */
  maintainer?: Maintainer;
  /**
   * Set for a package that is not the distribution's: `context-deb`, installed from a .deb file
   * of the build context (INSTALL ./x.deb); `debuild`, built by a DEBUILD step.
   */
  origin?: 'context-deb' | 'debuild';
  /**
   * Set for a package that a later layer removed or replaced (`--all-layers`): a lower layer's
   * blob, which a push distributes, holds its files, but the flattened rootfs does not.
   */
  shadowed?: true;
}

/** What an SBOM says of a shadowed package. */
export const SHADOWED_NOTE =
  'removed or replaced by a later layer: its files are in the blob of the layer named, not in the flattened rootfs';

/** What an SBOM says of a package's origin. */
export const ORIGIN_NOTE = {
  'context-deb': 'installed from a local .deb in the build context, not from the distribution',
  debuild: 'built by a DEBUILD step of the build, not taken from the distribution',
} as const;

export interface Maintainer {
  name: string;
  email?: string;
  /**
   * Whether it is a team or a list rather than a person (`Debian Perl Group`, an address at
   * `lists.…`): SPDX's supplier is then an Organization, else a Person.
   */
  organization: boolean;
}

const TEAM = /\b(team|group|maintainers|project|packagers|developers|debian)\b/i;

/** A `Maintainer` field (`Name <email>`, RFC 822 style, as Debian Policy 5.6.2 has it). */
export function parseMaintainer(field: string | undefined): Maintainer | undefined {
  if (field === undefined) return undefined;
  const m = /^\s*([^<]*?)\s*(?:<([^>]*)>)?\s*$/.exec(field.replace(/\s+/g, ' '));
  const name = (m?.[1] ?? field).replace(/[()]/g, '').trim();
  const email = m?.[2]?.trim();
  if (name === '' && !email) return undefined;
  return {
    name: name || (email as string),
    ...(email ? { email } : {}),
    organization: TEAM.test(name) || /@lists\.|@alioth/i.test(email ?? ''),
  };
}

/** What an SBOM of one template (one platform) is made from. */
export interface Inventory {
  /** The template's name (metadata) or the reference it was named by. */
  name: string;
  /**
   * The reference the template was asked for by. The documents do not carry it: one template
   * gives one SBOM, whatever it was named by.
   */
  ref: string;
  /** Digest of the image manifest the SBOM describes (the SBOM's subject). */
  digest: Digest;
  /** `os/arch[/variant]`. */
  platform: string;
  /** RFC 3339: the template's build date, so that one template gives one SBOM. */
  created: string;
  distribution: Distribution;
  /** The template's ancestors, root first (metadata's baseChain). */
  baseChain: BaseTemplate[];
  layers: SbomLayer[];
  packages: SbomPackage[];
}

/**
 * The roll-up of a package's md5sums file: sha256 over its lines (`<md5>  <path>`, dpkg's
 * form, the path without a leading '/'), sorted by path, each ending in one newline. Two
 * packages with the same installed files give the same sum, whatever order dpkg wrote them in.
 */
export function filesChecksum(md5sums: string): { sha256: string; files: number } {
  const lines: Array<[string, string]> = [];
  for (const raw of md5sums.split('\n')) {
    const m = /^([0-9a-f]{32})\s+\/?(.+)$/.exec(raw.trim());
    if (m) lines.push([m[2] as string, `${m[1]}  ${m[2]}\n`]);
  }
  lines.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const h = createHash('sha256');
  for (const [, l] of lines) h.update(l);
  return { sha256: h.digest('hex'), files: lines.length };
}

/**
 * The purl of a Debian binary package (purl spec, type `deb`): the namespace is the
 * distribution's id, and name, version and qualifier values are percent-encoded as the spec
 * says (`+` is `%2B`, an epoch's `:` is `%3A`); qualifiers are sorted by key.
 */
export function debPurl(p: DebianPackage, distro: Distribution, local = false): string {
  if (local) {
    // No vendor namespace nor distro: scanners must not look it up as the distribution's.
    const n = encodeURIComponent(p.name);
    return `pkg:deb/${n}@${encodeURIComponent(p.version)}?arch=${encodeURIComponent(p.architecture)}`;
  }
  const id = (distro.id ?? 'debian').toLowerCase();
  const release = distro.versionId ?? distro.versionCodename;
  const q = [`arch=${encodeURIComponent(p.architecture)}`];
  if (release !== undefined) q.push(`distro=${encodeURIComponent(`${id}-${release}`)}`);
  const name = encodeURIComponent(p.name);
  return `pkg:deb/${encodeURIComponent(id)}/${name}@${encodeURIComponent(p.version)}?${q.join('&')}`;
}

/**
 * The layer that brought each package in: the topmost layer whose record lists it as added
 * (`name=version`), or else the layer that wrote its md5sums last.
 */
function layerOf(
  p: DebianPackage,
  records: readonly LayerRecord[] | undefined,
  layers: readonly SbomLayer[],
  md5Layer: number | undefined,
): SbomLayer | undefined {
  const key = `${p.name}=${p.version}`;
  if (records !== undefined) {
    for (let i = layers.length - 1; i >= 0; i--) {
      const l = layers[i] as SbomLayer;
      const r = records.find((x) => x.diffId === l.diffId);
      if (r?.packagesAdded?.includes(key)) return l;
    }
  }
  return md5Layer === undefined ? undefined : layers[md5Layer];
}

/** The template's facts for an SBOM, from its config (metadata) and its flattened files. */
export function inventory(
  src: {
    ref: string;
    digest: Digest;
    config: ImageConfig;
    layers: ReadonlyArray<{ digest: Digest }>;
  },
  files: RootfsFiles,
  opts: { allLayers?: boolean } = {},
): Inventory {
  const meta = src.config.strata;
  const diffIds = src.config.rootfs.diff_ids;
  const history = (src.config.history ?? []).filter((h) => !h.empty_layer);
  const layers: SbomLayer[] = src.layers.map((l, i) => {
    const createdBy = meta?.layers.find((r) => r.diffId === diffIds[i])?.createdBy;
    const by = createdBy ?? history[i]?.created_by;
    return {
      index: i,
      digest: l.digest,
      diffId: diffIds[i] as Digest,
      ...(by !== undefined ? { createdBy: by } : {}),
    };
  });
  const status = files.resolve('var/lib/dpkg/status')?.data?.toString('utf8') ?? '';
  const osRelease =
    files.resolve('etc/os-release')?.data ?? files.resolve('usr/lib/os-release')?.data;
  const distribution =
    osRelease !== undefined
      ? parseOsRelease(osRelease.toString('utf8'))
      : (meta?.distribution ?? {});
  const maintainers = new Map<string, string>();
  for (const para of parseDeb822(status)) {
    const m = para.get('maintainer');
    if (m !== undefined)
      maintainers.set(`${para.get('package')}:${para.get('architecture') ?? 'all'}`, m);
  }
  const fromContext = new Set((meta?.layers ?? []).flatMap((l) => l.localDebs ?? []));
  const debuilt = new Set([
    ...(meta?.debuilds ?? []).flatMap((d) => d.packages),
    ...(meta?.layers ?? []).flatMap((l) => l.ownDebs ?? []),
  ]);
  const originOf = (p: DebianPackage) => {
    const key = `${p.name}=${p.version}`;
    return fromContext.has(key) ? 'context-deb' : debuilt.has(key) ? 'debuild' : undefined;
  };
  const packages = parseDpkgStatus(status).map((p): SbomPackage => {
    const maintainer = parseMaintainer(maintainers.get(`${p.name}:${p.architecture}`));
    const origin = originOf(p);
    const md5 =
      files.get(`var/lib/dpkg/info/${p.name}:${p.architecture}.md5sums`) ??
      files.get(`var/lib/dpkg/info/${p.name}.md5sums`);
    const sum = md5?.data !== undefined ? filesChecksum(md5.data.toString('utf8')) : undefined;
    const copyright = files.resolve(`usr/share/doc/${p.name}/copyright`)?.data;
    const layer = layerOf(p, meta?.layers, layers, md5?.layer);
    return {
      ...p,
      purl: debPurl(p, distribution, origin !== undefined),
      license: packageLicense(p.name, copyright?.toString('utf8')),
      ...(sum !== undefined ? { filesSha256: sum.sha256 } : {}),
      files: sum?.files ?? 0,
      ...(layer !== undefined ? { layer } : {}),
      ...(maintainer !== undefined ? { maintainer } : {}),
      ...(origin !== undefined ? { origin } : {}),
    };
  });
  if (opts.allLayers) {
    const installed = new Set(packages.map((p) => p.name));
    for (const { layer: diffId, ...p } of meta?.shadowedPackages ?? []) {
      const rel = `usr/share/doc/${p.name}/copyright`;
      // A version that another replaced: the installed one's copyright file is the package's.
      const copyright = installed.has(p.name)
        ? files.resolve(rel)?.data
        : files.hiddenFile(rel)?.data;
      const layer = layers.find((l) => l.diffId === diffId);
      const origin = originOf(p);
      packages.push({
        ...p,
        purl: debPurl(p, distribution, origin !== undefined),
        license: packageLicense(p.name, copyright?.toString('utf8')),
        files: 0,
        ...(layer !== undefined ? { layer } : {}),
        ...(origin !== undefined ? { origin } : {}),
        shadowed: true,
      });
    }
  }
  unifyLicenseRefs(packages);
  const platform = [src.config.os, src.config.architecture, src.config.variant]
    .filter((x): x is string => typeof x === 'string' && x !== '')
    .join('/');
  return {
    name: meta?.name ?? src.ref,
    ref: src.ref,
    digest: src.digest,
    platform,
    created: meta?.created ?? src.config.created ?? new Date(0).toISOString(),
    distribution,
    baseChain: meta?.baseChain ?? [],
    layers,
    packages,
  };
}

/**
 * Each package's declared licence for the report, keyed `name:architecture=version`. A package
 * without a copyright file is left out: nothing is known of its licence (the SBOM says
 * NOASSERTION), and SPDX's NONE would claim that it has none.
 */
export function reportLicences(inv: Inventory): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of inv.packages)
    if (p.license.expression !== undefined)
      out.set(`${p.name}:${p.architecture}=${p.version}`, p.license.expression);
  return out;
}
