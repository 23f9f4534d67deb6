import {
  Annotations,
  CopyEvent,
  Descriptor,
  DigestMismatchError,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  InvalidArgumentError,
  PlatformSelector,
  Reference,
  SizeMismatchError,
  StrataError,
  copyGraph,
  assertValid,
  formatReference,
  parseJson,
  configPlatform,
  requireManifest,
  requirePlatform,
  validateConfig,
  validateIndex,
  validateManifest,
  walkGraph,
} from '@strata/oci';
import type { ContentSink, Digest, Graph, MediaType } from '@strata/oci';
import { Store, storeContent, storeSink } from '@strata/store';
import { PullOutcome, PushOutcome, RegistryClient, isIndexMediaType } from './client';
import { registryContent, registrySink } from './content';
import { isFallbackTag } from './fallback-tag';
import { RegistryAuthError, RegistryError } from './errors';
import { BlobSources } from './mount-hints';
import type { TransportOptions } from './transport';

/** One blob's progress through a push or pull. */
export type TransferEvent = CopyEvent<PushOutcome | PullOutcome>;

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
  /** Of a multi-platform template, push only this platform's rootfs image. Default: all of it. */
  platform?: PlatformSelector;
}

export interface PullOptions extends CopyOptions {
  /** Local tag; default `<registry>/<repository>:<tag>`. */
  tag?: string;
  /** Of a multi-platform index, pull only this platform's rootfs image. Default: all of it. */
  platform?: PlatformSelector;
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
  /** The image the local tag named before, when the pull moved it to another. */
  movedFrom?: Digest;
  downloaded: number;
  present: number;
}

/** Blobs at least this large start their upload session while their HEAD is out. */
const EARLY_SESSION_MIN = 1 << 20;

function transportOpts(opts: CopyOptions, registry: string): TransportOptions {
  const { jobs, onEvent: _onEvent, ...rest } = opts;
  return { ...rest, registry, maxSockets: Math.max(jobs ?? 4, 1) + 2 };
}

/** The fields push and pull report alike. */
function summary(root: Descriptor, graph: Graph, t0: number, bytes: number): TransferSummary {
  return {
    digest: root.digest,
    mediaType: root.mediaType,
    size: root.size,
    blobs: graph.blobs.size,
    manifests: graph.manifests.length,
    bytes,
    seconds: (Date.now() - t0) / 1000,
  };
}

/**
 * Push a local image (a manifest, or an index and everything under it) to `target`: a copy from
 * the store's content into the repository's sink. Blobs the repository has are skipped after a
 * HEAD; blobs seen in another repository of the same registry are mounted; the rest are
 * uploaded, `jobs` at a time. Manifests go last, the root under the tag. The store may still be
 * opening: the registry is reached meanwhile.
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
  if (target.digest !== undefined) {
    throw new InvalidArgumentError(
      `push target ${formatReference(target)} carries a digest: a push names a tag, and the registry gives the digest`,
      { hint: 'drop the @sha256:… part' },
    );
  }
  const tag = target.tag ?? 'latest';
  if (isFallbackTag(tag)) {
    throw new InvalidArgumentError(
      `push target tag ${tag} is the form of the registry's referrers tags (an image's SBOMs and other artifacts): an image pushed there would be overwritten`,
      { hint: 'push to another tag: strata push <local> <registry>/<repository>:<tag>' },
    );
  }
  const client = new RegistryClient({
    ...transportOpts(opts, target.registry),
    repository: target.repository,
    actions: ['pull', 'push'],
  });
  const targetName = formatReference({ ...target, tag });
  // What the registry confirmed it has, and what was to be pushed: for the error of a failure.
  const pushed = new Set<Digest>();
  let local: { store: Store; root: Descriptor } | undefined;
  try {
    const reachable = client.transport.ping();
    reachable.catch(() => undefined); // awaited below
    const store = await from;
    // The root manifest is read and verified (the first hash loads node:crypto) while the ping
    // is out too, so the walk has nothing left to read for an image.
    const platform = opts.platform;
    const resolving = store
      .resolve(localRef)
      .then(async (tagged) =>
        platform ? (await store.selectImage(tagged, { platform }, localRef)).descriptor : tagged,
      );
    const [sources, rootDesc, rootBytes] = await Promise.all([
      BlobSources.load(store.root),
      resolving,
      resolving.then((d) => store.readBlob(d.digest, d.size)),
    ]);
    local = { store, root: rootDesc };
    await reachable;
    const seen = (d: Descriptor) => sources.reposFor(d.digest, client.registry);
    const sink = registrySink(client, {
      mountFrom: (d) => [...(opts.mountFrom ?? []), ...(opts.mount === false ? [] : seen(d))],
      // A large blob this store never saw on the registry is most likely missing there.
      expectMissing: (d) => seen(d).length === 0 && d.size >= EARLY_SESSION_MIN,
      ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
    });
    const counts = { uploaded: 0, skipped: 0, mounted: 0, bytes: 0 };
    let saved: Promise<void> | undefined;
    // The lease holds what is pushed from a gc, even if its tag goes meanwhile.
    const graph = await store.withImageLease(rootDesc, () =>
      copyGraph(
        storeContent(store),
        withSaveBeforeManifests(sink, () => {
          // Every blob is there now, so where they are is worth remembering while the manifests go up.
          saved ??= sources.save().catch(() => undefined);
        }),
        rootDesc,
        {
          jobs: opts.jobs ?? 4,
          tag,
          rootBytes,
          skipForeign: true,
          onEvent: (e) => {
            if (e.type === 'done') {
              pushed.add(e.digest);
              if (e.outcome === 'uploaded') counts.uploaded++;
              else if (e.outcome === 'mounted') counts.mounted++;
              else counts.skipped++;
              counts.bytes += e.bytes;
              sources.record(e.digest, client.registry, client.repository);
            }
            opts.onEvent?.(e);
          },
        },
      ).finally(() => saved),
    );
    const { bytes, ...rest } = counts;
    return {
      target: formatReference({ registry: target.registry, repository: target.repository, tag }),
      ...summary(rootDesc, graph, t0, bytes),
      ...rest,
    };
  } catch (e) {
    throw await notPushed(e, local, pushed, targetName);
  } finally {
    client.close();
  }
}

/** Digests named in a failed push's error before the rest are only counted. */
const NOT_PUSHED_SHOWN = 3;

/**
 * A failed push's error, also saying what the registry did not get: the blobs it did not
 * confirm, and that the tag was not set (the root manifest goes last, so a failed push never
 * tagged it). The local store is only read, to list them. Errors of the project keep their
 * class; anything else (a bug) is passed on as it is.
 */
async function notPushed(
  e: unknown,
  local: { store: Store; root: Descriptor } | undefined,
  pushed: ReadonlySet<Digest>,
  target: string,
): Promise<unknown> {
  // A local failure before anything was sent (an unknown tag) says what it says.
  if (!(e instanceof StrataError) || (!local && !(e instanceof RegistryError))) return e;
  let what = `nothing was pushed, ${target} was not tagged`;
  if (local) {
    const { store, root } = local;
    const graph = await walkGraph(root, (d) => store.readBlob(d.digest, d.size), {
      skipForeign: true,
    }).catch(() => undefined);
    const missing = graph ? [...graph.blobs.values()].filter((d) => !pushed.has(d.digest)) : [];
    const shown = missing.slice(0, NOT_PUSHED_SHOWN).map((d) => d.digest.slice(0, 19));
    if (missing.length > NOT_PUSHED_SHOWN) shown.push('…');
    const blobs =
      graph === undefined
        ? ''
        : missing.length === 0
          ? `all ${graph.blobs.size} blobs are there but `
          : `${missing.length} of ${graph.blobs.size} blobs (${shown.join(', ')}) and `;
    what = `not pushed: ${blobs}the manifest ${root.digest.slice(0, 19)}, so ${target} was not tagged`;
  }
  const message = `${e.message}; ${what}`;
  const options = { cause: e, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
  if (e instanceof RegistryAuthError) return new RegistryAuthError(message, e.status, options);
  if (e instanceof RegistryError) {
    return new RegistryError(e.code, message, e.status, e.errors, options);
  }
  return new RegistryError(e.code, message, undefined, [], options);
}

/** `sink`, calling `before` once as the first manifest goes in (when all blobs are there). */
function withSaveBeforeManifests<O extends string>(
  sink: ContentSink<O>,
  before: () => void,
): ContentSink<O> {
  return {
    putBlob: (d, src, onProgress) => sink.putBlob(d, src, onProgress),
    putManifest: (node, tag) => {
      before();
      return sink.putManifest(node, tag);
    },
  };
}

/**
 * The local tag a pull gets by default: `<registry>/<repository>:<tag>`, or for a pull by digest
 * `:digest-sha256-<hex>` (not `sha256-<hex>`, the registry's referrers tag of that image).
 */
export function defaultLocalTag(source: Reference): string {
  const tag =
    source.tag ?? (source.digest ? `digest-${source.digest.replace(':', '-')}` : 'latest');
  return formatReference({
    ...(source.registry ? { registry: source.registry } : {}),
    repository: source.repository,
    tag,
  });
}

/**
 * Pull `source` (by tag or digest) into the store: a copy from the repository's content into
 * the store's sink, which skips blobs it has, verifies every blob before it becomes visible and
 * resumes an interrupted one. Manifests are written after their blobs, and the tag last. `into`
 * may be a store that is still opening: the registry is reached meanwhile.
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
  const opening = Promise.resolve(into);
  try {
    // The store may still be opening (a new one is laid out and fsynced): the manifest is
    // fetched meanwhile.
    const [store, sources, named] = await Promise.all([
      opening,
      opening.then((s) => BlobSources.load(s.root)),
      client.getNamedManifest(source.digest ?? source.tag ?? 'latest'),
    ]);
    const root = opts.platform
      ? await platformManifest(client, named, opts.platform, formatReference(source))
      : named;
    const counts = { downloaded: 0, present: 0, bytes: 0 };
    return await store.withLease(async () => {
      const graph = await copyGraph(registryContent(client), storeSink(store), root.descriptor, {
        jobs: opts.jobs ?? 4,
        rootBytes: root.bytes,
        skipForeign: true,
        onEvent: (e) => {
          if (e.type === 'done') {
            if (e.outcome === 'downloaded') counts.downloaded++;
            else counts.present++;
            counts.bytes += e.bytes;
            sources.record(e.digest, client.registry, client.repository);
          }
          opts.onEvent?.(e);
        },
      }).catch((e: unknown) => {
        if (e instanceof DigestMismatchError || e instanceof SizeMismatchError) {
          throw new RegistryError(
            e.code,
            `${client.registry}/${client.repository}: ${e.message} (the registry sent wrong content; nothing was stored)`,
            undefined,
            [],
            { cause: e },
          );
        }
        throw e;
      });
      const rootDesc: Descriptor = {
        ...root.descriptor,
        annotations: { [Annotations.pulledFrom]: formatReference(source) },
      };
      // A config the store cannot read as an image config still pulls, with no platform.
      const platform = await store.platformOf(root.descriptor).catch(() => undefined);
      if (platform) rootDesc.platform = platform;
      const [before] = await Promise.all([
        store.tag(localTag, rootDesc),
        sources.save().catch(() => undefined),
      ]);
      const { bytes, ...rest } = counts;
      return {
        source: formatReference(source),
        tag: localTag,
        ...(before && before.digest !== rootDesc.digest ? { movedFrom: before.digest } : {}),
        ...summary(root.descriptor, graph, t0, bytes),
        ...rest,
      };
    });
  } finally {
    client.close();
    // A store that is still opening (a new one writes its index under the index lock) is let
    // finish even when the registry failed first: a caller that exits on the error must not
    // leave that lock file made but not yet filled in, which blocks the next command.
    await opening.catch(() => undefined);
  }
}

/**
 * The manifest of `platform` in the index `named` is (as selectManifest picks it), fetched; or
 * `named` itself when it is a single image of that platform.
 */
async function platformManifest(
  client: RegistryClient,
  named: { descriptor: Descriptor; bytes: Buffer },
  platform: PlatformSelector,
  what: string,
): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
  if (!isIndexMediaType(named.descriptor.mediaType)) {
    // A single image says its platform only in its config, fetched (it is small) before any
    // layer is: docker pull refuses an image of another platform, and so does this.
    const manifest = assertValid(
      validateManifest,
      parseJson(named.bytes, what),
      what,
    ) as ImageManifest;
    const blob = await client.fetchBlob(manifest.config);
    const configBytes = Buffer.concat((await blob.toArray()) as Buffer[]);
    const config = assertValid(
      validateConfig,
      parseJson(configBytes, `${what} config`),
      `${what} config`,
    ) as ImageConfig;
    const have = configPlatform(config);
    requirePlatform(have, platform, what);
    return named;
  }
  const index = assertValid(validateIndex, parseJson(named.bytes, what), what) as ImageIndex;
  const d = requireManifest(index, { platform }, what);
  const got = await client.getNamedManifest(d.digest);
  return {
    descriptor: { ...got.descriptor, ...(d.platform ? { platform: d.platform } : {}) },
    bytes: got.bytes,
  };
}
