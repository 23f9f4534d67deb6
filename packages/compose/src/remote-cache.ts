import { Readable } from 'node:stream';
import {
  Descriptor,
  Digest,
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
import { Store, storeContent, storeSink } from '@strata/store';
import { CacheEntry, writeCache } from './cache';

/** Media type of the small JSON document that describes one cached step. */
export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.strata.build-cache.v1+json';

/** A build cache shared through a registry (`--cache-to`, `--cache-from`). */
export interface RemoteCache {
  readonly name: string;
  /** Fetch the step for `key` into the local store and cache, when the remote has it. */
  get(key: Digest): Promise<CacheEntry | undefined>;
  /** Publish a step (its layer blob and a manifest tagged by the cache key). */
  put(entry: CacheEntry): Promise<void>;
}

/** The registry tag that names a cache key. */
export function cacheTag(key: Digest): string {
  return `strata-cache-${digestHex(key)}`;
}

/**
 * Each cached step is an OCI manifest in the cache repository, tagged `strata-cache-<key>`:
 * its config is the cache entry (JSON), its one layer the step's layer blob. Any OCI registry
 * stores it; layers shared with templates are stored once.
 */
export class RegistryCache implements RemoteCache {
  constructor(
    private readonly store: Store,
    private readonly client: RegistryClient,
  ) {}

  get name(): string {
    return `${this.client.registry}/${this.client.repository}`;
  }

  async get(key: Digest): Promise<CacheEntry | undefined> {
    const tag = cacheTag(key);
    if (!(await this.client.headManifest(tag))) return undefined;
    const fetched = await this.client.getManifest(tag);
    const manifest = assertValid(
      validateManifest,
      parseJson(fetched.bytes, tag),
      `cache manifest ${tag}`,
    );
    if (manifest.config.mediaType !== CACHE_CONFIG_MEDIA_TYPE || manifest.layers.length !== 1)
      return undefined;
    const chunks: Buffer[] = [];
    for await (const c of await this.client.fetchBlob(manifest.config)) chunks.push(c as Buffer);
    const doc = parseJson(Buffer.concat(chunks), `cache entry ${tag}`) as { entry?: CacheEntry };
    const entry = doc.entry;
    const layer = manifest.layers[0] as Descriptor;
    if (!entry || entry.key !== key || entry.layer.digest !== layer.digest) return undefined;
    // Loaded here, not with the module: a build without a remote cache never needs the client.
    const { registryContent } = await import('@strata/registry');
    await storeSink(this.store).putBlob(layer, registryContent(this.client));
    await writeCache(this.store, entry);
    return entry;
  }

  async put(entry: CacheEntry): Promise<void> {
    const tag = cacheTag(entry.key);
    if (await this.client.headManifest(tag)) return;
    const layer = entry.layer;
    const { registrySink } = await import('@strata/registry');
    await registrySink(this.client).putBlob(layer, storeContent(this.store));
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
      layers: [layer],
      annotations: {
        'io.strata.cache.key': entry.key,
        'io.strata.cache.instruction': entry.record.createdBy,
      },
    };
    await this.client.putManifest(tag, encodeJson(manifest), MediaTypes.imageManifest);
  }
}
