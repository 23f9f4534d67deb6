/**
 * Filesystem and partition-table tools for disk images: e2fsprogs (mke2fs), util-linux (sfdisk),
 * dosfstools (mkfs.vfat) and mtools (mmd, mcopy). They all work on plain files: no loop
 * devices, no mounts, no root needed (except for reading a root-owned tree).
 */
import { runTool } from './spawn';

export interface Mke2fsOptions {
  /** The image file; created (or truncated) to `sizeBytes`. */
  file: string;
  sizeBytes: number;
  /** Populate from this directory (`-d`). */
  fromDir?: string;
  label?: string;
  /** Filesystem UUID (also used as the directory hash seed, for reproducible output). */
  uuid?: string;
  fsType?: 'ext4' | 'ext3' | 'ext2';
  /** Fixed timestamps for the superblock and inodes (E2FSPROGS_FAKE_TIME), seconds. */
  fakeTime?: number;
}

/** `mke2fs -t ext4 [-d DIR] …` on a regular file. */
export async function mke2fs(o: Mke2fsOptions): Promise<void> {
  const args = ['-q', '-F', '-t', o.fsType ?? 'ext4', '-b', '4096', '-E', 'root_owner=0:0'];
  if (o.label !== undefined) args.push('-L', o.label);
  if (o.uuid !== undefined) args.push('-U', o.uuid, '-E', `hash_seed=${o.uuid}`);
  if (o.fromDir !== undefined) args.push('-d', o.fromDir);
  args.push(o.file, `${Math.floor(o.sizeBytes / 1024)}k`);
  const env: Record<string, string> = {};
  if (o.fakeTime !== undefined) env.E2FSPROGS_FAKE_TIME = String(o.fakeTime);
  await runTool('mke2fs', args, { env });
}

/** Write a partition table to an image file with an sfdisk script (see sfdisk(8)). */
export async function sfdiskWrite(file: string, script: string): Promise<void> {
  await runTool(
    'sfdisk',
    ['--no-reread', '--no-tell-kernel', '--quiet', '--wipe', 'always', file],
    {
      input: script,
    },
  );
}

/** `sfdisk --json FILE`, parsed. */
export async function sfdiskDump(file: string): Promise<unknown> {
  return JSON.parse(await runTool('sfdisk', ['--json', file])) as unknown;
}

export interface MkfsVfatOptions {
  file: string;
  sizeBytes: number;
  label?: string;
  /** Volume ID, 8 hex digits. */
  volumeId?: string;
}

/** `mkfs.vfat --invariant` on a file of the given size (created here). */
export async function mkfsVfat(o: MkfsVfatOptions): Promise<void> {
  const args = ['-C', '--invariant'];
  if (o.label !== undefined) args.push('-n', o.label.toUpperCase());
  if (o.volumeId !== undefined) args.push('-i', o.volumeId);
  args.push(o.file, String(Math.floor(o.sizeBytes / 1024)));
  await runTool('mkfs.vfat', args);
}

// FAT stores local time: UTC keeps the bytes the same on every host.
const MTOOLS_ENV = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', TZ: 'UTC0' };

/** mtools dates what it makes itself (a directory of mmd) by SOURCE_DATE_EPOCH when given. */
function mtoolsEnv(sourceDateEpoch?: number): Record<string, string> {
  return sourceDateEpoch === undefined
    ? MTOOLS_ENV
    : { ...MTOOLS_ENV, SOURCE_DATE_EPOCH: String(sourceDateEpoch) };
}

/** Make directories (and their parents, given in order) in a FAT image: `mmd -D s`. */
export async function mtoolsMkdir(
  image: string,
  dirs: readonly string[],
  sourceDateEpoch?: number,
): Promise<void> {
  if (dirs.length === 0) return;
  await runTool('mmd', ['-D', 's', '-i', image, ...dirs.map((d) => `::${d}`)], {
    env: mtoolsEnv(sourceDateEpoch),
  });
}

/**
 * Copy host files or trees into a FAT image: `mcopy -s -p -m -o -i IMG SRC… ::DEST`. Files and
 * directories keep their mtimes (-m), so the caller dates the tree.
 */
export async function mtoolsCopy(
  image: string,
  sources: readonly string[],
  dest: string,
  sourceDateEpoch?: number,
): Promise<void> {
  if (sources.length === 0) return;
  await runTool('mcopy', ['-s', '-p', '-m', '-o', '-i', image, ...sources, `::${dest}`], {
    env: mtoolsEnv(sourceDateEpoch),
  });
}
