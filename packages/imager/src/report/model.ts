import {
  BaseTemplate,
  configPlatform,
  DebianPackage,
  Digest,
  Exclusion,
  formatPlatform,
} from '@strata/oci';
import { parseDeb822 } from '@strata/debian';
import { compareImages, DiffReport, DiffSide, load, Loaded, readTree } from '../diff';
import type { FileTree } from '../tree';

/** Where dpkg keeps what is installed: its Installed-Size fields size the package table. */
export const DPKG_STATUS = 'var/lib/dpkg/status';

/**
 * One node of the size tree: a name, the bytes of file data under it, and its children (only
 * for a directory). A node that stands for several small entries of one directory, lumped
 * together, has `more`, how many.
 */
export interface SizeNode {
  n: string;
  s: number;
  c?: SizeNode[];
  more?: number;
}

export interface TreeLimits {
  /** Entries smaller than this share of the whole tree are lumped together. */
  minShare: number;
  /** At most this many children per directory, the largest; the rest are lumped together. */
  maxChildren: number;
}

/** Small enough for the page to stay small, fine enough to find where the megabytes go. */
export const DEFAULT_LIMITS: TreeLimits = { minShare: 1 / 4000, maxChildren: 60 };

export interface ReportLayer {
  index: number;
  digest: Digest;
  /** Bytes of the compressed blob, as the manifest lists it. */
  size: number;
  mediaType: string;
  /** The instruction that made it (the metadata's record, else the config history). */
  createdBy: string;
  packagesAdded: number;
  packagesRemoved: number;
}

export interface ReportPackage {
  name: string;
  version: string;
  architecture: string;
  source: string;
  /** The package's licences as an SPDX expression (from its SBOM), when the report was given them. */
  licence?: string;
  /** Installed-Size from the dpkg status, in bytes (dpkg records KiB). */
  size?: number;
  /** The last layer that added or changed it. */
  layer?: number;
}

/** Everything the page shows, as it goes into the page's JSON. */
export interface ReportData {
  generated: string;
  image: {
    ref: string;
    digest: Digest;
    platform: string;
    /** All platforms of the multi-platform template the image was chosen from. */
    platforms?: string[];
    name?: string;
    created?: string;
    features: string[];
    distribution?: string;
    baseChain: BaseTemplate[];
    exclusions: Exclusion[];
    labels: Record<string, string>;
  };
  layers: ReportLayer[];
  /** The flattened tree by size, the root first (named by the image's ref). */
  tree: SizeNode;
  packages: ReportPackage[];
  /** With `against`: what changed from it to the image (see MAX_FILES). */
  diff?: DiffReport & { filesOmitted?: { added: number; removed: number; changed: number } };
}

/** Files listed per kind of change; a diff with more says how many it left out. */
export const MAX_FILES = 2000;

function trimDiff(d: DiffReport): NonNullable<ReportData['diff']> {
  const f = d.files;
  const over = (n: number) => Math.max(0, n - MAX_FILES);
  if (![f.added, f.removed, f.changed].some((l) => l.length > MAX_FILES)) return d;
  return {
    ...d,
    files: {
      added: f.added.slice(0, MAX_FILES),
      removed: f.removed.slice(0, MAX_FILES),
      changed: f.changed.slice(0, MAX_FILES),
    },
    filesOmitted: {
      added: over(f.added.length),
      removed: over(f.removed.length),
      changed: over(f.changed.length),
    },
  };
}

export interface ReportOptions {
  /** The image to compare against, as `strata diff <against> <image>`. */
  against?: DiffSide;
  /** Directories of the diff's size table are summed down to this depth. Default 2. */
  depth?: number;
  limits?: TreeLimits;
  /** The date the report says it was made (default now). */
  now?: Date;
  /** The platforms of the template the image was chosen from, when it has several. */
  platforms?: string[];
  /** Each package's licences (an SPDX expression), keyed `name:architecture=version`. */
  licences?: ReadonlyMap<string, string>;
}

/**
 * Read what a report shows of `side`: its metadata and layers, and its flattened tree (streamed
 * once, as `strata diff` reads it; with `against`, through the diff itself, which reads the
 * layers both share once).
 */
export async function reportData(side: DiffSide, opts: ReportOptions = {}): Promise<ReportData> {
  const capture = new Set([DPKG_STATUS]);
  let loaded: Loaded;
  let tree: FileTree;
  let diff: DiffReport | undefined;
  if (opts.against !== undefined) {
    const r = await compareImages(opts.against, side, { depth: opts.depth ?? 2, capture });
    loaded = r.loaded[1];
    tree = r.trees[1];
    diff = r.report;
  } else {
    loaded = await load(side);
    tree = await readTree(loaded.layers, capture);
  }
  const meta = loaded.meta;
  const history = (loaded.config.history ?? []).filter((h) => !h.empty_layer);
  const layers = loaded.layers.map((l, i): ReportLayer => {
    const record = meta?.layers.find((r) => r.diffId === l.diffId);
    return {
      index: i,
      digest: l.descriptor.digest,
      size: l.descriptor.size,
      mediaType: l.descriptor.mediaType,
      createdBy: record?.createdBy ?? history[i]?.created_by ?? '',
      packagesAdded: record?.packagesAdded?.length ?? 0,
      packagesRemoved: record?.packagesRemoved?.length ?? 0,
    };
  });
  const status = tree.content(DPKG_STATUS);
  return {
    generated: (opts.now ?? new Date()).toISOString(),
    image: {
      ref: side.ref,
      digest: loaded.digest,
      platform: formatPlatform(configPlatform(loaded.config)),
      ...(opts.platforms && opts.platforms.length > 1 ? { platforms: opts.platforms } : {}),
      ...(meta ? { name: meta.name, created: meta.created } : {}),
      ...(meta === undefined && loaded.config.created ? { created: loaded.config.created } : {}),
      features: meta?.features ?? [],
      ...(meta?.distribution.prettyName ? { distribution: meta.distribution.prettyName } : {}),
      baseChain: meta?.baseChain ?? [],
      exclusions: meta?.exclusions ?? [],
      labels: meta?.labels ?? loaded.config.config?.Labels ?? {},
    },
    layers,
    tree: sizeTree(tree, side.ref, opts.limits ?? DEFAULT_LIMITS),
    packages: packageRows(
      meta?.packages ?? [],
      meta?.layers.map((r) => loaded.layers.findIndex((l) => l.diffId === r.diffId)) ?? [],
      meta?.layers.map((r) => r.packagesAdded ?? []) ?? [],
      status === undefined ? '' : status.toString('utf8'),
      opts.licences,
    ),
    ...(diff ? { diff: trimDiff(diff) } : {}),
  };
}

interface Dir {
  size: number;
  kids: Map<string, Dir>;
  file: boolean;
}

/**
 * The tree by bytes of file data (a hardlinked file counts once, where its data is), with the
 * small entries of each directory lumped into one node (see TreeLimits), so that the page's
 * data stays small whatever the image holds.
 */
export function sizeTree(tree: FileTree, rootName: string, limits: TreeLimits): SizeNode {
  const root: Dir = { size: 0, kids: new Map(), file: false };
  for (const [p, node] of tree.entries()) {
    if (node.type !== 'file' || node.hardlink || node.size === 0) continue;
    let d = root;
    d.size += node.size;
    const parts = p.split('/');
    parts.forEach((part, i) => {
      let k = d.kids.get(part);
      if (k === undefined) d.kids.set(part, (k = { size: 0, kids: new Map(), file: false }));
      k.size += node.size;
      if (i === parts.length - 1) k.file = true;
      d = k;
    });
  }
  const min = root.size * limits.minShare;
  const out = (name: string, d: Dir): SizeNode => {
    if (d.file) return { n: name, s: d.size };
    const kids = [...d.kids].sort((x, y) => y[1].size - x[1].size || (x[0] < y[0] ? -1 : 1));
    const keep = kids.filter(([, k], i) => i < limits.maxChildren && k.size >= min);
    const rest = kids.slice(keep.length);
    const c = keep.map(([n, k]) => out(n, k));
    if (rest.length > 0) {
      const s = rest.reduce((t, [, k]) => t + k.size, 0);
      c.push({ n: `(${rest.length} more)`, s, more: rest.length });
    }
    return { n: name, s: d.size, c };
  };
  return out(rootName, root);
}

/**
 * The package table: the metadata's packages, each with its Installed-Size from the dpkg status
 * and the last layer whose record says it added (or changed) it.
 */
export function packageRows(
  packages: readonly DebianPackage[],
  layerOfRecord: readonly number[],
  addedByRecord: readonly string[][],
  dpkgStatus: string,
  licences?: ReadonlyMap<string, string>,
): ReportPackage[] {
  const sizes = new Map<string, number>();
  for (const p of parseDeb822(dpkgStatus)) {
    const kib = Number(p.get('installed-size'));
    const name = p.get('package');
    if (name !== undefined && Number.isFinite(kib))
      sizes.set(`${name}:${p.get('architecture') ?? 'all'}`, kib * 1024);
  }
  const addedIn = new Map<string, number>();
  addedByRecord.forEach((added, r) => {
    const layer = layerOfRecord[r];
    if (layer === undefined || layer < 0) return;
    for (const a of added) addedIn.set(a, Math.max(layer, addedIn.get(a) ?? -1));
  });
  return packages.map((p): ReportPackage => {
    const size = sizes.get(`${p.name}:${p.architecture}`);
    const layer = addedIn.get(`${p.name}=${p.version}`);
    const licence = licences?.get(`${p.name}:${p.architecture}=${p.version}`);
    return {
      name: p.name,
      version: p.version,
      architecture: p.architecture,
      source: p.sourceVersion ? `${p.source} (${p.sourceVersion})` : p.source,
      ...(typeof licence === 'string' ? { licence } : {}),
      ...(size !== undefined ? { size } : {}),
      ...(layer !== undefined ? { layer } : {}),
    };
  });
}
