import { Readable } from 'node:stream';
import {
  Descriptor,
  Digest,
  StrataError,
  ImageManifest,
  MediaTypes,
  assertValid,
  digestHex,
  encodeJson,
  parseJson,
  sha256,
  validateManifest,
} from '@strata/oci';
import type { RegistryClient } from '@strata/registry';
import type { BuildEvent } from './build-state';
import { Store, storeContent, storeSink } from '@strata/store';
import { CacheEntry, DebuildEntry, debuildBlobs, writeCache, writeDebuildCache } from './cache';

/** Media type of the small JSON document that describes one cached step. */
export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.strata.build-cache.v1+json';

/** A build cache shared through a registry (`--cache-to`, `--cache-from`). */
export interface RemoteCache {
  readonly name: string;
  /** Fetch the step for `key` into the local store and cache, when the remote has it. */
  get(key: Digest): Promise<CacheEntry | undefined>;
  /** Publish a step (its layer blob and a manifest tagged by the cache key). */
  put(entry: CacheEntry): Promise<void>;
  /** Fetch the .debs a DEBUILD source made for `key`, when the remote has them. */
  getDebs(key: Digest): Promise<DebuildEntry | undefined>;
  /** Publish what a DEBUILD source made. */
  putDebs(entry: DebuildEntry): Promise<void>;
  /** Check that the cache answers at all (before a build that would publish to it). */
  ping?(): Promise<void>;
  /** Check that this build may publish to it, before any step runs. */
  checkPush?(): Promise<void>;
}

/** The registry tag that names a cache key. */
export function cacheTag(key: Digest): string {
  return `strata-cache-${digestHex(key)}`;
}

/**
 * Each cached step is an OCI manifest in the cache repository, tagged `strata-cache-<key>`:
 * its config is the cache entry (JSON), its layers the step's layer blob, or the .debs a
 * DEBUILD source made followed by the files of that source package. Any OCI registry stores it; blobs shared with templates are stored once.
 */
export class RegistryCache implements RemoteCache {
  constructor(
    private readonly store: Store,
    private readonly client: RegistryClient,
  ) {}

  get name(): string {
    return `${this.client.registry}/${this.client.repository}`;
  }

  async ping(): Promise<void> {
    await this.client.checkAuth();
  }

  /**
   * Open an upload session and cancel it: the one request that shows whether the credentials
   * may push to the repository. A registry answers a read-only login's GET /v2/, and a token
   * service grants a token with fewer rights than asked rather than refuse it.
   */
  async checkPush(): Promise<void> {
    const session = this.client.startUpload();
    await session;
    await this.client.cancelUpload(session);
  }

  async get(key: Digest): Promise<CacheEntry | undefined> {
    const found = await this.fetch(key);
    const entry = found?.entry as CacheEntry | undefined;
    // A step that changed nothing has no layer, and its manifest none.
    const layer = found?.blobs.length === 1 ? found.blobs[0] : undefined;
    const empty = entry?.emptyLayer === true && !entry.layer && found?.blobs.length === 0;
    if (!found || !entry || (!empty && (!entry.layer || entry.layer.digest !== layer?.digest)))
      return undefined;
    await this.pull(found.blobs);
    await writeCache(this.store, entry);
    return entry;
  }

  async put(entry: CacheEntry): Promise<void> {
    await this.publish(entry.key, entry, entry.layer ? [entry.layer] : [], entry.record.createdBy);
  }

  async getDebs(key: Digest): Promise<DebuildEntry | undefined> {
    const found = await this.fetch(key);
    const entry = found?.entry as DebuildEntry | undefined;
    if (!found || entry?.kind !== 'debuild' || !Array.isArray(entry.debs)) return undefined;
    if (!Array.isArray(entry.sources) || entry.sources.length === 0) return undefined;
    const listed = debuildBlobs(entry)
      .map((d) => d.digest)
      .join(' ');
    if (listed !== found.blobs.map((b) => b.digest).join(' ')) return undefined;
    await this.pull(found.blobs);
    await writeDebuildCache(this.store, entry);
    return entry;
  }

  async putDebs(entry: DebuildEntry): Promise<void> {
    const blobs = debuildBlobs(entry);
    await this.publish(entry.key, entry, blobs, `DEBUILD ${entry.source}`);
  }

  /** The entry tagged for `key` and the blobs its manifest lists, or undefined. */
  private async fetch(
    key: Digest,
  ): Promise<{ entry: { key?: unknown }; blobs: Descriptor[] } | undefined> {
    const tag = cacheTag(key);
    if (!(await this.client.headManifest(tag))) return undefined;
    const fetched = await this.client.getManifest(tag);
    const manifest = assertValid(
      validateManifest,
      parseJson(fetched.bytes, tag),
      `cache manifest ${tag}`,
    );
    if (manifest.config.mediaType !== CACHE_CONFIG_MEDIA_TYPE) return undefined;
    const chunks: Buffer[] = [];
    for await (const c of await this.client.fetchBlob(manifest.config)) chunks.push(c as Buffer);
    const doc = parseJson(Buffer.concat(chunks), `cache entry ${tag}`) as {
      entry?: { key?: unknown };
    };
    if (!doc.entry || doc.entry.key !== key) return undefined;
    return { entry: doc.entry, blobs: manifest.layers };
  }

  /** Into the local store, each verified against its digest. */
  private async pull(blobs: readonly Descriptor[]): Promise<void> {
    // Loaded here, not with the module: a build without a remote cache never needs the client.
    const { registryContent } = await import('@strata/registry');
    for (const b of blobs) await storeSink(this.store).putBlob(b, registryContent(this.client));
  }

  private async publish(
    key: Digest,
    entry: object,
    blobs: readonly Descriptor[],
    instruction: string,
  ): Promise<void> {
    const tag = cacheTag(key);
    if (await this.client.headManifest(tag)) return;
    const { registrySink } = await import('@strata/registry');
    for (const b of blobs) await registrySink(this.client).putBlob(b, storeContent(this.store));
    const configBytes = encodeJson({ entry });
    const config: Descriptor = {
      mediaType: CACHE_CONFIG_MEDIA_TYPE,
      digest: sha256(configBytes),
      size: configBytes.length,
    };
    await this.client.pushBlob(config, () => Readable.from([configBytes]));
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config,
      layers: [...blobs],
      annotations: {
        'io.strata.cache.key': key,
        'io.strata.cache.instruction': instruction,
      },
    };
    await this.client.putManifest(tag, encodeJson(manifest), MediaTypes.imageManifest);
  }
}

/**
 * A `--cache-from` cache that the build can do without: once its registry cannot be reached at
 * all (refused, reset, not in DNS), one warning says so and the build goes on without it, as
 * BuildKit does, rather than failing a build it only could have sped up or asking a dead
 * registry again at every step. A registry that answers with an error is still an error.
 */
class OptionalCache implements RemoteCache {
  private down = false;

  constructor(
    private readonly inner: RemoteCache,
    private readonly isUnreachable: (e: unknown) => boolean,
    private readonly emit: (e: BuildEvent) => void,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  get(key: Digest): Promise<CacheEntry | undefined> {
    return this.unlessDown(() => this.inner.get(key));
  }

  getDebs(key: Digest): Promise<DebuildEntry | undefined> {
    return this.unlessDown(() => this.inner.getDebs(key));
  }

  put(entry: CacheEntry): Promise<void> {
    return this.inner.put(entry);
  }

  putDebs(entry: DebuildEntry): Promise<void> {
    return this.inner.putDebs(entry);
  }

  private async unlessDown<T>(f: () => Promise<T>): Promise<T | undefined> {
    if (this.down) return undefined;
    try {
      return await f();
    } catch (e) {
      if (!this.isUnreachable(e)) throw e;
      this.down = true;
      this.emit({
        type: 'warning',
        message: `--cache-from ${this.name}: cannot reach the registry (${(e as Error).message}); building without this cache`,
      });
      return undefined;
    }
  }
}

/**
 * The `--cache-to` cache, whose failures name the flag: a publish that fails is the cache's
 * failure, not the step's, and a message that named neither left users looking at their RUN.
 */
class PublishingCache implements RemoteCache {
  constructor(private readonly inner: RemoteCache) {}

  get name(): string {
    return this.inner.name;
  }

  get(key: Digest): Promise<CacheEntry | undefined> {
    return this.inner.get(key);
  }

  getDebs(key: Digest): Promise<DebuildEntry | undefined> {
    return this.inner.getDebs(key);
  }

  put(entry: CacheEntry): Promise<void> {
    return this.named(() => this.inner.put(entry));
  }

  putDebs(entry: DebuildEntry): Promise<void> {
    return this.named(() => this.inner.putDebs(entry));
  }

  private async named(f: () => Promise<void>): Promise<void> {
    try {
      await f();
    } catch (e) {
      throw cacheToError(this.name, e);
    }
  }
}

function cacheToError(name: string, e: unknown, why?: string): StrataError {
  const message = `--cache-to ${name}: ${why ? `${why}: ` : ''}${(e as Error).message}`;
  return e instanceof StrataError
    ? new StrataError(e.code, message, { cause: e, ...(e.hint ? { hint: e.hint } : {}) })
    : new StrataError('UNAVAILABLE', message, { cause: e });
}

/**
 * The build's remote caches, guarded: `--cache-from` caches that stop answering are dropped
 * with a warning, and a `--cache-to` registry that cannot be reached, or that refuses these
 * credentials a push, fails the build before any step runs (its steps' work would be lost at the
 * first publish), with an error naming the flag.
 */
export async function guardRemoteCaches<
  O extends { cacheFrom?: RemoteCache[]; cacheTo?: RemoteCache; onEvent?: (e: BuildEvent) => void },
>(opts: O): Promise<O> {
  if (!opts.cacheFrom?.length && !opts.cacheTo) return opts;
  // Loaded here, not with the module: a build without a remote cache never needs the client.
  const { isUnreachable } = await import('@strata/registry');
  const emit = (e: BuildEvent) => opts.onEvent?.(e);
  const cacheFrom = opts.cacheFrom?.map((c) => new OptionalCache(c, isUnreachable, emit));
  let cacheTo = opts.cacheTo;
  if (cacheTo) {
    try {
      await cacheTo.ping?.();
    } catch (e) {
      // Only a registry that is not there: one that answers (wants a login for /v2/, say) may
      // still take the pushes, and a push that it refuses fails with its own word.
      if (isUnreachable(e))
        throw new StrataError(
          'UNAVAILABLE',
          `--cache-to ${cacheTo.name}: cannot reach the registry: ${(e as Error).message}`,
          {
            cause: e,
            hint: 'start the registry, or build without --cache-to',
          },
        );
    }
    try {
      await cacheTo.checkPush?.();
    } catch (e) {
      const why = isUnreachable(e) ? 'cannot reach the registry' : 'cannot push there';
      throw cacheToError(cacheTo.name, e, why);
    }
    cacheTo = new PublishingCache(cacheTo);
  }
  return {
    ...opts,
    ...(cacheFrom ? { cacheFrom } : {}),
    ...(cacheTo ? { cacheTo } : {}),
  };
}
