import type { Digest } from './digest';
import type { ContentSource } from './image';
import type { Descriptor } from './types';
import { Graph, GraphNode, walkGraph } from './walk';

/**
 * Where a copy writes: the store, a registry. The sink owns the writing (how a blob is made
 * durable, resumed or mounted); the source only hands out verified content.
 */
export interface ContentSink<O extends string = string> {
  /**
   * Put blob `d`, read from `src`, unless the sink has it. Returns what happened and how many
   * bytes moved. `onProgress` gets the running count of the blob's bytes that are there.
   */
  putBlob(
    d: Descriptor,
    src: ContentSource,
    onProgress?: (bytes: number) => void,
  ): Promise<{ outcome: O; bytes: number }>;
  /**
   * Put a manifest or index, after everything it refers to; `tag` names the root. A referrer
   * (`node.subject` set) comes after its subject, and the sink records it as attached there.
   */
  putManifest(node: GraphNode, tag?: string): Promise<void>;
  /**
   * The verified bytes of manifest or index `d` when the sink holds it already (a repeat pull),
   * so that the walk reads it there instead of fetching it from the source again.
   */
  heldManifest?(d: Descriptor): Promise<Buffer | undefined>;
}

/** One blob's progress through a copy. */
export type CopyEvent<O extends string = string> =
  /** Before any blob: how many blobs the graph holds, and their bytes (for a total). */
  | { type: 'plan'; blobs: number; bytes: number }
  | { type: 'start'; digest: Digest; size: number }
  | { type: 'progress'; digest: Digest; bytes: number; size: number }
  | { type: 'done'; digest: Digest; size: number; outcome: O; bytes: number };

export interface CopyOptions<O extends string = string> {
  /** Blob transfers at once. Default 4. */
  jobs?: number;
  /** The root's name in the sink (a registry tag); without it the root goes by digest. */
  tag?: string;
  /** Leave out non-distributable layers, which registries do not hold (see walkGraph). */
  skipForeign?: boolean;
  /** The root's bytes, when the caller has them already (a pull by tag fetched them). */
  rootBytes?: Buffer;
  /**
   * Copy the referrers of every manifest too (see ContentSource.referrers). Default true; a
   * source without them has none.
   */
  referrers?: boolean;
  onEvent?: (e: CopyEvent<O>) => void;
}

/** Run `fn` over `items`, `n` at a time; the first failure stops new work and is rethrown. */
export async function pool<T>(
  items: readonly T[],
  n: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: { e: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failed ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed) throw failed.e;
}

/** Progress reports at most every 50 ms (and always the last), so a fast copy does not flood. */
function throttled<O extends string>(
  d: Descriptor,
  onEvent: (e: CopyEvent<O>) => void,
): (bytes: number) => void {
  let last = 0;
  return (bytes) => {
    const now = Date.now();
    if (now - last < 50 && bytes < d.size) return;
    last = now;
    onEvent({ type: 'progress', digest: d.digest, bytes, size: d.size });
  };
}

/**
 * Copy the graph under `root` from `src` into `sink`: the one walk finds the manifests and
 * blobs; the blobs go first, `jobs` at a time and the largest first (so the longest transfer is
 * not the one left running alone at the end); then the manifests, children before their index
 * and referrers after their subject, so that a sink never holds a manifest whose blobs it lacks,
 * nor an artifact whose subject it lacks. A manifest the sink holds already is read there, not
 * fetched again; its blobs are still offered to the sink, which skips those it has. Push, pull,
 * save and load are this with different backends.
 */
export async function copyGraph<O extends string>(
  src: ContentSource,
  sink: ContentSink<O>,
  root: Descriptor,
  opts: CopyOptions<O> = {},
): Promise<Graph> {
  const referrers = opts.referrers === false ? undefined : src.referrers?.bind(src);
  const graph = await walkGraph(
    root,
    async (d) => {
      if (d.digest === root.digest && opts.rootBytes !== undefined) return opts.rootBytes;
      return (await sink.heldManifest?.(d)) ?? src.readBlob(d);
    },
    {
      skipForeign: opts.skipForeign ?? false,
      ...(referrers ? { referrers } : {}),
    },
  );
  const blobs = [...graph.blobs.values()].sort((a, b) => b.size - a.size);
  opts.onEvent?.({
    type: 'plan',
    blobs: blobs.length,
    bytes: blobs.reduce((n, d) => n + d.size, 0),
  });
  await pool(blobs, opts.jobs ?? 4, async (d) => {
    opts.onEvent?.({ type: 'start', digest: d.digest, size: d.size });
    const progress = opts.onEvent ? throttled(d, opts.onEvent) : undefined;
    const { outcome, bytes } = await sink.putBlob(d, src, progress);
    opts.onEvent?.({ type: 'done', digest: d.digest, size: d.size, outcome, bytes });
  });
  for (const m of graph.manifests) {
    await sink.putManifest(m, m.descriptor.digest === root.digest ? opts.tag : undefined);
  }
  return graph;
}
