/**
 * The partition table of a disk image: where each partition of a .wks goes, its type, and the
 * sfdisk script that writes the table.
 */
import { ParseError, ToolFailedError } from '@strata/oci';
import { sfdiskDump, sfdiskWrite } from '@strata/tools';
import { MiB, roundUp } from './filesystem';
import { Wks, WksPart } from './wks';

const SECTOR = 512;

const GPT_TYPES = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  basicData: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
} as const;

/**
 * The Discoverable Partitions Specification's root partition type of each Debian architecture;
 * systemd-gpt-auto-generator mounts it as / without an fstab entry.
 */
const GPT_ROOT: Record<string, string> = {
  amd64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  arm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  armhf: '69DAD710-2CE4-4E3C-B16C-21A1D49ABED3',
  i386: '44479540-F297-41B2-9AF7-D131D5F0458A',
};

/** U-Boot's distro boot looks for extlinux.conf on the partitions marked bootable first. */
function isBootable(p: WksPart): boolean {
  return isEsp(p) || p.source === 'bootimg-partition';
}

function isEsp(p: WksPart): boolean {
  return p.source === 'bootimg-efi' || p.mountpoint === '/boot/efi' || p.mountpoint === '/efi';
}

function defaultPartType(p: WksPart, ptable: 'gpt' | 'msdos', arch: string): string {
  if (ptable === 'msdos') return isEsp(p) ? 'ef' : p.fstype === 'vfat' ? 'c' : '83';
  if (isEsp(p)) return GPT_TYPES.esp;
  if (p.fstype === 'vfat') return GPT_TYPES.basicData;
  if (p.mountpoint === '/' && Object.hasOwn(GPT_ROOT, arch)) return GPT_ROOT[arch] as string;
  return GPT_TYPES.linux;
}

export interface DiskPartition {
  mountpoint: string;
  /**
   * Partition number, as the kernel names it (sda<number>): on msdos, logicals count from 5;
   * 0 for raw data outside the table (--no-table).
   */
  number: number;
  /**
   * On msdos with more than four partitions, the fourth on are logical partitions; `raw` is
   * space that only the layout reserves (--no-table).
   */
  kind: 'primary' | 'logical' | 'raw';
  start: number;
  size: number;
  type: string;
  uuid?: string;
  fstype?: string;
  label?: string;
}

export interface DiskLayout {
  partitions: DiskPartition[];
  extended?: { start: number; size: number };
  sizeBytes: number;
}

/** How many of the parts have a table entry (the --no-table ones do not). */
function tableCount(wks: Wks): number {
  return wks.parts.filter((p) => !p.noTable).length;
}

/**
 * The kernel's number for the partition on line `i` of the .wks (logicals count from 5), or 0
 * for one outside the table. Parts outside the table take no number, as in wic.
 */
export function partitionNumber(wks: Wks, i: number): number {
  if ((wks.parts[i] as WksPart).noTable) return 0;
  const n = wks.parts.slice(0, i).filter((p) => !p.noTable).length;
  return wks.bootloader.ptable === 'msdos' && tableCount(wks) > 4 && n >= 3 ? n + 2 : n + 1;
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
 * `arch` is the Debian architecture (armhf, not arm), which picks a GPT root's type.
 */
export function layoutPartitions(
  wks: Wks,
  sizes: readonly number[],
  arch: string,
  uuids: readonly (string | undefined)[] = [],
  wksFile = 'wks',
): DiskLayout {
  const ptable = wks.bootloader.ptable;
  const extendedNeeded = ptable === 'msdos' && tableCount(wks) > 4;
  const parts: DiskPartition[] = [];
  let extended: DiskLayout['extended'];
  let next = 0;
  // The primary table (MBR, or protective MBR + GPT header + 128 entries) is never overwritten.
  const floor = ptable === 'gpt' ? 34 * SECTOR : SECTOR;
  for (const [i, p] of wks.parts.entries()) {
    const align = p.align ?? MiB;
    const number = partitionNumber(wks, i);
    const logical = extendedNeeded && number > 4;
    const min = Math.max(next + (logical ? SECTOR : 0), floor);
    const name = p.mountpoint || `(line ${p.line})`;
    if (p.offset !== undefined && p.offset < min) {
      throw new ParseError(
        wksFile,
        p.line,
        1,
        p.offset < floor
          ? `--offset ${p.offset} would overwrite the ${ptable} partition table, which takes the first ${floor} bytes`
          : `--offset ${p.offset} of ${name} overlaps the partition before it, which ends at ${next}`,
      );
    }
    const start = p.offset ?? roundUp(min, align);
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
      kind: p.noTable ? 'raw' : logical ? 'logical' : 'primary',
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
    if (p.kind === 'raw') continue;
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
    if (ptable === 'msdos' && isBootable(wks.parts[i] as WksPart)) fields.push('bootable');
    if (ptable === 'gpt' && (wks.parts[i] as WksPart).source === 'bootimg-partition')
      fields.push('attrs="LegacyBIOSBootable"');
    lines.push(fields.join(', '));
  }
  return `${lines.join('\n')}\n`;
}

/** Write the table of `layout` to the disk image `file` with sfdisk. */
export async function writePartitionTable(
  file: string,
  wks: Wks,
  layout: DiskLayout,
  labelId: string,
): Promise<void> {
  await sfdiskWrite(file, sfdiskScript(wks, layout, labelId));
  // sfdisk leaves out, without an error, entries its table has no room for: read the table
  // back so that a partition missing from it can never pass unnoticed.
  const written = tableEntries(await sfdiskDump(file));
  const expected =
    layout.partitions.filter((p) => p.kind !== 'raw').length +
    (layout.extended !== undefined ? 1 : 0);
  if (written !== expected) {
    throw new ToolFailedError(
      'sfdisk',
      `wrote ${written} partition table entries instead of ${expected}`,
    );
  }
}
