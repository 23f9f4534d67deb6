import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import {
  Annotations,
  Compression,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  InvalidArgumentError,
  PlatformSelector,
  StrataError,
  TemplateMetadata,
  formatPlatform,
} from '@strata/oci';
import { createLayer, packTree, unpackLayer } from '@strata/layer';
import { normalizeTag, Store, writeImage } from '@strata/store';
import { ExclusionOptions, ExclusionSet } from './exclusions';
import { debianArchitectureOf, ociPlatform } from '@strata/debian';
import { hostDebianArchitecture } from '@strata/tools';
import { readRootfsFacts } from './facts';
import { RootfsSource } from './rootfs-input';

export interface Progress {
  phase: 'extract' | 'pack';
  /** Bytes processed so far in this phase (uncompressed tar bytes). */
  bytes: number;
}

export interface CreateTemplateOptions extends ExclusionOptions {
  source: RootfsSource;
  /** Local tag(s) to store the template under (`name[:tag]`), as `docker build -t a -t b`. */
  tag: string | readonly string[];
  /** Template name recorded in the metadata. */
  name: string;
  features?: readonly string[];
  compression?: Compression;
  /** Build date and mtime clamp (seconds since the epoch), as SOURCE_DATE_EPOCH. */
  sourceDateEpoch?: number;
  /** The build date when no epoch is given. */
  now?: Date;
  onProgress?: (p: Progress) => void;
  /**
   * The platform the rootfs is for. Checked against its dpkg's architecture when it has one;
   * without dpkg (a Yocto or Buildroot tree) it is the only way to say. Default: dpkg's, else the
   * host's, with a warning.
   */
  platform?: PlatformSelector;
  /** A warning for the user (no dpkg and no platform: the host's was taken). */
  onWarning?: (message: string) => void;
  /**
   * Stops the create (an INTERRUPTED StrataError), which then removes its unpacked rootfs: a
   * tree with set-uid files must not stay in the store for nobody.
   */
  signal?: AbortSignal;
}

/** A tag that named another image before this one took it. */
export interface TagMove {
  ref: string;
  from: Digest;
  to: Digest;
}

export interface CreatedTemplate {
  /** The first tag, normalized. */
  ref: string;
  /** Every tag, normalized, in the order given. */
  refs: string[];
  /** Tags that pointed at another image before (overwritten, as docker does, but reported). */
  moved: TagMove[];
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
}

/** RFC 3339 date, whole seconds. */
export function isoDate(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function counter(phase: Progress['phase'], onProgress?: (p: Progress) => void): Transform {
  let bytes = 0;
  let last = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      bytes += chunk.length;
      const now = Date.now();
      if (onProgress && now - last > 100) {
        last = now;
        onProgress({ phase, bytes });
      }
      cb(null, chunk);
    },
    flush(cb) {
      onProgress?.({ phase, bytes });
      cb();
    },
  });
}

/**
 * Turn a finished root filesystem into a template: one deterministic layer holding the tree
 * minus the host-specific exclusions, with metadata read from the tree itself.
 */
export async function createTemplate(
  store: Store,
  opts: CreateTemplateOptions,
): Promise<CreatedTemplate> {
  if (opts.name.trim() === '') throw new InvalidArgumentError('the template needs a --name');
  // Every tag is checked before the (long) packing, and a tag given twice is tagged once.
  const tags = typeof opts.tag === 'string' ? [opts.tag] : opts.tag;
  if (tags.length === 0) throw new InvalidArgumentError('the template needs a tag');
  const refs = [...new Set(tags.map((t) => normalizeTag(t)))];
  const exclusions = new ExclusionSet(opts);
  const { signal } = opts;
  if (signal?.aborted) throw interrupted();
  return store.withLease(async () => {
    let scratch: string | undefined;
    // The stream being read when the signal aborts: destroying it ends the create at once.
    let reading: Readable | undefined;
    const stop = (): void => {
      reading?.destroy(interrupted());
    };
    signal?.addEventListener('abort', stop, { once: true });
    try {
      let root: string;
      let label: string;
      if (opts.source.kind === 'dir') {
        root = opts.source.path;
        label = path.basename(root);
      } else {
        scratch = await makeIngestDir(store);
        root = scratch;
        label = opts.source.label;
        reading = opts.source.stream;
        const counted = opts.source.stream.pipe(counter('extract', opts.onProgress));
        opts.source.stream.on('error', (e) => counted.destroy(e));
        if (signal?.aborted) throw interrupted();
        await unpackLayer(counted, opts.source.compression, root);
      }
      if (signal?.aborted) throw interrupted();
      return await captureTree(store, root, label, exclusions, refs, opts, (tar) => {
        reading = tar;
      });
    } catch (e) {
      throw signal?.aborted ? interrupted() : e;
    } finally {
      signal?.removeEventListener('abort', stop);
      if (scratch !== undefined) await fsp.rm(scratch, { recursive: true, force: true });
    }
  });
}

/** What a create that its signal stopped throws. */
function interrupted(): StrataError {
  return new StrataError('INTERRUPTED', 'template create interrupted');
}

/**
 * A new folder in the store's ingest area for an unpacked rootfs, named `rootfs-<pid>-<hex>`:
 * a gc tells by the pid whether the create that made it is still running (see tempOwner).
 */
async function makeIngestDir(store: Store): Promise<string> {
  const dir = path.join(
    store.root,
    '.strata',
    'ingest',
    `rootfs-${process.pid}-${randomBytes(6).toString('hex')}`,
  );
  await fsp.mkdir(dir, { mode: 0o700 });
  return dir;
}

async function captureTree(
  store: Store,
  root: string,
  label: string,
  exclusions: ExclusionSet,
  refs: readonly string[],
  opts: CreateTemplateOptions,
  onReading: (tar: Readable) => void,
): Promise<CreatedTemplate> {
  const facts = await readRootfsFacts(root);
  const debArch = rootfsArchitecture(label, facts.architecture, opts);
  const created = isoDate(
    opts.sourceDateEpoch !== undefined
      ? new Date(opts.sourceDateEpoch * 1000)
      : (opts.now ?? new Date()),
  );
  const compression = opts.compression ?? 'zstd';

  const tar = packTree({
    root,
    sourceDateEpoch: opts.sourceDateEpoch,
    exclude: (rel, kind) => exclusions.decide(rel, kind),
  });
  onReading(tar);
  const counted = tar.pipe(counter('pack', opts.onProgress));
  tar.on('error', (e) => counted.destroy(e));
  const layer = createLayer(counted, compression);
  const blob = await store.putBlob(layer.blob as Readable);
  const { diffId, mediaType } = await layer.result;
  await store.recordDiffId(blob.digest, diffId);

  const createdBy = `strata template create ${label}`;
  const metadata: TemplateMetadata = {
    schemaVersion: 1,
    name: opts.name,
    created,
    features: [...new Set(opts.features ?? [])].sort(),
    architecture: debArch,
    distribution: facts.distribution,
    packages: facts.packages,
    exclusions: exclusions.record(),
    layers: [
      {
        diffId,
        createdBy,
        packagesAdded: facts.packages.map((p) => `${p.name}=${p.version}`),
      },
    ],
  };
  const { descriptor, manifest, config } = await writeImage(store, {
    metadata,
    layers: [
      {
        descriptor: { mediaType, digest: blob.digest, size: blob.size },
        diffId,
        history: { created, created_by: createdBy, comment: `template ${opts.name}` },
      },
    ],
    platform: ociPlatform(debArch),
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    labels: { [Annotations.title]: opts.name },
    annotations: {
      [Annotations.title]: opts.name,
      [Annotations.created]: created,
      [Annotations.description]: `Strata template ${opts.name}${
        facts.distribution.prettyName ? ` (${facts.distribution.prettyName})` : ''
      }`,
    },
  });
  const moved: TagMove[] = [];
  for (const ref of refs) {
    const before = await store.tag(ref, descriptor);
    if (before !== undefined && before.digest !== descriptor.digest)
      moved.push({ ref, from: before.digest, to: descriptor.digest });
  }
  return { ref: refs[0] as string, refs: [...refs], moved, descriptor, manifest, config };
}

/**
 * The Debian architecture a template of rootfs `label` is labelled with: dpkg's (`dpkgArch`),
 * which a platform asked for must agree with, else the platform asked for, else the host's, said
 * in a warning, as a tree without dpkg gives no other clue.
 */
function rootfsArchitecture(
  label: string,
  dpkgArch: string | undefined,
  opts: Pick<CreateTemplateOptions, 'platform' | 'onWarning'>,
): string {
  const asked = opts.platform ? debianArchitectureOf(opts.platform) : undefined;
  if (asked !== undefined && dpkgArch !== undefined && asked !== dpkgArch) {
    throw new InvalidArgumentError(
      `${label}: its dpkg's architecture is ${dpkgArch}, not ${asked} (${formatPlatform(opts.platform as PlatformSelector)})`,
      { hint: 'drop --platform: a rootfs with dpkg says its own platform' },
    );
  }
  if (dpkgArch !== undefined) return dpkgArch;
  if (asked !== undefined) return asked;
  const host = hostDebianArchitecture();
  opts.onWarning?.(
    `${label} has no dpkg to tell its architecture: it is labelled ${host}, this host's; give --platform to say which it is`,
  );
  return host;
}
