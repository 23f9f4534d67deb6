import {
  Annotations,
  Descriptor,
  Digest,
  InvalidArgumentError,
  MediaType,
  Reference,
  formatReference,
  walkGraph,
} from '@strata/oci';
import type { Store } from '@strata/store';
import {
  FetchedManifest,
  PullOutcome,
  PushOutcome,
  RegistryClient,
  isIndexMediaType,
} from './client';
import { RegistryError } from './errors';
import { BlobSources } from './mount-hints';
import type { TransportOptions } from './transport';

/** One blob's progress through a push or pull. */
export type TransferEvent =
  | { type: 'start'; digest: Digest; size: number }
  | { type: 'progress'; digest: Digest; bytes: number; size: number }
  | {
      type: 'done';
      digest: Digest;
      size: number;
      outcome: PushOutcome | PullOutcome;
      bytes: number;
    };

export interface CopyOptions extends Omit<TransportOptions, 'registry'> {
  /** Blob transfers at once. Default 4. */
  jobs?: number;
  onEvent?: (e: TransferEvent) => void;
}

export interface PushOptions extends CopyOptions {
  /** Upload in chunks of this many bytes instead of one PUT per blob. */
  chunkSize?: number;
  /** Try cross-repo mounts from repositories the store has seen the blob in. Default true. */
  mount?: boolean;
  /** Extra repositories on the target registry to try mounting from. */
  mountFrom?: string[];
}

export interface PullOptions extends CopyOptions {
  /** Local tag; default `<registry>/<repository>:<tag>`. */
  tag?: string;
}

export interface TransferSummary {
  /** The manifest or index digest. */
  digest: Digest;
  mediaType: MediaType;
  size: number;
  /** Blobs (configs and layers) involved. */
  blobs: number;
  /** Manifests and indexes involved. */
  manifests: number;
  /** Blob bytes that crossed the network. */
  bytes: number;
  seconds: number;
}

export interface PushResult extends TransferSummary {
  target: string;
  uploaded: number;
  skipped: number;
  mounted: number;
}

export interface PullResult extends TransferSummary {
  source: string;
  tag: string;
  downloaded: number;
  present: number;
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

/** The manifests (children before their index) and blobs a copy moves, from the one walk. */
type Graph = { manifests: FetchedManifest[]; blobs: Map<Digest, Descriptor> };

/** Blobs at least this large start their upload session while their HEAD is out. */
const EARLY_SESSION_MIN = 1 << 20;

/** A graph's blobs, largest first: with `jobs` transfers at once, the longest starts first. */
function largestFirst(graph: Graph): Descriptor[] {
  return [...graph.blobs.values()].sort((a, b) => b.size - a.size);
}

function progressFor(opts: CopyOptions, d: Descriptor): (bytes: number) => void {
  let last = 0;
  return (bytes) => {
    const now = Date.now();
    if (now - last < 50 && bytes < d.size) return;
    last = now;
    opts.onEvent?.({ type: 'progress', digest: d.digest, bytes, size: d.size });
  };
}

function transportOpts(opts: CopyOptions, registry: string): TransportOptions {
  const { jobs, onEvent: _onEvent, ...rest } = opts;
  return { ...rest, registry, maxSockets: Math.max(jobs ?? 4, 1) + 2 };
}

/**
 * Push a local image (a manifest, or an index and everything under it) to `target`. Blobs the
 * repository has are skipped after a HEAD; blobs seen in another repository of the same registry
 * are mounted; the rest are uploaded, `jobs` at a time. Manifests go last, the root under the tag.
 * The store may still be opening: the registry is reached meanwhile.
 */
export async function push(
  from: Store | Promise<Store>,
  localRef: string,
  target: Reference,
  opts: PushOptions = {},
): Promise<PushResult> {
  const t0 = Date.now();
  if (!target.registry) {
    throw new InvalidArgumentError(`push target ${formatReference(target)} names no registry`, {
      hint: 'use <registry>/<repository>[:<tag>], e.g. localhost:5000/base:1.0',
    });
  }
  if (target.digest !== undefined && target.tag === undefined) {
    throw new InvalidArgumentError('push needs a tag to push to, not a digest');
  }
  const tag = target.tag ?? 'latest';
  const client = new RegistryClient({
    ...transportOpts(opts, target.registry),
    repository: target.repository,
    actions: ['pull', 'push'],
  });
  try {
    const reachable = client.transport.ping();
    reachable.catch(() => undefined); // awaited below
    const store = await from;
    const sources = await BlobSources.load(store.root);
    const local = async (d: Descriptor): Promise<FetchedManifest> => ({
      descriptor: d,
      bytes: await store.readBlob(d.digest, d.size),
    });
    const counts = { uploaded: 0, skipped: 0, mounted: 0, bytes: 0 };
    const rootDesc = await store.resolve(localRef);
    const graph = await walkGraph(rootDesc, async (d) => (await local(d)).bytes, {
      skipForeign: true,
    });
    await reachable;
    await pool(largestFirst(graph), opts.jobs ?? 4, async (d) => {
      opts.onEvent?.({ type: 'start', digest: d.digest, size: d.size });
      const seen = sources.reposFor(d.digest, client.registry);
      const mountFrom = [...(opts.mountFrom ?? []), ...(opts.mount === false ? [] : seen)];
      // A large blob this store never saw on the registry is most likely missing there.
      const expectMissing = seen.length === 0 && d.size >= EARLY_SESSION_MIN;
      const outcome = await client.pushBlob(
        d,
        (start, end) => {
          if (start === undefined) return store.openBlobReader(d.digest, d.size);
          return import('node:fs').then((fs) =>
            fs.createReadStream(store.blobPath(d.digest), { start, end }),
          );
        },
        {
          mountFrom,
          expectMissing,
          ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
          onProgress: progressFor(opts, d),
        },
      );
      const bytes = outcome === 'uploaded' ? d.size : 0;
      if (outcome === 'uploaded') counts.uploaded++;
      else if (outcome === 'mounted') counts.mounted++;
      else counts.skipped++;
      counts.bytes += bytes;
      sources.record(d.digest, client.registry, client.repository);
      opts.onEvent?.({ type: 'done', digest: d.digest, size: d.size, outcome, bytes });
    });
    // Every blob is there now, so where they are is worth remembering while the manifests go up.
    const saved = sources.save().catch(() => undefined);
    try {
      for (const m of graph.manifests) {
        const isRoot = m.descriptor.digest === rootDesc.digest;
        await client.putManifest(
          isRoot ? tag : m.descriptor.digest,
          m.bytes,
          m.descriptor.mediaType,
        );
      }
    } finally {
      await saved;
    }
    return {
      target: formatReference({ registry: target.registry, repository: target.repository, tag }),
      digest: rootDesc.digest,
      mediaType: rootDesc.mediaType,
      size: rootDesc.size,
      blobs: graph.blobs.size,
      manifests: graph.manifests.length,
      ...counts,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    client.close();
  }
}

/** The local tag a pull gets by default: `<registry>/<repository>:<tag>` (or `:sha256-<hex>`). */
export function defaultLocalTag(source: Reference): string {
  const tag = source.tag ?? (source.digest ? source.digest.replace(':', '-') : 'latest');
  return formatReference({
    ...(source.registry ? { registry: source.registry } : {}),
    repository: source.repository,
    tag,
  });
}

/**
 * Pull `source` (by tag or digest) into the store: the manifest or index and everything it
 * references, skipping blobs the store already has. Blobs are verified before they become
 * visible; manifests are written after their blobs, and the tag last. `into` may be a store
 * that is still opening: the registry is reached meanwhile.
 */
export async function pull(
  into: Store | Promise<Store>,
  source: Reference,
  opts: PullOptions = {},
): Promise<PullResult> {
  const t0 = Date.now();
  if (!source.registry) {
    throw new InvalidArgumentError(`${formatReference(source)} names no registry`, {
      hint: 'use <registry>/<repository>[:<tag>|@<digest>]',
    });
  }
  const client = new RegistryClient({
    ...transportOpts(opts, source.registry),
    repository: source.repository,
    actions: ['pull'],
  });
  const localTag = opts.tag ?? defaultLocalTag(source);
  try {
    // The store may still be opening (a new one is laid out and fsynced): the manifest is
    // fetched meanwhile.
    const opening = Promise.resolve(into);
    const [store, sources, root] = await Promise.all([
      opening,
      opening.then((s) => BlobSources.load(s.root)),
      client.getNamedManifest(source.digest ?? source.tag ?? 'latest'),
    ]);
    const fetch = async (d: Descriptor): Promise<FetchedManifest> => {
      const m = (await store.hasBlob(d.digest))
        ? { descriptor: d, bytes: await store.readBlob(d.digest, d.size) }
        : await client.getManifest(d.digest);
      if (m.bytes.length !== d.size) {
        throw new RegistryError(
          'SIZE_MISMATCH',
          `${client.registry}: manifest ${d.digest} is ${m.bytes.length} bytes, its index says ${d.size}`,
        );
      }
      return { descriptor: { ...d }, bytes: m.bytes };
    };
    const counts = { downloaded: 0, present: 0, bytes: 0 };
    return await store.withLease(async () => {
      const graph = await walkGraph(
        root.descriptor,
        async (d) => (d.digest === root.descriptor.digest ? root.bytes : (await fetch(d)).bytes),
        { skipForeign: true },
      );
      await pool(largestFirst(graph), opts.jobs ?? 4, async (d) => {
        opts.onEvent?.({ type: 'start', digest: d.digest, size: d.size });
        const outcome = await client.pullBlob(store, d, { onProgress: progressFor(opts, d) });
        const bytes = outcome === 'downloaded' ? d.size : 0;
        if (outcome === 'downloaded') counts.downloaded++;
        else counts.present++;
        counts.bytes += bytes;
        sources.record(d.digest, client.registry, client.repository);
        opts.onEvent?.({ type: 'done', digest: d.digest, size: d.size, outcome, bytes });
      });
      for (const m of graph.manifests) {
        await store.putBytes(m.bytes, { digest: m.descriptor.digest, size: m.descriptor.size });
      }
      const rootDesc: Descriptor = {
        ...root.descriptor,
        annotations: { [Annotations.pulledFrom]: formatReference(source) },
      };
      const platform = await platformOf(store, root);
      if (platform) rootDesc.platform = platform;
      await Promise.all([store.tag(localTag, rootDesc), sources.save().catch(() => undefined)]);
      return {
        source: formatReference(source),
        tag: localTag,
        digest: root.descriptor.digest,
        mediaType: root.descriptor.mediaType,
        size: root.descriptor.size,
        blobs: graph.blobs.size,
        manifests: graph.manifests.length,
        ...counts,
        seconds: (Date.now() - t0) / 1000,
      };
    });
  } finally {
    client.close();
  }
}

/** The platform of a single-manifest image, from its config, for the store's index entry. */
async function platformOf(store: Store, root: FetchedManifest): Promise<Descriptor['platform']> {
  if (isIndexMediaType(root.descriptor.mediaType)) return undefined;
  try {
    const doc = JSON.parse(root.bytes.toString('utf8')) as { config?: Descriptor };
    if (!doc.config) return undefined;
    const cfg = JSON.parse(
      (await store.readBlob(doc.config.digest, doc.config.size)).toString('utf8'),
    ) as {
      architecture?: unknown;
      os?: unknown;
    };
    return typeof cfg.architecture === 'string' && typeof cfg.os === 'string'
      ? { architecture: cfg.architecture, os: cfg.os }
      : undefined;
  } catch {
    return undefined;
  }
}
