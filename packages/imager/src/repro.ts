import { createHash } from 'node:crypto';
import {
  Annotations,
  Descriptor,
  Digest,
  formatPlatform,
  Image,
  Index,
  isIndexMediaType,
} from '@strata/oci';
import { readTar, TarHeader } from '@strata/layer';
import type { TarSource } from './tree';

/**
 * Why two builds that should be bit for bit the same are not: the documents and the layers that
 * differ, and within each layer the entries. Built to name the cause of a failed reproducibility
 * check, so it reads every layer pair whose digests differ, entry by entry, never unpacking one.
 */
export interface ReproReport {
  same: boolean;
  a: Digest;
  b: Digest;
  /** Manifests, indexes and configs that differ, with the JSON paths where they do. */
  documents: DocumentDifference[];
  layers: LayerDifference[];
}

export interface DocumentDifference {
  /** Where: `index`, `linux/arm64 rootfs manifest`, `linux/arm64 rootfs config`, … */
  where: string;
  /** JSON paths of the values that differ (`created`, `history[2].created`, `manifests[1]`). */
  paths: string[];
}

export interface LayerDifference {
  /** The image it belongs to: `rootfs`, `linux/arm64 buildchroot`, … */
  image: string;
  /** Position in the image's stack, 0 = base. */
  index: number;
  /** The step that made it (the config history's `created_by`), when known. */
  createdBy?: string;
  a: Digest;
  b: Digest;
  /** The entries that differ, in path order. Empty when only the compression differs. */
  entries: EntryDifference[];
}

/** How one tar entry differs between the two layers. */
export type EntryField =
  | 'only in a'
  | 'only in b'
  | 'type'
  | 'content'
  | 'mode'
  | 'owner'
  | 'mtime'
  | 'link'
  | 'device'
  | 'xattrs'
  | 'order';

export interface EntryDifference {
  path: string;
  fields: EntryField[];
}

/** What a tar entry is, as far as its bytes in a layer go (the body by digest). */
interface EntryFacts {
  ordinal: number;
  header: TarHeader;
  digest?: string;
}

async function entriesOf(tar: TarSource): Promise<Map<string, EntryFacts>> {
  const out = new Map<string, EntryFacts>();
  let ordinal = 0;
  for await (const e of readTar(await tar.openTar())) {
    let digest: string | undefined;
    if (e.header.type === 'file') {
      const h = createHash('sha256');
      for await (const chunk of e.body) h.update(chunk);
      digest = h.digest('hex');
    }
    out.set(e.header.path, { ordinal: ordinal++, header: e.header, digest });
  }
  return out;
}

function xattrKey(x: Record<string, Buffer>): string {
  return Object.keys(x)
    .sort()
    .map((k) => `${k}=${(x[k] as Buffer).toString('base64')}`)
    .join(',');
}

function fieldsOf(x: EntryFacts, y: EntryFacts): EntryField[] {
  const a = x.header;
  const b = y.header;
  const f: EntryField[] = [];
  if (a.type !== b.type) f.push('type');
  if (a.size !== b.size || x.digest !== y.digest) f.push('content');
  if (a.mode !== b.mode) f.push('mode');
  if (a.uid !== b.uid || a.gid !== b.gid) f.push('owner');
  if (a.mtime !== b.mtime) f.push('mtime');
  if (a.linkpath !== b.linkpath) f.push('link');
  if (a.devmajor !== b.devmajor || a.devminor !== b.devminor) f.push('device');
  if (xattrKey(a.xattrs) !== xattrKey(b.xattrs)) f.push('xattrs');
  return f;
}

/**
 * Compare two layers entry by entry: paths only one holds, and for the others each field that
 * differs (type, content, mode, owner, mtime, link, device, xattrs). When the two hold the same
 * entries in another order, the first entry out of place is reported as `order`.
 */
export async function compareLayerEntries(a: TarSource, b: TarSource): Promise<EntryDifference[]> {
  const [ea, eb] = await Promise.all([entriesOf(a), entriesOf(b)]);
  const out: EntryDifference[] = [];
  for (const p of new Set([...ea.keys(), ...eb.keys()])) {
    const x = ea.get(p);
    const y = eb.get(p);
    if (x === undefined) out.push({ path: p, fields: ['only in b'] });
    else if (y === undefined) out.push({ path: p, fields: ['only in a'] });
    else {
      const fields = fieldsOf(x, y);
      if (fields.length > 0) out.push({ path: p, fields });
    }
  }
  if (out.length === 0) {
    const order = [...eb.keys()];
    const first = [...ea.keys()].findIndex((p, i) => order[i] !== p);
    if (first >= 0) out.push({ path: [...ea.keys()][first] as string, fields: ['order'] });
  }
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** The JSON paths (at most `limit`) where two parsed documents differ. */
export function jsonDifferences(a: unknown, b: unknown, limit = 20): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, at: string): void => {
    if (out.length >= limit) return;
    if (x !== null && y !== null && typeof x === 'object' && typeof y === 'object') {
      if (Array.isArray(x) !== Array.isArray(y)) {
        out.push(at || '(document)');
        return;
      }
      if (Array.isArray(x) && Array.isArray(y)) {
        if (x.length !== y.length) out.push(`${at || '(document)'}.length`);
        for (let i = 0; i < Math.min(x.length, y.length); i++) walk(x[i], y[i], `${at}[${i}]`);
        return;
      }
      const ox = x as Record<string, unknown>;
      const oy = y as Record<string, unknown>;
      for (const k of [...new Set([...Object.keys(ox), ...Object.keys(oy)])].sort())
        walk(ox[k], oy[k], at ? `${at}.${k}` : k);
      return;
    }
    if (JSON.stringify(x) !== JSON.stringify(y)) out.push(at || '(document)');
  };
  walk(a, b, '');
  return out;
}

/** What reads the two sides: the store (or any backend) behind each descriptor. */
export interface ReproSide {
  descriptor: Descriptor;
  image(d: Descriptor): Image;
  index(d: Descriptor): Index;
}

function labelOf(d: Descriptor): string {
  const parts: string[] = [];
  if (d.platform) parts.push(formatPlatform(d.platform));
  const role = d.annotations?.[Annotations.role];
  if (role !== undefined) parts.push(role);
  return parts.join(' ');
}

/**
 * Compare two builds of one Stratafile, from the top descriptor down: the indexes (a
 * multi-platform template, a bundle with its buildchroot) manifest by manifest in order, each
 * image's manifest and config by JSON path, and each layer pair whose digests differ entry by
 * entry. Nothing is read below a pair of equal digests.
 */
export async function compareBuilds(a: ReproSide, b: ReproSide): Promise<ReproReport> {
  const report: ReproReport = {
    same: a.descriptor.digest === b.descriptor.digest,
    a: a.descriptor.digest,
    b: b.descriptor.digest,
    documents: [],
    layers: [],
  };
  const visit = async (da: Descriptor, db: Descriptor, where: string): Promise<void> => {
    if (da.digest === db.digest) return;
    const name = (what: string) => (where ? `${where} ${what}` : what);
    if (isIndexMediaType(da.mediaType) !== isIndexMediaType(db.mediaType)) {
      report.documents.push({ where: name('manifest'), paths: ['mediaType'] });
      return;
    }
    if (isIndexMediaType(da.mediaType)) {
      const [ia, ib] = await Promise.all([
        a.index(da).indexManifest(),
        b.index(db).indexManifest(),
      ]);
      report.documents.push({ where: name('index'), paths: jsonDifferences(ia, ib) });
      const n = Math.min(ia.manifests.length, ib.manifests.length);
      for (let i = 0; i < n; i++) {
        const ma = ia.manifests[i] as Descriptor;
        const mb = ib.manifests[i] as Descriptor;
        await visit(ma, mb, [where, labelOf(ma) || `manifest ${i}`].filter(Boolean).join(' '));
      }
      return;
    }
    const [xa, xb] = [a.image(da), b.image(db)];
    const [ma, mb, ca, cb] = await Promise.all([
      xa.manifest(),
      xb.manifest(),
      xa.config(),
      xb.config(),
    ]);
    report.documents.push({ where: name('manifest'), paths: jsonDifferences(ma, mb) });
    if (ma.config.digest !== mb.config.digest)
      report.documents.push({ where: name('config'), paths: jsonDifferences(ca, cb) });
    const [la, lb] = await Promise.all([xa.layers(), xb.layers()]);
    const steps = (ca.history ?? []).filter((h) => h.empty_layer !== true);
    for (let i = 0; i < Math.min(la.length, lb.length); i++) {
      const pa = ma.layers[i] as Descriptor;
      const pb = mb.layers[i] as Descriptor;
      if (pa.digest === pb.digest) continue;
      const createdBy = steps[i]?.created_by;
      report.layers.push({
        image: where || 'rootfs',
        index: i,
        ...(createdBy !== undefined ? { createdBy } : {}),
        a: pa.digest,
        b: pb.digest,
        entries: await compareLayerEntries(la[i]!, lb[i]!),
      });
    }
  };
  await visit(a.descriptor, b.descriptor, '');
  return report;
}

/**
 * The report as lines for a failure message: each layer that differs (its image, its index and
 * the step that made it) with up to `perLayer` of its paths and how they differ, then the
 * documents' JSON paths. Empty when the builds are the same.
 */
export function describeReproReport(r: ReproReport, perLayer = 20): string {
  if (r.same) return '';
  const lines = [`the two builds differ: ${r.a} and ${r.b}`];
  for (const l of r.layers) {
    const step = l.createdBy !== undefined ? ` (${l.createdBy})` : '';
    const shown = l.entries.slice(0, perLayer).map((e) => `    ${e.path}: ${e.fields.join(', ')}`);
    const more = l.entries.length > perLayer ? [`    … ${l.entries.length - perLayer} more`] : [];
    const what =
      l.entries.length === 0
        ? 'the same entries, compressed differently'
        : `${l.entries.length} ${l.entries.length === 1 ? 'entry differs' : 'entries differ'}:`;
    lines.push(`  ${l.image} layer ${l.index}${step}: ${what}`, ...shown, ...more);
  }
  for (const d of r.documents)
    if (d.paths.length > 0) lines.push(`  ${d.where}: ${d.paths.join(', ')}`);
  return lines.join('\n');
}
