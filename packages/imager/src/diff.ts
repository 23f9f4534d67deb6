import type { Readable } from 'node:stream';
import {
  assertValid,
  BaseTemplate,
  configPlatform,
  DebianPackage,
  Descriptor,
  Digest,
  Exclusion,
  formatPlatform,
  Image,
  ImageConfig,
  TemplateMetadata,
  validateTemplateMetadata,
} from '@strata/oci';
import { compareDebianVersions } from '@strata/debian';
import type { EntryType } from '@strata/layer';
import { comparePaths } from './merge';
import { FileTree, readTrees, TarSource, TreeNode } from './tree';

/** One side of a diff: what it was named by, and the image it resolved to. */
export interface DiffSide {
  ref: string;
  image: Image;
}

export interface DiffOptions {
  /** Directories are summed down to this many path components. Default 1 (the top level). */
  depth?: number;
}

/** A path and what it holds (see TreeNode); `digest` only for files. */
export interface FileInfo {
  path: string;
  type: EntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  link?: string;
  digest?: Digest;
  device?: string;
}

export type FileChange = 'type' | 'content' | 'mode' | 'owner' | 'link' | 'device';

export interface ChangedFile {
  path: string;
  changes: FileChange[];
  old: FileInfo;
  new: FileInfo;
}

export interface ChangedPackage {
  name: string;
  architecture: string;
  old: string;
  new: string;
  direction: 'upgrade' | 'downgrade';
}

export interface SizeChange {
  path: string;
  old: number;
  new: number;
  delta: number;
}

export interface Changed<T> {
  old: T;
  new: T;
}

/** What `strata diff --json` prints (schemas/diff-report.schema.json). */
export interface DiffReport {
  a: { ref: string; digest: Digest; platform: string; name?: string };
  b: { ref: string; digest: Digest; platform: string; name?: string };
  identical: boolean;
  packages: { added: DebianPackage[]; removed: DebianPackage[]; changed: ChangedPackage[] };
  files: { added: FileInfo[]; removed: FileInfo[]; changed: ChangedFile[] };
  /** Bytes of file data; directories down to `depth` components whose size changed. */
  sizes: { depth: number; total: SizeChange; dirs: SizeChange[] };
  metadata: {
    name?: Changed<string | null>;
    /** The build dates, when they differ. */
    created?: Changed<string | null>;
    platform?: Changed<string>;
    features: { added: string[]; removed: string[] };
    exclusions: { added: Exclusion[]; removed: Exclusion[]; changed: Changed<Exclusion>[] };
    /** Present when the chains differ: both, the root base first. */
    baseChain?: Changed<BaseTemplate[]>;
    labels: {
      added: Record<string, string>;
      removed: Record<string, string>;
      changed: Record<string, Changed<string>>;
    };
    /** The image config's environment, by variable. */
    env: {
      added: Record<string, string>;
      removed: Record<string, string>;
      changed: Record<string, Changed<string>>;
    };
  };
}

/** What changed between two maps: added, removed and changed keys. */
function mapChanges(
  a: Record<string, string>,
  b: Record<string, string>,
): DiffReport['metadata']['labels'] {
  const out: DiffReport['metadata']['labels'] = { added: {}, removed: {}, changed: {} };
  for (const [k, v] of Object.entries(a)) {
    const w = b[k];
    if (w === undefined) out.removed[k] = v;
    else if (w !== v) out.changed[k] = { old: v, new: w };
  }
  for (const [k, w] of Object.entries(b)) if (a[k] === undefined) out.added[k] = w;
  return out;
}

/** `NAME=value` entries as a map (a later entry of one name wins, as docker reads Env). */
function envMap(env: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env ?? []) {
    const eq = e.indexOf('=');
    if (eq > 0) out[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return out;
}

/** One side read as far as its config: the metadata checked, the layers not yet opened. */
export interface Loaded {
  ref: string;
  digest: Digest;
  config: ImageConfig;
  meta: TemplateMetadata | undefined;
  layers: { diffId: Digest; descriptor: Descriptor; tar: { openTar: () => Promise<Readable> } }[];
}

export async function load(side: DiffSide): Promise<Loaded> {
  const [config, layers] = await Promise.all([side.image.config(), side.image.layers()]);
  const meta =
    config.strata === undefined
      ? undefined
      : assertValid(validateTemplateMetadata, config.strata, `template metadata of ${side.ref}`);
  return {
    ref: side.ref,
    digest: await side.image.digest(),
    config,
    meta,
    layers: layers.map((l, i) => ({
      diffId: config.rootfs.diff_ids[i] as Digest,
      descriptor: l.descriptor,
      tar: l,
    })),
  };
}

/**
 * Compare two images: their packages (from the template metadata), their flattened trees (read
 * from the layers as they stream, never unpacked; see FileTree), the sizes of their directories,
 * and their metadata. Two images with one manifest digest are identical without reading a layer.
 */
export async function diffImages(
  a: DiffSide,
  b: DiffSide,
  opts: DiffOptions = {},
): Promise<DiffReport> {
  return (await compareImages(a, b, opts)).report;
}

/**
 * diffImages, with the sides as loaded and the flattened trees it read (one object when both are
 * one image), for a caller that shows more of them than the differences: the files named in
 * `capture` keep their data.
 */
export async function compareImages(
  a: DiffSide,
  b: DiffSide,
  opts: DiffOptions & { capture?: ReadonlySet<string> } = {},
): Promise<{ report: DiffReport; trees: [FileTree, FileTree]; loaded: [Loaded, Loaded] }> {
  const depth = opts.depth ?? 1;
  const [la, lb] = await Promise.all([load(a), load(b)]);
  let files: DiffReport['files'] = { added: [], removed: [], changed: [] };
  let sizes: DiffReport['sizes'];
  let trees: [FileTree, FileTree];
  if (la.digest !== lb.digest) {
    trees = await readTrees(la.layers, lb.layers, opts.capture);
    files = compareTrees(...trees);
    sizes = compareSizes(...trees, depth);
  } else {
    // One image: only its sizes are wanted, not its files' digests.
    const t = await readTree(la.layers, opts.capture);
    trees = [t, t];
    sizes = compareSizes(t, t, depth);
  }
  const packages = comparePackages(la.meta?.packages ?? [], lb.meta?.packages ?? []);
  const metadata = compareMetadata(la, lb);
  const identical =
    files.added.length + files.removed.length + files.changed.length === 0 &&
    packages.added.length + packages.removed.length + packages.changed.length === 0 &&
    metadataSame(metadata);
  const side = (l: Loaded) => ({
    ref: l.ref,
    digest: l.digest,
    platform: formatPlatform(configPlatform(l.config)),
    ...(l.meta ? { name: l.meta.name } : {}),
  });
  const report = { a: side(la), b: side(lb), identical, packages, files, sizes, metadata };
  return { report, trees, loaded: [la, lb] };
}

/** The flattened tree of one layer stack, without hashing file data. */
export async function readTree(
  layers: readonly { tar: TarSource }[],
  capture: ReadonlySet<string> = new Set(),
): Promise<FileTree> {
  const t = new FileTree();
  t.hashData = false;
  t.capture = capture;
  for (const l of layers) await t.apply(l.tar);
  return t;
}

function info(path: string, n: TreeNode): FileInfo {
  return {
    path,
    type: n.type,
    size: n.size,
    mode: n.mode,
    uid: n.uid,
    gid: n.gid,
    ...(n.type === 'symlink' ? { link: n.link } : {}),
    ...(n.digest !== undefined ? { digest: n.digest } : {}),
    ...(n.device !== undefined ? { device: n.device } : {}),
  };
}

function changesOf(x: TreeNode, y: TreeNode): FileChange[] {
  const c: FileChange[] = [];
  if (x.type !== y.type) c.push('type');
  if (x.size !== y.size || x.digest !== y.digest) c.push('content');
  if (x.mode !== y.mode) c.push('mode');
  if (x.uid !== y.uid || x.gid !== y.gid) c.push('owner');
  if (x.link !== y.link) c.push('link');
  if (x.device !== y.device) c.push('device');
  return c;
}

/** Paths only in `a` (removed), only in `b` (added), and in both but different, in path order. */
export function compareTrees(a: FileTree, b: FileTree): DiffReport['files'] {
  const out: DiffReport['files'] = { added: [], removed: [], changed: [] };
  for (const [p, x] of a.entries()) {
    const y = b.get(p);
    if (y === undefined) out.removed.push(info(p, x));
    else if (y !== x) {
      // One node in both trees (from a layer they share) is unchanged without a look.
      const changes = changesOf(x, y);
      if (changes.length > 0)
        out.changed.push({ path: p, changes, old: info(p, x), new: info(p, y) });
    }
  }
  for (const [p, y] of b.entries()) if (a.get(p) === undefined) out.added.push(info(p, y));
  const byPath = (x: { path: string }, y: { path: string }) => comparePaths(x.path, y.path);
  out.added.sort(byPath);
  out.removed.sort(byPath);
  out.changed.sort(byPath);
  return out;
}

function componentsAtMost(p: string, n: number): boolean {
  let i = -1;
  for (let c = 1; c < n; c++) {
    i = p.indexOf('/', i + 1);
    if (i < 0) return true;
  }
  return p.indexOf('/', i + 1) < 0;
}

/** Bytes of file data under each directory down to `depth` components (a hardlink counts once). */
export function dirSizes(t: FileTree, depth: number): { total: number; dirs: Map<string, number> } {
  const dirs = new Map<string, number>();
  let total = 0;
  for (const [p, n] of t.entries()) {
    if (n.type === 'dir') {
      // Directories that hold no file data still appear, at 0, so that an emptied one shows.
      if (depth > 0 && !dirs.has(p) && componentsAtMost(p, depth)) dirs.set(p, 0);
      continue;
    }
    if (n.type !== 'file' || n.hardlink) continue;
    total += n.size;
    let i = -1;
    for (let d = 1; d <= depth; d++) {
      i = p.indexOf('/', i + 1);
      if (i < 0) break;
      const dir = p.slice(0, i);
      dirs.set(dir, (dirs.get(dir) ?? 0) + n.size);
    }
  }
  return { total, dirs };
}

export function compareSizes(a: FileTree, b: FileTree, depth: number): DiffReport['sizes'] {
  const sa = dirSizes(a, depth);
  const sb = a === b ? sa : dirSizes(b, depth);
  const dirs: SizeChange[] = [];
  for (const p of new Set([...sa.dirs.keys(), ...sb.dirs.keys()])) {
    const o = sa.dirs.get(p) ?? 0;
    const n = sb.dirs.get(p) ?? 0;
    if (o !== n) dirs.push({ path: p, old: o, new: n, delta: n - o });
  }
  dirs.sort((x, y) => comparePaths(x.path, y.path));
  return {
    depth,
    total: { path: '', old: sa.total, new: sb.total, delta: sb.total - sa.total },
    dirs,
  };
}

const pkgKey = (p: DebianPackage) => `${p.name}:${p.architecture}`;

/** Packages by name and architecture; a changed version is an upgrade or a downgrade by dpkg's order. */
export function comparePackages(
  a: readonly DebianPackage[],
  b: readonly DebianPackage[],
): DiffReport['packages'] {
  const old = new Map(a.map((p) => [pkgKey(p), p]));
  const now = new Map(b.map((p) => [pkgKey(p), p]));
  const out: DiffReport['packages'] = { added: [], removed: [], changed: [] };
  for (const [k, p] of old) {
    const q = now.get(k);
    if (q === undefined) out.removed.push(p);
    else if (q.version !== p.version) {
      out.changed.push({
        name: p.name,
        architecture: p.architecture,
        old: p.version,
        new: q.version,
        direction: compareDebianVersions(q.version, p.version) > 0 ? 'upgrade' : 'downgrade',
      });
    }
  }
  for (const [k, q] of now) if (!old.has(k)) out.added.push(q);
  const byName = (
    x: { name: string; architecture: string },
    y: { name: string; architecture: string },
  ) =>
    x.name < y.name
      ? -1
      : x.name > y.name
        ? 1
        : x.architecture < y.architecture
          ? -1
          : x.architecture > y.architecture
            ? 1
            : 0;
  out.added.sort(byName);
  out.removed.sort(byName);
  out.changed.sort(byName);
  return out;
}

function compareMetadata(a: Loaded, b: Loaded): DiffReport['metadata'] {
  const ma = a.meta;
  const mb = b.meta;
  const out: DiffReport['metadata'] = {
    features: { added: [], removed: [] },
    exclusions: { added: [], removed: [], changed: [] },
    labels: { added: {}, removed: {}, changed: {} },
    env: { added: {}, removed: {}, changed: {} },
  };
  const na = ma?.name ?? null;
  const nb = mb?.name ?? null;
  if (na !== nb) out.name = { old: na, new: nb };
  // Two imports of one tree at two times are two images: the date is what tells them apart.
  const da = ma?.created ?? a.config.created ?? null;
  const db = mb?.created ?? b.config.created ?? null;
  if (da !== db) out.created = { old: da, new: db };
  const pa = formatPlatform(configPlatform(a.config));
  const pb = formatPlatform(configPlatform(b.config));
  if (pa !== pb) out.platform = { old: pa, new: pb };
  const fa = new Set(ma?.features ?? []);
  const fb = new Set(mb?.features ?? []);
  out.features.added = [...fb].filter((f) => !fa.has(f)).sort();
  out.features.removed = [...fa].filter((f) => !fb.has(f)).sort();
  const ea = new Map((ma?.exclusions ?? []).map((e) => [e.pattern, e]));
  const eb = new Map((mb?.exclusions ?? []).map((e) => [e.pattern, e]));
  for (const [p, e] of ea) {
    const f = eb.get(p);
    if (f === undefined) out.exclusions.removed.push(e);
    // How many paths a rule matched follows from the content, which the file lists show; only
    // a changed rule is a change of metadata.
    else if (e.action !== f.action || e.reason !== f.reason)
      out.exclusions.changed.push({ old: e, new: f });
  }
  for (const [p, f] of eb) if (!ea.has(p)) out.exclusions.added.push(f);
  const ca = ma?.baseChain ?? [];
  const cb = mb?.baseChain ?? [];
  const sameChain =
    ca.length === cb.length &&
    ca.every(
      (x, i) => x.digest === cb[i]?.digest && x.ref === cb[i]?.ref && x.name === cb[i]?.name,
    );
  if (!sameChain) out.baseChain = { old: ca, new: cb };
  // Labels as LABEL set them, else as the image config carries them.
  out.labels = mapChanges(
    ma?.labels ?? a.config.config?.Labels ?? {},
    mb?.labels ?? b.config.config?.Labels ?? {},
  );
  out.env = mapChanges(envMap(a.config.config?.Env), envMap(b.config.config?.Env));
  return out;
}

function metadataSame(m: DiffReport['metadata']): boolean {
  return (
    m.name === undefined &&
    m.created === undefined &&
    m.platform === undefined &&
    m.baseChain === undefined &&
    m.features.added.length + m.features.removed.length === 0 &&
    m.exclusions.added.length + m.exclusions.removed.length + m.exclusions.changed.length === 0 &&
    [m.labels, m.env].every(
      (x) =>
        Object.keys(x.added).length +
          Object.keys(x.removed).length +
          Object.keys(x.changed).length ===
        0,
    )
  );
}
