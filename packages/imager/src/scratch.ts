/**
 * What the ext4 and the disk image builders share: their common options and progress events,
 * and the scratch directory that holds the flattened rootfs while the filesystems are made.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  NoSpaceError,
  PlatformSelector,
  Role,
  StrataError,
  ToolFailedError,
  isNoSpace,
} from '@strata/oci';
import { Store } from '@strata/store';
import { flattenToDir } from './flatten';
import { ownedScratch } from './owned-scratch';
import { ResolvedImage } from './resolve-image';

export interface ImageProgress {
  phase: 'flatten' | 'mke2fs' | 'mkfs.vfat' | 'partition' | 'copy' | 'bmap' | 'compress';
  /** What is being worked on, e.g. the mountpoint. */
  detail?: string;
  bytes?: number;
  total?: number;
}

export interface CommonOptions {
  role?: Role;
  /** Of a multi-platform template, the platform's image. */
  platform?: PlatformSelector;
  /** Fixed timestamps in the filesystems (as SOURCE_DATE_EPOCH). */
  sourceDateEpoch?: number;
  /** Scratch space (needs room for the flat rootfs and each partition); default: next to the output. */
  tmpDir?: string;
  onProgress?: (p: ImageProgress) => void;
  /**
   * Stops the build at the next chunk of the unpack or before the next filesystem or copy (an
   * INTERRUPTED StrataError); the scratch directory goes as on any failure.
   */
  signal?: AbortSignal;
}

/** Throws an INTERRUPTED StrataError once `o.signal` has aborted. */
export function stopIfInterrupted(o: CommonOptions): void {
  if (o.signal?.aborted) throw new StrataError('INTERRUPTED', 'image interrupted');
}

/**
 * Run `work` in a fresh scratch directory next to `output` (or in `o.tmpDir`), so that the
 * result can be renamed into place on the same filesystem; the directory is removed however it
 * ends, `o.signal` included.
 */
export async function withScratch<T>(
  output: string,
  o: CommonOptions,
  work: (scratch: string) => Promise<T>,
): Promise<T> {
  stopIfInterrupted(o);
  const dir = o.tmpDir ?? path.dirname(path.resolve(output));
  const scratch = await ownedScratch(dir, '.strata-image-');
  try {
    return await work(scratch);
  } catch (e) {
    // A tool the signal reached too (a terminal's Ctrl-C) fails in its own words.
    stopIfInterrupted(o);
    // The scratch directory goes below, so the full disk is named by where it was made.
    if (isNoSpace(e) || toolRanOutOfSpace(e)) throw new NoSpaceError(dir, undefined, { cause: e });
    throw e;
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
}

/** mke2fs, mkfs.vfat and mtools say a disk is full only in their own words. */
function toolRanOutOfSpace(e: unknown): boolean {
  return e instanceof ToolFailedError && /no space left on device|disk full/i.test(e.message);
}

/** Flatten into scratch/rootfs; returns the image and the directory. */
export async function flattenScratch(
  store: Store,
  ref: string,
  scratch: string,
  o: CommonOptions,
): Promise<{ image: ResolvedImage; root: string }> {
  const root = path.join(scratch, 'rootfs');
  o.onProgress?.({ phase: 'flatten', detail: ref });
  const { image } = await flattenToDir(store, ref, root, {
    role: o.role,
    ...(o.platform ? { platform: o.platform } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  return { image, root };
}
