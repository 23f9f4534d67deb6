import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Descriptor, Digest, MediaTypes, chainId, digestHex, isDigest } from '@strata/oci';
import { Store, brokenTagError, diskUsage } from '@strata/store';
import { APT_STATE_LOCK, APT_VERIFIED_MARK, aptStateDir } from './apt-state';
import { cacheRootName } from './cache';
import { logsDir } from './debuild';
import { ScratchInfo, SnapshotInfo, Snapshots } from './snapshots';

/**
 * What a store holds besides its tags, and what tagged images use: the input of `gc` and `df`.
 * "Live" is what some tagged image's layer chain uses: a snapshot whose chain ID is that of a
 * prefix of a tag's layers, a build-cache entry whose key a tag's metadata records.
 */
export interface Inventory {
  tags: number;
  /** Blobs that tags reach, with their sizes. */
  tagBlobs: Map<Digest, number>;
  blobs: Array<{ digest: Digest; size: number }>;
  cache: CacheItem[];
  snapshots: Array<SnapshotInfo & { live: boolean }>;
  scratch: ScratchInfo[];
  apt: AptItem[];
  /** DEBUILD logs of no cache entry: those of builds that failed. */
  logs: LogItem[];
}

export interface LogItem {
  path: string;
  bytes: number;
  mtimeMs: number;
}

export interface CacheItem {
  /** The store GC root that holds it. */
  root: string;
  key?: Digest;
  layer?: Descriptor;
  live: boolean;
  /** The root file, plus its layer blob when no tag reaches that blob. */
  bytes: number;
  /** The root file alone, with the DEBUILD logs that go with it. */
  fileBytes: number;
  /** A DEBUILD entry's build logs (paths), which go when the entry does. */
  logs?: string[];
  /** When the entry was written or last hit. */
  mtimeMs: number;
}

export interface AptItem {
  /** Relative to the apt state directory: `lists/<sources>`, `archives`, … */
  name: string;
  bytes: number;
}

/** The images a tag names: itself, or the members of its index. */
async function imagesOf(store: Store, d: Descriptor, out: Descriptor[]): Promise<void> {
  if (d.mediaType === MediaTypes.imageIndex || d.mediaType === MediaTypes.dockerManifestList) {
    for (const m of (await store.readImageIndex(d)).manifests) await imagesOf(store, m, out);
  } else if (
    d.mediaType === MediaTypes.imageManifest ||
    d.mediaType === MediaTypes.dockerManifest
  ) {
    out.push(d);
  }
}

/** Read everything gc and df decide on. Reads only. */
export async function takeInventory(store: Store): Promise<Inventory> {
  const tags = await store.list();
  const liveChains = new Set<Digest>();
  const liveKeys = new Set<Digest>();
  const tagBlobs = new Map<Digest, number>();
  for (const { ref, descriptor } of tags) {
    try {
      for (const [digest, d] of await store.reachable(descriptor)) tagBlobs.set(digest, d.size);
      const images: Descriptor[] = [];
      await imagesOf(store, descriptor, images);
      for (const img of images) {
        const { config } = await store.readImage(img, img.digest);
        const diffIds = config.rootfs.diff_ids;
        for (let i = 1; i <= diffIds.length; i++) {
          liveChains.add(chainId(diffIds.slice(0, i)) as Digest);
        }
        for (const l of config.strata?.layers ?? []) if (l.cacheKey) liveKeys.add(l.cacheKey);
        for (const e of config.strata?.emptySteps ?? []) liveKeys.add(e.cacheKey);
      }
    } catch (e) {
      // What a tag uses decides what gc keeps: unreadable, it stops gc and df, naming the tag.
      throw brokenTagError(ref, e, `cannot tell what ${ref} uses`);
    }
  }

  // DEBUILD's logs are named after their cache key (see debuild.ts): `…-<12 hex>.log`.
  const logs = new Map<string, LogItem[]>();
  const logDir = logsDir(store.root);
  for (const name of await fsp.readdir(logDir).catch(() => [] as string[])) {
    const m = /-([a-f0-9]{12})\.log$/.exec(name);
    const st = m && (await fsp.stat(path.join(logDir, name)).catch(() => undefined));
    if (!m || !st) continue;
    const list = logs.get(m[1] as string) ?? [];
    list.push({ path: path.join(logDir, name), bytes: st.size, mtimeMs: st.mtimeMs });
    logs.set(m[1] as string, list);
  }
  const cache: CacheItem[] = [];
  for (const r of await store.listRoots()) {
    if (!r.name.startsWith('cache-')) continue;
    const doc = (await store.getRoot(r.name).catch(() => undefined)) as
      | {
          entry?: {
            key?: unknown;
            layer?: Descriptor;
            kind?: string;
            debs?: Array<{ blob?: Descriptor }>;
          };
        }
      | undefined;
    const key = isDigest(String(doc?.entry?.key)) ? (doc?.entry?.key as Digest) : undefined;
    const layer = doc?.entry?.layer;
    // A root whose name and key disagree is never read by a build: it is garbage.
    const valid = key !== undefined && cacheRootName(key) === r.name;
    const layerBytes = layer && !tagBlobs.has(layer.digest) ? layer.size : 0;
    const own = valid ? (logs.get(digestHex(key).slice(0, 12)) ?? []) : [];
    if (valid) logs.delete(digestHex(key).slice(0, 12));
    const logBytes = own.reduce((n, l) => n + l.bytes, 0);
    cache.push({
      root: r.name,
      key: valid ? key : undefined,
      layer,
      live: valid && (liveKeys.has(key) || debsLive(doc?.entry, tagBlobs)),
      bytes: r.bytes + logBytes + layerBytes,
      fileBytes: r.bytes + logBytes,
      mtimeMs: r.mtimeMs,
      ...(own.length ? { logs: own.map((l) => l.path) } : {}),
    });
  }

  const listed = await new Snapshots(store).list();
  const snapshots = listed.snapshots.map((s) => ({ ...s, live: liveChains.has(s.chain) }));

  const apt: AptItem[] = [];
  const aptDir = aptStateDir(store.root);
  for (const top of await fsp.readdir(aptDir).catch(() => [] as string[])) {
    if (top === APT_STATE_LOCK || top === APT_VERIFIED_MARK) continue;
    const p = path.join(aptDir, top);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) continue;
    // Per-sources directories are listed one by one: each is what one set of sources keeps.
    const perSources = top === 'lists' || top === 'cache' || top === 'check';
    const subs = st.isDirectory() && perSources ? await fsp.readdir(p) : [undefined];
    for (const sub of subs) {
      const name = sub === undefined ? top : `${top}/${sub}`;
      apt.push({ name, bytes: await diskUsage(path.join(aptDir, name)) });
    }
  }

  return {
    tags: tags.length,
    tagBlobs,
    blobs: await store.listBlobs(),
    cache,
    snapshots,
    scratch: listed.scratch,
    apt,
    logs: [...logs.values()].flat(),
  };
}

/**
 * A DEBUILD entry is live while a tagged template carries every .deb it made (attached as an
 * artifact, which the tags' walk reaches): rebuilding that template is then a cache hit.
 */
function debsLive(
  entry: { kind?: string; debs?: Array<{ blob?: Descriptor }> } | undefined,
  tagBlobs: ReadonlyMap<Digest, number>,
): boolean {
  const debs = entry?.kind === 'debuild' ? (entry.debs ?? []) : [];
  return debs.length > 0 && debs.every((d) => d.blob !== undefined && tagBlobs.has(d.blob.digest));
}
