import * as path from 'node:path';
import { commitFile, Store } from '@strata/store';
import { makeFilesystem, stableUuid, sizeFor, treeUsage } from './filesystem';
import { ResolvedImage } from './resolve-image';
import { CommonOptions, flattenScratch, stopIfInterrupted, withScratch } from './scratch';

export interface Ext4Options extends CommonOptions {
  /** Minimum size in bytes. */
  size?: number;
  /** Free space on top of the content (default 10 MiB unless size is given). */
  extraSpace?: number;
  label?: string;
}

export interface Ext4Result {
  image: ResolvedImage;
  sizeBytes: number;
  contentBytes: number;
  uuid: string;
}

/**
 * Build an ext4 filesystem image of an image's rootfs with `mke2fs -d`: the layers are flattened
 * into a scratch directory (as root, so owners, modes, xattrs and device nodes survive), sized
 * as max(size, content × 1.3 + extra space), and written to `output`. No loop devices or mounts.
 */
export async function buildExt4Image(
  store: Store,
  ref: string,
  output: string,
  o: Ext4Options = {},
): Promise<Ext4Result> {
  return withScratch(output, o, async (scratch) => {
    const { image, root } = await flattenScratch(store, ref, scratch, o);
    const usage = treeUsage(root);
    const sizeBytes = sizeFor(usage.bytes, {
      size: o.size,
      extraSpace: o.extraSpace ?? (o.size !== undefined ? 0 : undefined),
    });
    const uuid = stableUuid(image.descriptor.digest, 'ext4', o.label ?? '');
    const tmp = path.join(scratch, 'out.ext4');
    await makeFilesystem(
      { fstype: 'ext4', file: tmp, sizeBytes, fromDir: root, label: o.label, uuid, detail: output },
      o,
    );
    stopIfInterrupted(o);
    await commitFile(tmp, output);
    return { image, sizeBytes, contentBytes: usage.bytes, uuid };
  });
}
