/**
 * One filesystem in a plain file, populated from a tree: ext4 through `mke2fs -d`, FAT through
 * mkfs.vfat and mcopy. Also how big it must be, and the stable UUIDs that keep the output
 * reproducible. No loop devices, no mounts.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '@strata/oci';
import { mke2fs, mkfsVfat, mtoolsCopy } from '@strata/tools';
import { CommonOptions, stopIfInterrupted } from './scratch';
import { FsType } from './wks';

export const MiB = 1024 * 1024;

export function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** A UUID derived from the image and a purpose, so the same input gives the same output. */
export function stableUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x40;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** Space a tree needs on a 4 KiB-block filesystem: blocks of its files, plus one per inode. */
export function treeUsage(root: string): { bytes: number; inodes: number } {
  let bytes = 0;
  let inodes = 0;
  const seen = new Set<string>();
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir)) {
      const p = `${dir}/${name}`;
      const st = fs.lstatSync(p);
      if (st.nlink > 1 && !st.isDirectory()) {
        const key = `${st.dev}:${st.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      inodes++;
      bytes += 4096 + (st.isFile() ? roundUp(st.size, 4096) : 0);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return { bytes, inodes };
}

/** max(size, content × overhead + extra space), at least 4 MiB, in whole MiB. */
export function sizeFor(
  contentBytes: number,
  o: { size?: number; extraSpace?: number; overheadFactor?: number },
): number {
  const wanted = Math.ceil(contentBytes * (o.overheadFactor ?? 1.3)) + (o.extraSpace ?? 10 * MiB);
  return roundUp(Math.max(o.size ?? 0, wanted, 4 * MiB), MiB);
}

/** One filesystem to make, and what names it in progress events. */
export interface FilesystemSpec {
  fstype: FsType;
  file: string;
  sizeBytes: number;
  fromDir: string | undefined;
  label: string | undefined;
  /**
   * A UUID for ext4 (it also seeds the directory hash, for reproducible output); the volume ID
   * of a FAT filesystem is its first 8 hex digits.
   */
  uuid: string;
  detail: string;
  /**
   * For a tree Strata staged itself (a boot partition), the mtime every entry of it is given:
   * its files were just written, and FAT keeps their times. A rootfs subtree keeps the mtimes
   * of its layers instead.
   */
  stamp?: number;
}

/** The oldest time FAT can hold: 1980-01-01 00:00:00 UTC. */
const FAT_EPOCH = 315532800;

/**
 * When the files a source writes into a vfat partition are dated: SOURCE_DATE_EPOCH, else the
 * image's creation time, so that the same image gives the same bytes.
 */
export function vfatStamp(
  sourceDateEpoch: number | undefined,
  created: string | undefined,
): number {
  const fromImage = created === undefined ? NaN : Math.floor(Date.parse(created) / 1000);
  const t = sourceDateEpoch ?? (Number.isFinite(fromImage) ? fromImage : FAT_EPOCH);
  return Math.max(t, FAT_EPOCH);
}

function stampTree(dir: string, t: number): void {
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.lstatSync(p).isDirectory()) stampTree(p, t);
    fs.lutimesSync(p, t, t);
  }
}

/** FAT has no symlinks, owners or device nodes: refuse them instead of following a symlink. */
function checkFatTree(dir: string, rel = ''): void {
  for (const name of fs.readdirSync(path.join(dir, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const st = fs.lstatSync(path.join(dir, r));
    if (st.isDirectory()) checkFatTree(dir, r);
    else if (!st.isFile()) {
      throw new InvalidArgumentError(`vfat partition: ${r} is not a regular file or directory`);
    }
  }
}

/** Make the filesystem in `spec.file`, holding a copy of `spec.fromDir` when given. */
export async function makeFilesystem(spec: FilesystemSpec, o: CommonOptions): Promise<void> {
  const { file, sizeBytes, fromDir, label, uuid, detail } = spec;
  stopIfInterrupted(o);
  if (spec.fstype === 'ext4') {
    o.onProgress?.({ phase: 'mke2fs', detail, total: sizeBytes });
    await mke2fs({ file, sizeBytes, fromDir, label, uuid, fakeTime: o.sourceDateEpoch });
    return;
  }
  o.onProgress?.({ phase: 'mkfs.vfat', detail, total: sizeBytes });
  await mkfsVfat({ file, sizeBytes, label, volumeId: uuid.slice(0, 8) });
  if (fromDir === undefined) return;
  checkFatTree(fromDir);
  if (spec.stamp !== undefined) stampTree(fromDir, spec.stamp);
  const top = fs
    .readdirSync(fromDir)
    .sort()
    .map((n) => path.join(fromDir, n));
  await mtoolsCopy(file, top, '/', spec.stamp ?? o.sourceDateEpoch);
}
