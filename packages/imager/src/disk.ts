import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  InvalidArgumentError,
  NotFoundError,
  ParseError,
  ToolFailedError,
  UnsafeEntryError,
  Role,
} from '@strata/oci';
import { mke2fs, mkfsVfat, mtoolsCopy, sfdiskDump, sfdiskWrite } from '@strata/tools';
import { commitFile, Store } from '@strata/store';
import { flattenToDir } from './flatten';
import { ResolvedImage } from './source';
import { Wks, WksPart } from './wks';

const MiB = 1024 * 1024;
const SECTOR = 512;

export interface ImageProgress {
  phase: 'flatten' | 'mke2fs' | 'mkfs.vfat' | 'partition' | 'copy';
  /** What is being worked on, e.g. the mountpoint. */
  detail?: string;
  bytes?: number;
  total?: number;
}

interface CommonOptions {
  role?: Role;
  /** Fixed timestamps in the filesystems (as SOURCE_DATE_EPOCH). */
  sourceDateEpoch?: number;
  /** Scratch space (needs room for the flat rootfs and each partition); default: next to the output. */
  tmpDir?: string;
  onProgress?: (p: ImageProgress) => void;
}

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

/** A UUID derived from the image and a purpose, so the same input gives the same output. */
export function stableUuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x40;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
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

function sizeFor(
  contentBytes: number,
  o: { size?: number; extraSpace?: number; overheadFactor?: number },
): number {
  const wanted = Math.ceil(contentBytes * (o.overheadFactor ?? 1.3)) + (o.extraSpace ?? 10 * MiB);
  return roundUp(Math.max(o.size ?? 0, wanted, 4 * MiB), MiB);
}

async function scratchDir(output: string, tmpDir?: string): Promise<string> {
  const dir = tmpDir ?? path.dirname(path.resolve(output));
  return fs.promises.mkdtemp(path.join(dir, '.strata-image-'));
}

/** Flatten into scratch/rootfs; returns the image and the directory. */
async function flattenScratch(
  store: Store,
  ref: string,
  scratch: string,
  o: CommonOptions,
): Promise<{ image: ResolvedImage; root: string }> {
  const root = path.join(scratch, 'rootfs');
  o.onProgress?.({ phase: 'flatten', detail: ref });
  const { image } = await flattenToDir(store, ref, root, { role: o.role });
  return { image, root };
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
  const scratch = await scratchDir(output, o.tmpDir);
  try {
    const { image, root } = await flattenScratch(store, ref, scratch, o);
    const usage = treeUsage(root);
    const sizeBytes = sizeFor(usage.bytes, {
      size: o.size,
      extraSpace: o.extraSpace ?? (o.size !== undefined ? 0 : undefined),
    });
    const uuid = stableUuid(image.descriptor.digest, 'ext4', o.label ?? '');
    const tmp = path.join(scratch, 'out.ext4');
    o.onProgress?.({ phase: 'mke2fs', detail: output, total: sizeBytes });
    await mke2fs({
      file: tmp,
      sizeBytes,
      fromDir: root,
      label: o.label,
      uuid,
      fakeTime: o.sourceDateEpoch,
    });
    await commitFile(tmp, output);
    return { image, sizeBytes, contentBytes: usage.bytes, uuid };
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
}

// ---- partitioned disks -------------------------------------------------------------------

const GPT_TYPES = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  rootX86_64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  rootArm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  basicData: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
} as const;

function isEsp(p: WksPart): boolean {
  return p.source === 'bootimg-efi' || p.mountpoint === '/boot/efi' || p.mountpoint === '/efi';
}

function defaultPartType(p: WksPart, ptable: 'gpt' | 'msdos', arch: string): string {
  if (ptable === 'msdos') return isEsp(p) ? 'ef' : p.fstype === 'vfat' ? 'c' : '83';
  if (isEsp(p)) return GPT_TYPES.esp;
  if (p.fstype === 'vfat') return GPT_TYPES.basicData;
  if (p.mountpoint === '/') {
    if (arch === 'amd64') return GPT_TYPES.rootX86_64;
    if (arch === 'arm64') return GPT_TYPES.rootArm64;
  }
  return GPT_TYPES.linux;
}

export interface DiskPartition {
  mountpoint: string;
  /** Partition number, as the kernel names it (sda<number>): on msdos, logicals count from 5. */
  number: number;
  /** On msdos with more than four partitions, the fourth on are logical partitions. */
  kind: 'primary' | 'logical';
  start: number;
  size: number;
  type: string;
  uuid?: string;
  fstype?: string;
  label?: string;
}

export interface DiskResult {
  image: ResolvedImage | undefined;
  sizeBytes: number;
  ptable: 'gpt' | 'msdos';
  partitions: DiskPartition[];
  /** The msdos extended partition (number 4) that holds the logical ones, if any. */
  extended?: { start: number; size: number };
}

export interface DiskLayout {
  partitions: DiskPartition[];
  extended?: { start: number; size: number };
  sizeBytes: number;
}

/** The kernel's number for the partition on line `i` of the .wks (logicals count from 5). */
export function partitionNumber(wks: Wks, i: number): number {
  return wks.bootloader.ptable === 'msdos' && wks.parts.length > 4 && i >= 3 ? i + 2 : i + 1;
}

function tableEntries(dump: unknown): number {
  const t = (dump as { partitiontable?: { partitions?: unknown[] } }).partitiontable;
  return t?.partitions?.length ?? 0;
}

/** An MBR stores starts and sizes as 32-bit sector counts. */
const MBR_LIMIT = 2 ** 32 * SECTOR;

/**
 * Where each partition goes, given its size in bytes: each at the next `--align` boundary. An
 * msdos table has four entries, so with more than four partitions it does what wic does: the
 * first three are primary, entry 4 is an extended partition, and the fourth partition on are
 * logical partitions 5, 6, … inside it. Each logical partition is preceded by its EBR (a sector
 * that sfdisk puts in the free space before it), so at least one free sector is kept in front
 * of each; the extended partition starts one sector before the first logical one (wic's
 * layout). Throws, naming the .wks line, what an msdos table cannot address (beyond 2 TiB).
 */
export function layoutPartitions(
  wks: Wks,
  sizes: readonly number[],
  arch: string,
  uuids: readonly (string | undefined)[] = [],
  wksFile = 'wks',
): DiskLayout {
  const ptable = wks.bootloader.ptable;
  const extendedNeeded = ptable === 'msdos' && wks.parts.length > 4;
  const parts: DiskPartition[] = [];
  let extended: DiskLayout['extended'];
  let next = 0;
  for (const [i, p] of wks.parts.entries()) {
    const align = p.align ?? MiB;
    const number = partitionNumber(wks, i);
    const logical = extendedNeeded && number > 4;
    const floor = ptable === 'gpt' ? 34 * SECTOR : SECTOR;
    const start = roundUp(Math.max(next + (logical ? SECTOR : 0), floor), align);
    const size = sizes[i] as number;
    if (ptable === 'msdos' && start + size > MBR_LIMIT) {
      throw new ParseError(
        wksFile,
        p.line,
        1,
        `partition ${p.mountpoint} would end at ${start + size} bytes, beyond the 2 TiB an msdos table can address`,
        { hint: 'use bootloader --ptable gpt' },
      );
    }
    if (logical && extended === undefined) extended = { start: start - SECTOR, size: 0 };
    parts.push({
      mountpoint: p.mountpoint,
      number,
      kind: logical ? 'logical' : 'primary',
      start,
      size,
      type: p.partType ?? defaultPartType(p, ptable, arch),
      uuid: ptable === 'gpt' ? uuids[i] : undefined,
      fstype: p.fstype,
      label: p.label,
    });
    next = start + size;
  }
  if (extended !== undefined) extended.size = next - extended.start;
  const sizeBytes =
    roundUp(next + (ptable === 'gpt' ? 33 * SECTOR : 0), MiB) + (ptable === 'gpt' ? MiB : 0);
  return { partitions: parts, extended, sizeBytes };
}

/** The sfdisk script for a layout (see sfdisk(8), "Input format"). */
export function sfdiskScript(wks: Wks, layout: DiskLayout, labelId: string): string {
  const ptable = wks.bootloader.ptable;
  const lines = [
    `label: ${ptable === 'gpt' ? 'gpt' : 'dos'}`,
    `label-id: ${labelId}`,
    'unit: sectors',
    '',
  ];
  for (const [i, p] of layout.partitions.entries()) {
    // sfdisk numbers the entries in script order: the extended partition is entry 4, and the
    // logical partitions after it become 5, 6, …
    if (p.kind === 'logical' && p.number === 5 && layout.extended !== undefined) {
      const e = layout.extended;
      lines.push(`start=${e.start / SECTOR}, size=${e.size / SECTOR}, type=5`);
    }
    const fields = [`start=${p.start / SECTOR}`, `size=${p.size / SECTOR}`, `type=${p.type}`];
    if (ptable === 'gpt') {
      fields.push(`uuid=${(p.uuid as string).toUpperCase()}`);
      if (p.label !== undefined) fields.push(`name="${p.label.replace(/"/g, '')}"`);
    }
    if (ptable === 'msdos' && isEsp(wks.parts[i] as WksPart)) fields.push('bootable');
    lines.push(fields.join(', '));
  }
  return `${lines.join('\n')}\n`;
}

/** Names a file under `root` that must be a regular file (no symlink anywhere on the way). */
function regularFile(root: string, rel: string): string {
  let p = root;
  for (const c of rel.split('/')) {
    p = `${p}/${c}`;
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) throw new NotFoundError(`/${rel} is not in the rootfs`);
    if (st.isSymbolicLink())
      throw new UnsafeEntryError(rel, `${p.slice(root.length)} is a symlink`);
  }
  if (!fs.lstatSync(p).isFile()) throw new InvalidArgumentError(`/${rel} is not a regular file`);
  return p;
}

/** Newest kernel in /boot and its initrd. */
function findKernel(root: string): { kernel: string; initrd?: string; version: string } {
  const boot = `${root}/boot`;
  const names = fs.existsSync(boot) ? fs.readdirSync(boot) : [];
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const version = versions[versions.length - 1];
  if (version === undefined) {
    throw new NotFoundError('no kernel (/boot/vmlinuz-*) in the rootfs for bootimg-efi', {
      hint: 'install linux-image-<arch> in the template',
    });
  }
  const kernel = regularFile(root, `boot/vmlinuz-${version}`);
  const initrd = names.includes(`initrd.img-${version}`)
    ? regularFile(root, `boot/initrd.img-${version}`)
    : undefined;
  return { kernel, initrd, version };
}

const EFI_ARCH: Record<string, string> = { amd64: 'x64', arm64: 'aa64', i386: 'ia32' };

/** Stage an EFI system partition with systemd-boot, the kernel and its initrd. */
function stageEsp(
  root: string,
  dir: string,
  arch: string,
  rootDevice: string | undefined,
  boot: Wks['bootloader'],
): void {
  const efiArch = EFI_ARCH[arch];
  if (efiArch === undefined)
    throw new InvalidArgumentError(`bootimg-efi: unsupported architecture ${arch}`);
  const loaderRel = `usr/lib/systemd/boot/efi/systemd-boot${efiArch}.efi`;
  if (!fs.existsSync(`${root}/${loaderRel}`)) {
    throw new NotFoundError(`bootimg-efi: /${loaderRel} is not in the rootfs`, {
      hint: 'install systemd-boot-efi in the template',
    });
  }
  const loader = regularFile(root, loaderRel);
  const k = findKernel(root);
  const mk = (rel: string): string => {
    fs.mkdirSync(path.join(dir, rel), { recursive: true });
    return path.join(dir, rel);
  };
  fs.copyFileSync(loader, path.join(mk('EFI/BOOT'), `BOOT${efiArch.toUpperCase()}.EFI`));
  fs.copyFileSync(loader, path.join(mk('EFI/systemd'), `systemd-boot${efiArch}.efi`));
  fs.copyFileSync(k.kernel, path.join(dir, 'vmlinuz'));
  if (k.initrd !== undefined) fs.copyFileSync(k.initrd, path.join(dir, 'initrd.img'));
  fs.writeFileSync(
    path.join(mk('loader'), 'loader.conf'),
    `default strata.conf\ntimeout ${boot.timeout ?? 0}\n`,
  );
  const options = [rootDevice ? `root=${rootDevice}` : '', 'rw', boot.append ?? '']
    .filter(Boolean)
    .join(' ');
  fs.writeFileSync(
    path.join(mk('loader/entries'), 'strata.conf'),
    [
      `title Strata (${k.version})`,
      'linux /vmlinuz',
      ...(k.initrd !== undefined ? ['initrd /initrd.img'] : []),
      `options ${options}`,
      '',
    ].join('\n'),
  );
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

async function makeVfat(
  file: string,
  size: number,
  fromDir: string | undefined,
  label: string | undefined,
  volumeId: string,
): Promise<void> {
  await mkfsVfat({ file, sizeBytes: size, label, volumeId });
  if (fromDir === undefined) return;
  checkFatTree(fromDir);
  const top = fs
    .readdirSync(fromDir)
    .sort()
    .map((n) => path.join(fromDir, n));
  await mtoolsCopy(file, top, '/');
}

/** Copy `src` into `dst` at `offset`, skipping all-zero chunks (the image stays sparse). */
async function copyInto(
  src: string,
  dst: number,
  offset: number,
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
      }
      pos += n;
      onBytes?.(n);
      if (pos % (64 * MiB) === 0) await new Promise((r) => setImmediate(r));
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface DiskOptions extends CommonOptions {
  /** Where the .wks came from, for messages. */
  wksFile?: string;
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
  const scratch = await scratchDir(output, o.tmpDir);
  try {
    const needsRoot = wks.parts.some((p) => p.source !== undefined);
    let image: ResolvedImage | undefined;
    let root: string | undefined;
    if (needsRoot) ({ image, root } = await flattenScratch(store, ref, scratch, o));
    const seed = image?.descriptor.digest ?? ref;
    const arch = image?.config.architecture ?? 'amd64';
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
    for (const [i, p] of wks.parts.entries()) {
      let from: string | undefined;
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
            throw new InvalidArgumentError(
              `${o.wksFile ?? 'wks'}:${p.line}: ${p.mountpoint} is not a directory in the rootfs`,
            );
          }
        }
      } else if (p.source === 'bootimg-efi') {
        from = path.join(scratch, `esp${i + 1}`);
        fs.mkdirSync(from);
        stageEsp(root as string, from, arch, rootDevice, wks.bootloader);
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
    const files: (string | undefined)[] = [];
    for (const [i, p] of wks.parts.entries()) {
      const file = path.join(scratch, `part${i + 1}.img`);
      const from = froms[i];
      const size = sizes[i] as number;
      if (p.fstype === 'ext4') {
        o.onProgress?.({ phase: 'mke2fs', detail: p.mountpoint, total: size });
        await mke2fs({
          file,
          sizeBytes: size,
          fromDir: from,
          label: p.label,
          uuid: stableUuid(seed, 'fs', String(i)),
          fakeTime: o.sourceDateEpoch,
        });
        files.push(file);
      } else if (p.fstype === 'vfat') {
        o.onProgress?.({ phase: 'mkfs.vfat', detail: p.mountpoint, total: size });
        await makeVfat(file, size, from, p.label, stableUuid(seed, 'vfat', String(i)).slice(0, 8));
        files.push(file);
      } else {
        files.push(undefined);
      }
    }

    // 4. The table, then the filesystems at their offsets.
    const tmp = path.join(scratch, 'disk.img');
    fs.closeSync(fs.openSync(tmp, 'w'));
    fs.truncateSync(tmp, sizeBytes);
    o.onProgress?.({ phase: 'partition', detail: ptable });
    await sfdiskWrite(
      tmp,
      sfdiskScript(wks, layout, ptable === 'gpt' ? diskId.toUpperCase() : mbrId),
    );
    // sfdisk leaves out, without an error, entries its table has no room for: read the table
    // back so that a partition missing from it can never pass unnoticed.
    const written = tableEntries(await sfdiskDump(tmp));
    const expected = parts.length + (layout.extended !== undefined ? 1 : 0);
    if (written !== expected) {
      throw new ToolFailedError(
        'sfdisk',
        `wrote ${written} partition table entries instead of ${expected}`,
      );
    }
    const total = files.reduce((a, f, i) => a + (f ? (sizes[i] as number) : 0), 0);
    let copied = 0;
    const fd = fs.openSync(tmp, 'r+');
    try {
      for (const [i, f] of files.entries()) {
        if (f === undefined) continue;
        await copyInto(f, fd, (parts[i] as DiskPartition).start, (n) => {
          copied += n;
          o.onProgress?.({ phase: 'copy', bytes: copied, total });
        });
        fs.rmSync(f);
      }
    } finally {
      fs.closeSync(fd);
    }
    await commitFile(tmp, output);
    return { image, sizeBytes, ptable, partitions: parts, extended: layout.extended };
  } finally {
    await fs.promises.rm(scratch, { recursive: true, force: true });
  }
}
