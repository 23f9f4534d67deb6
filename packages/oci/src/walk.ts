import type { Digest } from './digest';
import { isDigest } from './digest';
import { InvalidDocumentError } from './errors';
import { isImageMediaType, isIndexMediaType } from './media-types';
import type { Descriptor } from './types';
import { parseJson } from './validate';

/** A manifest or index of a graph, with the exact bytes its digest covers. */
export interface GraphNode {
  descriptor: Descriptor;
  bytes: Buffer;
  /**
   * For a referrer (an OCI 1.1 artifact found through the walk's `referrers`): the manifest or
   * index it is attached to, which the graph holds before it.
   */
  subject?: Descriptor;
}

/** What a root reaches: its manifests and indexes, children before parents, and its blobs. */
export interface Graph {
  manifests: GraphNode[];
  /** Configs, layers and any other blob (a root that is not a manifest is one). */
  blobs: Map<Digest, Descriptor>;
}

export interface WalkOptions {
  /**
   * Leave out non-distributable layers (those with `urls`): registries do not hold them, so a
   * copy between registries skips them. The store keeps them in its graph.
   */
  skipForeign?: boolean;
  /**
   * The referrers of a manifest or index (OCI 1.1: manifests whose `subject` it is), each with
   * its artifactType. They join the graph after their subject, with their own blobs and
   * referrers, so that what copies a template copies what is attached to it, and gc keeps an
   * artifact exactly while its subject is kept.
   */
  referrers?: (subject: Descriptor) => Promise<Descriptor[]>;
}

function isManifestLike(mediaType: string): boolean {
  return isIndexMediaType(mediaType) || isImageMediaType(mediaType);
}

/** What is wrong with descriptor `d`, found at JSON path `at`; undefined when nothing is. */
function descriptorProblem(d: unknown, at: string): string | undefined {
  if (!d || typeof d !== 'object' || Array.isArray(d)) return `${at}: not an object`;
  const x = d as Partial<Record<keyof Descriptor, unknown>>;
  if (typeof x.mediaType !== 'string') return `${at}.mediaType: not a string`;
  if (typeof x.digest !== 'string' || !isDigest(x.digest))
    return `${at}.digest: not a digest (sha256:<64 hex>)`;
  const size = x.size;
  if (typeof size !== 'number') return `${at}.size: not a number`;
  if (!Number.isInteger(size)) return `${at}.size: ${size} is not a whole number`;
  if (size < 0) return `${at}.size: ${size} is negative`;
  // Beyond it a JSON number no longer holds every integer (so its value is not quoted either: it
  // would print rounded), and a size could not be checked.
  if (!Number.isSafeInteger(size))
    return `${at}.size: larger than Number.MAX_SAFE_INTEGER (${Number.MAX_SAFE_INTEGER})`;
  return undefined;
}

function checkDescriptor(d: unknown, where: string, at: string): Descriptor {
  const problem = descriptorProblem(d, at);
  if (problem !== undefined) throw new InvalidDocumentError(where, [problem]);
  return d as Descriptor;
}

function isForeign(d: Descriptor): boolean {
  return d.urls !== undefined && d.urls.length > 0 && d.mediaType.includes('nondistributable');
}

/** The descriptors one manifest or index refers to. */
export function childrenOf(node: GraphNode): Descriptor[] {
  const where = `manifest ${node.descriptor.digest}`;
  const doc = parseJson(node.bytes, where) as {
    manifests?: unknown;
    config?: unknown;
    layers?: unknown;
  } | null;
  if (doc === null || typeof doc !== 'object') {
    throw new InvalidDocumentError(where, ['not a JSON object']);
  }
  if (isIndexMediaType(node.descriptor.mediaType)) {
    if (!Array.isArray(doc.manifests)) {
      throw new InvalidDocumentError(where, ['an index without manifests']);
    }
    return doc.manifests.map((d, i) => checkDescriptor(d, where, `manifests[${i}]`));
  }
  if (!Array.isArray(doc.layers) || doc.config === undefined) {
    throw new InvalidDocumentError(where, ['a manifest without config or layers']);
  }
  return [
    checkDescriptor(doc.config, where, 'config'),
    ...doc.layers.map((d, i) => checkDescriptor(d, where, `layers[${i}]`)),
  ];
}

/**
 * Walk the graph under `root`: index → manifests → config and layers, and with
 * `opts.referrers` each manifest's referrers after it. `fetch` returns the bytes of a manifest
 * or index (verified by the backend it reads from). Each node is fetched once.
 * This is the one walk behind gc, fsck, save, load, push and pull.
 */
export async function walkGraph(
  root: Descriptor,
  fetch: (d: Descriptor) => Promise<Buffer>,
  opts: WalkOptions = {},
): Promise<Graph> {
  const graph: Graph = { manifests: [], blobs: new Map() };
  const seen = new Set<Digest>();
  const visit = async (d: Descriptor, subject?: Descriptor): Promise<void> => {
    if (!isManifestLike(d.mediaType)) {
      if (!(opts.skipForeign && isForeign(d))) graph.blobs.set(d.digest, d);
      return;
    }
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    const node: GraphNode = { descriptor: d, bytes: await fetch(d) };
    if (subject !== undefined) node.subject = subject;
    for (const c of childrenOf(node)) await visit(c);
    graph.manifests.push(node);
    if (opts.referrers) {
      const self = { mediaType: d.mediaType, digest: d.digest, size: d.size };
      for (const r of await opts.referrers(d)) await visit(r, self);
    }
  };
  await visit(root);
  return graph;
}

/** Every digest a graph holds (manifests and blobs), with its descriptor. */
export function graphDigests(
  graph: Graph,
  into = new Map<Digest, Descriptor>(),
): Map<Digest, Descriptor> {
  for (const m of graph.manifests) into.set(m.descriptor.digest, m.descriptor);
  for (const [d, b] of graph.blobs) into.set(d, b);
  return into;
}
