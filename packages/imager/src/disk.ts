import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { debianArchitectureOf } from '@strata/debian';
import { Compression, InvalidArgumentError, NotFoundError, ParseError } from '@strata/oci';
import { compressStream } from '@strata/tools';
import { commitFile, Store } from '@strata/store';
import { BmapSummary, bmapOf, MappedBlocks } from './bmap';
import { rawcopyFile, stageBootPartition } from './boot-partition';
import { stageEsp } from './esp';
import {
  makeFilesystem,
  MiB,
  roundUp,
  sizeFor,
  stableUuid,
  treeUsage,
  vfatStamp,
} from './filesystem';
import {
  DiskPartition,
  layoutPartitions,
  partitionNumber,
  writePartitionTable,
} from './partition-table';
import { ResolvedImage } from './resolve-image';
import { CommonOptions, flattenScratch, stopIfInterrupted, withScratch } from './scratch';
import { Wks, WksPart } from './wks';

export interface DiskResult {
  image: ResolvedImage | undefined;
  sizeBytes: number;
  ptable: 'gpt' | 'msdos';
  partitions: DiskPartition[];
  /** The msdos extended partition (number 4) that holds the logical ones, if any. */
  extended?: { start: number; size: number };
  /** The block map written beside the image (DiskOptions.bmap). */
  bmap?: BmapSummary & { file: string };
}

/**
 * Copy `src` into `dst` at `offset`, skipping all-zero chunks (the image stays sparse); the
 * chunks written are marked in `written`.
 */
async function copyInto(
  src: string,
  dst: number,
  offset: number,
  written: MappedBlocks,
  onBytes?: (n: number) => void,
): Promise<void> {
  const fd = fs.openSync(src, 'r');
  const buf = Buffer.allocUnsafe(4 * MiB);
  const zero = Buffer.alloc(4 * MiB);
  let pos = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      if (Buffer.compare(buf.subarray(0, n), zero.subarray(0, n)) !== 0) {
        let w = 0;
        while (w < n) w += fs.writeSync(dst, buf, w, n - w, offset + pos + w);
        written.add(offset + pos, n);
      }
      pos += n;
      onBytes?.(n);
      if (pos % (64 * MiB) === 0) await new Promise((r) => setImmediate(r));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** A disk image's compression, from its name: `.zst` and `.gz` are compressed, any other raw. */
export function diskCompression(file: string): Compression {
  if (/\.(zst|zstd)$/.test(file)) return 'zstd';
  if (/\.gz$/.test(file)) return 'gzip';
  return 'none';
}

/**
 * Where the block map of disk image `output` goes: beside it, named after the raw image
 * (`disk.img.zst` has `disk.img.bmap`), the name `bmaptool copy` looks for first after its own.
 */
export function bmapPathFor(output: string): string {
  return `${diskCompression(output) === 'none' ? output : output.replace(/\.[^./]+$/, '')}.bmap`;
}

/** Compress the finished raw image into `out`; its holes read as zeros, which compress away. */
async function compressInto(
  raw: string,
  out: string,
  c: Compression,
  onBytes: (n: number) => void,
): Promise<void> {
  const tool = compressStream(c);
  const input = fs.createReadStream(raw, { highWaterMark: 1 << 20 });
  input.on('data', (chunk) => onBytes(chunk.length));
  await Promise.all([
    pipeline(input, tool.stdin),
    pipeline(tool.stdout, fs.createWriteStream(out, { mode: 0o644 })),
    tool.done,
  ]);
}

/**
 * A problem a part's source met in the rootfs, as an error of its line in the .wks: every error
 * a .wks line causes reads `file:line:column` and exits alike.
 */
function atPart(e: unknown, file: string, p: WksPart): unknown {
  if (!(e instanceof InvalidArgumentError || e instanceof NotFoundError)) return e;
  const c = p.columns;
  const option = (e as { wksOption?: string }).wksOption;
  const col = (option === 'sourceparams' ? c?.sourceparams : undefined) ?? c?.source ?? c?.part;
  const msg = e.message.startsWith(`${p.source}`) ? e.message : `${p.source}: ${e.message}`;
  return new ParseError(file, p.line, col ?? 1, msg, { hint: e.hint, cause: e });
}

export interface DiskOptions extends CommonOptions {
  /** Where the .wks came from, for messages. */
  wksFile?: string;
  /** Also write the image's block map (bmaptool's format) to this file. */
  bmap?: string;
}

/**
 * What a flash must write, as `bmaptool create` would find it in the sparse image: the chunks of
 * each filesystem that were copied in (`written`), and everything outside the filesystems and
 * empty partitions: the table and its backup, the EBRs between logical partitions, the
 * alignment gaps, and each rawcopy part whole, zero bytes and all, as its bootloader needs them.
 */
function dataOf(
  parts: readonly DiskPartition[],
  raws: readonly (string | undefined)[],
  sizeBytes: number,
  written: MappedBlocks,
): MappedBlocks {
  const managed = parts
    .filter((_, i) => raws[i] === undefined)
    .map((p): [number, number] => [p.start, p.start + p.size])
    .sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [start, end] of managed) {
    written.add(at, start - at);
    at = Math.max(at, end);
  }
  written.add(at, sizeBytes - at);
  return written;
}

/**
 * Build a partitioned raw disk image from a parsed .wks: the rootfs is flattened once into
 * scratch, each partition's filesystem is made in its own file (mke2fs -d; mkfs.vfat + mcopy),
 * the table is written with sfdisk, and each filesystem is copied to its offset. No loop
 * devices, no mounts. Partition and filesystem UUIDs derive from the image digest.
 */
export async function buildDiskImage(
  store: Store,
  ref: string,
  wks: Wks,
  output: string,
  o: DiskOptions = {},
): Promise<DiskResult> {
  // Only a partition with a --source needs the rootfs: an empty disk needs no flatten.
  const needsRoot = wks.parts.some((p) => p.source !== undefined);
  return withScratch(output, o, async (scratch) => {
    let image: ResolvedImage | undefined;
    let root: string | undefined;
    if (needsRoot) ({ image, root } = await flattenScratch(store, ref, scratch, o));
    const seed = image?.descriptor.digest ?? ref;
    // Debian's name (armhf, i386), which the sources and the partition types go by.
    const arch = image === undefined ? 'amd64' : debianArchitectureOf(image.config);
    const ptable = wks.bootloader.ptable;
    const diskId = stableUuid(seed, 'disk');
    const mbrId = `0x${diskId.slice(0, 8)}`;
    const uuids = wks.parts.map(
      (p, i) => p.uuid ?? stableUuid(seed, 'part', String(i), p.mountpoint),
    );
    // On msdos the kernel's PARTUUID is "<disk id>-<partition number in hex>".
    const partUuid = (i: number): string =>
      ptable === 'gpt'
        ? (uuids[i] as string)
        : `${diskId.slice(0, 8)}-${partitionNumber(wks, i).toString(16).padStart(2, '0')}`;
    const rootIdx = wks.parts.findIndex((p) => p.mountpoint === '/');
    const rootDevice = rootIdx >= 0 ? `PARTUUID=${partUuid(rootIdx)}` : undefined;

    // 1. What goes in each partition, and so its size.
    const froms: (string | undefined)[] = [];
    const sizes: number[] = [];
    // rawcopy parts: the rootfs file whose bytes are the partition.
    const raws: (string | undefined)[] = [];
    const wksFile = o.wksFile ?? 'wks';
    for (const [i, p] of wks.parts.entries()) {
      let from: string | undefined;
      try {
        if (p.source === 'rawcopy') {
          const file = rawcopyFile(root as string, p);
          raws.push(file);
          froms.push(undefined);
          // Whole sectors, and never less than the file: wic sizes a rawcopy part by its file.
          const bytes = roundUp(fs.statSync(file).size, 512);
          sizes.push(Math.max(bytes, p.size ?? 0));
          continue;
        }
        raws.push(undefined);
        if (p.source === 'rootfs') {
          from = path.join(root as string, p.mountpoint);
          const rel = p.mountpoint.replace(/^\/+/, '');
          if (rel !== '') {
            const st = fs.lstatSync(from, { throwIfNoEntry: false });
            if (
              st === undefined ||
              !st.isDirectory() ||
              fs.realpathSync(from) !== path.join(fs.realpathSync(root as string), rel)
            ) {
              throw new ParseError(
                wksFile,
                p.line,
                p.columns?.mountpoint ?? 1,
                `${p.mountpoint} is not a directory in the rootfs`,
              );
            }
          }
        } else if (p.source === 'bootimg-efi') {
          from = path.join(scratch, `esp${i + 1}`);
          fs.mkdirSync(from);
          stageEsp(root as string, from, arch, rootDevice, wks.bootloader);
        } else if (p.source === 'bootimg-partition') {
          from = path.join(scratch, `boot${i + 1}`);
          fs.mkdirSync(from);
          stageBootPartition(root as string, from, p, rootDevice, wks.bootloader);
        }
      } catch (e) {
        throw atPart(e, wksFile, p);
      }
      froms.push(from);
      const content = from === undefined ? 0 : treeUsage(from).bytes;
      sizes.push(
        from === undefined && p.size !== undefined ? roundUp(p.size, MiB) : sizeFor(content, p),
      );
    }

    // 2. Layout, before any filesystem is made: a layout the table cannot hold fails early.
    const layout = layoutPartitions(wks, sizes, arch, uuids, o.wksFile);
    const parts = layout.partitions;
    const sizeBytes = layout.sizeBytes;

    // 3. Each partition's filesystem, in its own file.
    const stamp = vfatStamp(o.sourceDateEpoch, image?.config.created);
    const files: (string | undefined)[] = [];
    for (const [i, p] of wks.parts.entries()) {
      stopIfInterrupted(o);
      const file = path.join(scratch, `part${i + 1}.img`);
      const from = froms[i];
      const size = sizes[i] as number;
      if (p.fstype === undefined) {
        files.push(raws[i]);
        continue;
      }
      // Each kind keeps its own seed, so that the same input still gives the same IDs.
      const uuid = stableUuid(seed, p.fstype === 'ext4' ? 'fs' : 'vfat', String(i));
      await makeFilesystem(
        {
          fstype: p.fstype,
          file,
          sizeBytes: size,
          fromDir: from,
          label: p.label,
          uuid,
          detail: p.mountpoint,
          stamp: p.source === 'rootfs' ? undefined : stamp,
        },
        o,
      );
      files.push(file);
    }

    // 4. The table, then the filesystems at their offsets.
    const tmp = path.join(scratch, 'disk.img');
    fs.closeSync(fs.openSync(tmp, 'w'));
    fs.truncateSync(tmp, sizeBytes);
    o.onProgress?.({ phase: 'partition', detail: ptable });
    await writePartitionTable(tmp, wks, layout, ptable === 'gpt' ? diskId.toUpperCase() : mbrId);
    const total = files.reduce((a, f, i) => a + (f ? (sizes[i] as number) : 0), 0);
    let copied = 0;
    const written = new MappedBlocks();
    const fd = fs.openSync(tmp, 'r+');
    try {
      for (const [i, f] of files.entries()) {
        if (f === undefined) continue;
        stopIfInterrupted(o);
        await copyInto(f, fd, (parts[i] as DiskPartition).start, written, (n) => {
          copied += n;
          o.onProgress?.({ phase: 'copy', bytes: copied, total });
        });
        // The rootfs file of a rawcopy part goes when the scratch does.
        if (raws[i] === undefined) fs.rmSync(f);
      }
    } finally {
      fs.closeSync(fd);
    }
    stopIfInterrupted(o);
    let bmap: DiskResult['bmap'];
    let bmapTmp: string | undefined;
    if (o.bmap !== undefined) {
      o.onProgress?.({ phase: 'bmap' });
      const { text, summary } = await bmapOf(
        tmp,
        sizeBytes,
        dataOf(parts, raws, sizeBytes, written),
      );
      bmapTmp = path.join(scratch, 'disk.img.bmap');
      fs.writeFileSync(bmapTmp, text);
      bmap = { file: o.bmap, ...summary };
    }
    stopIfInterrupted(o);
    const compression = diskCompression(output);
    let finished = tmp;
    if (compression !== 'none') {
      finished = path.join(scratch, 'disk.img.packed');
      let read = 0;
      await compressInto(tmp, finished, compression, (n) => {
        read += n;
        o.onProgress?.({ phase: 'compress', detail: compression, bytes: read, total: sizeBytes });
      });
      fs.rmSync(tmp);
    }
    stopIfInterrupted(o);
    // The image first: a bmap never stands beside an image it was not made for, unless a crash
    // falls between the two renames, and then bmaptool's checksums refuse the pair.
    await commitFile(finished, output);
    if (bmapTmp !== undefined && o.bmap !== undefined) await commitFile(bmapTmp, o.bmap);
    return {
      image,
      sizeBytes,
      ptable,
      partitions: parts,
      extended: layout.extended,
      ...(bmap !== undefined ? { bmap } : {}),
    };
  });
}
