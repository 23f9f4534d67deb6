import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import {
  Descriptor,
  Digest,
  LayerRecord,
  DebianPackage,
  Distribution,
  digestHex,
  encodeJson,
  sha256,
  InvalidArgumentError,
  NotFoundError,
} from '@strata/oci';
import { Store } from '@strata/store';
import type { BuiltDeb } from './built-debs';
import type { CopySource } from './copy-sources';
import { keptUnder, type ContextIgnore } from './ignore';

/** A layer's record, or the record of a step that made none (no `diffId`). */
export type StepRecord = Omit<LayerRecord, 'diffId'> & { diffId?: Digest };

/** Everything a step's result depends on. Its sha256 is the cache key. */
export interface CacheKeyInput {
  parent: Digest | null;
  instruction: string;
  env?: Array<[string, string]>;
  aptSources?: Digest;
  aptIndex?: Digest;
  inputs?: Digest[];
  /** EXCLUDE globs in force (absent when there are none). */
  excludes?: string[];
  /** The Debian architecture the step builds for (absent for amd64). */
  architecture?: string;
  /** The Release digest of the build's own packages (DEBUILD), once there are any. */
  localRepo?: string;
  /**
   * What a DEBUILD keeps besides its .debs (`source`: its source package). Entries made before
   * DEBUILD kept one have another key, so none of them is taken for one that has it.
   */
  keeps?: string;
  /**
   * A `COPY --from`'s source stage: the chain ID of its result's layers. The paths it copies
   * are in the instruction; the same chain holds the same files.
   */
  fromChain?: Digest;
}

export function cacheKey(k: CacheKeyInput): Digest {
  return sha256(encodeJson({ v: 1, ...k }));
}

/** A cached step result: the layer it made and what it did. */
export interface CacheEntry {
  key: Digest;
  /** The layer, absent when the step changed nothing (`emptyLayer`). */
  layer?: Descriptor;
  diffId?: Digest;
  /** The step changed nothing: it makes no layer, only an `empty_layer` history entry. */
  emptyLayer?: true;
  /** What the step did; its `diffId` is the layer's (none for an empty one). */
  record: StepRecord;
  /** Installed packages after the step. */
  packages: DebianPackage[];
  created: string;
  /** Paths each exclusion rule kept out of the layer, by pattern. */
  excluded?: Record<string, number>;
  /**
   * What a BOOTSTRAP found in the tree it made: its distribution and Debian architecture. A
   * cache hit restores them, so that a cached BOOTSTRAP's image says what a fresh one does.
   */
  distribution?: Distribution;
  architecture?: string;
}

/** The name of the store GC root that holds the cache entry of `key`. */
export const cacheRootName = (key: Digest) => `cache-${digestHex(key)}`;
const rootName = cacheRootName;

export async function readCache(store: Store, key: Digest): Promise<CacheEntry | undefined> {
  const entry = await peekCache(store, key);
  // A hit makes the entry recently used: gc keeps those longest once no tag uses them.
  if (entry) await store.touchRoot(rootName(key));
  return entry;
}

/**
 * The cache entry of `key`, when the store holds it whole, without making it recently used: what
 * `strata check` reads, which must not keep entries from a gc that no build uses any more.
 */
export async function peekCache(store: Store, key: Digest): Promise<CacheEntry | undefined> {
  const doc = (await store.getRoot(rootName(key))) as unknown as { entry?: CacheEntry } | undefined;
  const entry = doc?.entry;
  if (!entry || entry.key !== key) return undefined;
  if (!entry.layer !== (entry.emptyLayer === true)) return undefined;
  // A layer blob of another size is damaged: a miss runs the step again, and writing its
  // layer replaces the broken copy.
  if (entry.layer && !(await store.holdsBlob(entry.layer.digest, entry.layer.size)))
    return undefined;
  return entry;
}

export async function writeCache(store: Store, entry: CacheEntry): Promise<void> {
  await store.putRoot(rootName(entry.key), {
    descriptors: entry.layer ? [entry.layer] : [],
    entry: entry as unknown as Record<string, unknown>,
  });
}

/** The cache entry of one DEBUILD source: the .debs it made and the source package it built. */
export interface DebuildEntry {
  key: Digest;
  kind: 'debuild';
  source: string;
  debs: BuiltDeb[];
  /** The files of its Debian source package (the .dsc among them), titled, sorted by name. */
  sources: Descriptor[];
}

/** Every blob a DEBUILD entry names: its .debs, then its source files. */
export function debuildBlobs(entry: DebuildEntry): Descriptor[] {
  return [...entry.debs.map((d) => d.blob), ...entry.sources];
}

/** The DEBUILD entry of `key`, when the store has it and every .deb and source file it names. */
export async function readDebuildCache(
  store: Store,
  key: Digest,
): Promise<DebuildEntry | undefined> {
  const doc = (await store.getRoot(rootName(key))) as { entry?: DebuildEntry } | undefined;
  const entry = doc?.entry;
  if (!entry || entry.key !== key || entry.kind !== 'debuild') return undefined;
  if (!Array.isArray(entry.sources) || entry.sources.length === 0) return undefined;
  for (const d of debuildBlobs(entry)) if (!(await store.hasBlob(d.digest))) return undefined;
  await store.touchRoot(rootName(key));
  return entry;
}

export async function writeDebuildCache(store: Store, entry: DebuildEntry): Promise<void> {
  await store.putRoot(rootName(entry.key), {
    descriptors: debuildBlobs(entry),
    entry: entry as unknown as Record<string, unknown>,
  });
}

/**
 * Content digest of build-context paths (COPY sources, local .debs): relative path, type,
 * mode, owner, size, content and symlink targets, walked in sorted order. A path given as
 * `{ written, path }` is hashed under the name it was written as, and read where it resolved to.
 * A source marked `filtered` holds only what `ignore` keeps, so that what the ignore file leaves
 * out does not change the digest; what it keeps is hashed as it would be without it.
 */
export function hashContextPaths(
  context: string,
  paths: ReadonlyArray<string | CopySource>,
  ignore?: ContextIgnore,
): Digest {
  const h = createHash('sha256');
  const root = path.resolve(context);
  const visit = (abs: string, rel: string, recurse = true): void => {
    const st = fs.lstatSync(abs);
    h.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
    if (st.isSymbolicLink()) h.update(`L${fs.readlinkSync(abs)}\0`);
    else if (st.isDirectory()) {
      if (!recurse) return;
      for (const name of fs.readdirSync(abs).sort()) visit(path.join(abs, name), `${rel}/${name}`);
    } else if (st.isFile()) {
      h.update(`F${st.size}\0`);
      const fd = fs.openSync(abs, 'r');
      try {
        const buf = Buffer.allocUnsafe(1 << 20);
        for (;;) {
          const n = fs.readSync(fd, buf, 0, buf.length, null);
          if (n === 0) break;
          h.update(buf.subarray(0, n));
        }
      } finally {
        fs.closeSync(fd);
      }
    }
  };
  for (const p of paths) {
    const rel = typeof p === 'string' ? p : p.written;
    const abs = path.resolve(root, typeof p === 'string' ? p : p.path);
    if (abs !== root && !abs.startsWith(root + path.sep)) {
      throw new InvalidArgumentError(`${rel} is outside the build context`);
    }
    if (!fs.existsSync(abs))
      throw new NotFoundError(`${rel} is not in the build context ${context}`);
    if (typeof p !== 'string' && p.filtered && ignore !== undefined) {
      visit(abs, rel, false);
      const dir = path.relative(root, abs).split(path.sep).join('/');
      for (const kept of keptUnder(root, dir, ignore))
        visit(path.join(abs, kept), `${rel}/${kept}`, false);
    } else visit(abs, rel);
  }
  return `sha256:${h.digest('hex')}` as Digest;
}
