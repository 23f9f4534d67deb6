import { layoutPartitions, sfdiskScript } from './partition-table';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NotFoundError } from '@strata/oci';
import { parseWks, readWksFile, Wks } from './wks';

const MiB = 1024 * 1024;

function wksOf(text: string): Wks {
  const r = parseWks(text, 'l.wks');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.value;
}

describe('parseWks', () => {
  it('parses the documented subset', () => {
    const r = parseWks(
      [
        '# comment',
        'bootloader --ptable gpt --timeout 3 --append "console=ttyS0 quiet"',
        'part /boot/efi --source bootimg-efi --sourceparams="loader=systemd-boot" --label ESP --align 1024',
        'part / --source rootfs --fstype=ext4 --size 1G --extra-space 64M --label rootfs --part-type 4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
        'part /data --fstype ext4 --size 16',
        '',
      ].join('\n'),
      'x.wks',
    );
    if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
    expect(r.value.bootloader).toEqual({
      ptable: 'gpt',
      timeout: 3,
      append: 'console=ttyS0 quiet',
      line: 2,
    });
    const [esp, root, data] = r.value.parts;
    expect(esp).toMatchObject({
      mountpoint: '/boot/efi',
      source: 'bootimg-efi',
      fstype: 'vfat',
      align: 1024 * 1024,
      sourceParams: { loader: 'systemd-boot' },
    });
    expect(root).toMatchObject({
      mountpoint: '/',
      source: 'rootfs',
      fstype: 'ext4',
      size: 1024 ** 3,
      extraSpace: 64 * 1024 ** 2,
      label: 'rootfs',
    });
    expect(data).toMatchObject({
      mountpoint: '/data',
      fstype: 'ext4',
      size: 16 * 1024 ** 2,
      line: 5,
    });
  });

  it('reports every unknown command and option with file:line:column', () => {
    const r = parseWks(
      [
        'bootloader --ptable gpt --configfile x.cfg',
        'part / --source rootfs --fstype ext4 --ondisk sda',
        'partition-table gpt',
      ].join('\n'),
      'bad.wks',
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/^bad\.wks:1:25: unknown option --configfile for bootloader/),
      expect.stringMatching(/^bad\.wks:2:38: unknown option --ondisk for part/),
      expect.stringMatching(/^bad\.wks:3:1: unknown command "partition-table"/),
    ]);
  });

  it.each([
    ['part / --source rootfs', /needs --fstype/],
    ['part / --fstype btrfs', /--fstype must be ext4 or vfat/],
    [
      'part / --source nfs --fstype ext4',
      /--source must be rootfs, bootimg-efi, bootimg-partition, rawcopy/,
    ],
    ['part / --fstype ext4 --size lots', /not a size/],
    ['part relative --fstype ext4', /mountpoint must be an absolute path/],
    ['part /boot --fstype vfat --label way-too-long-label', /vfat --label/],
    ['bootloader --ptable hybrid\npart / --fstype ext4', /--ptable must be gpt or msdos/],
    ['part / --fstype ext4 --align', /--align needs a value/],
    ['part / --fstype ext4 "unterminated', /unterminated/],
    ['', /no part lines/],
    ['bootloader --ptable msdos\npart / --fstype ext4 --part-type 05', /extended partition/],
    ['part / --fstype ext4 --part-type 0f', /l\.wks:1:1: .*extended partition/],
    [
      'part / --fstype ext4 --part-type 0FC63DAF-8483-4772-8E79-3D69D8477DE4',
      /msdos table takes a type byte/,
    ],
    ['bootloader --ptable gpt\npart / --fstype ext4 --part-type 83', /gpt table takes a type GUID/],
  ])('rejects %j', (text, re) => {
    const r = parseWks(text, 'l.wks');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]?.message).toMatch(re);
  });
});

it('refuses more partitions than a gpt table holds (sfdisk would drop them)', () => {
  const r = parseWks(`bootloader --ptable gpt\n${'part /x --fstype ext4\n'.repeat(129)}`, 'l.wks');
  expect(r.ok).toBe(false);
  if (!r.ok)
    expect(r.errors[0]?.message).toBe('l.wks:130:1: a gpt table holds at most 128 partitions');
});

describe('msdos tables with more than four partitions', () => {
  const five = [
    'bootloader --ptable msdos',
    'part /boot --fstype vfat --size 8',
    'part /a --fstype ext4 --size 8',
    'part /b --fstype ext4 --size 8',
    'part /c --fstype ext4 --size 8',
    'part / --source rootfs --fstype ext4',
  ].join('\n');

  it('parses them, with or without a bootloader line', () => {
    expect(wksOf(five).parts).toHaveLength(5);
    expect(wksOf(five.replace('bootloader --ptable msdos\n', '')).parts).toHaveLength(5);
  });

  it('puts the fourth partition on into an extended partition, as logicals 5, 6, … (wic)', () => {
    const wks = wksOf(five);
    const sizes = [8 * MiB, 8 * MiB, 8 * MiB, 8 * MiB, 376 * MiB];
    const l = layoutPartitions(wks, sizes, 'amd64', [], 'l.wks');
    expect(l.partitions.map((p) => [p.mountpoint, p.number, p.kind])).toEqual([
      ['/boot', 1, 'primary'],
      ['/a', 2, 'primary'],
      ['/b', 3, 'primary'],
      ['/c', 5, 'logical'],
      ['/', 6, 'logical'],
    ]);
    const [, , third, firstLogical, last] = l.partitions;
    const ext = l.extended!;
    // The extended partition follows the primaries and holds every logical one with the
    // sector of its EBR in front of it.
    expect(ext.start).toBeGreaterThanOrEqual(third!.start + third!.size);
    expect(ext.start).toBe(firstLogical!.start - 512);
    expect(ext.start + ext.size).toBe(last!.start + last!.size);
    expect(last!.start - (firstLogical!.start + firstLogical!.size)).toBeGreaterThanOrEqual(512);
    for (const p of l.partitions) expect(p.start % MiB).toBe(0);
    expect(l.sizeBytes).toBeGreaterThanOrEqual(last!.start + last!.size);
    // sfdisk numbers entries in script order, so the extended one must be the fourth line.
    const entries = sfdiskScript(wks, l, '0x12345678')
      .split('\n')
      .filter((x) => x.startsWith('start='));
    expect(entries).toHaveLength(6);
    expect(entries[3]).toBe(`start=${ext.start / 512}, size=${ext.size / 512}, type=5`);
    expect(entries[4]).toBe(`start=${firstLogical!.start / 512}, size=${16384}, type=83`);
  });

  it('keeps four partitions primary, with no extended partition', () => {
    const wks = wksOf(five.split('\n').slice(0, 5).join('\n'));
    const l = layoutPartitions(wks, [MiB, MiB, MiB, MiB], 'amd64');
    expect(l.partitions.map((p) => p.number)).toEqual([1, 2, 3, 4]);
    expect(l.extended).toBeUndefined();
  });

  it('refuses, at the .wks line, a partition beyond the 2 TiB an MBR can address', () => {
    const wks = wksOf(five);
    const sizes = [8 * MiB, 8 * MiB, 8 * MiB, 8 * MiB, 2 * 1024 * 1024 * MiB];
    expect(() => layoutPartitions(wks, sizes, 'amd64', [], 'l.wks')).toThrow(
      /^l\.wks:6:1: partition \/ would end at \d+ bytes, beyond the 2 TiB an msdos table can address$/,
    );
    const gpt = wksOf(five.replace('msdos', 'gpt'));
    expect(layoutPartitions(gpt, sizes, 'amd64', ['u1', 'u2', 'u3', 'u4', 'u5']).extended).toBe(
      undefined,
    );
  });
});

describe('the sources for ARM boards: rawcopy and bootimg-partition', () => {
  const board = [
    'bootloader --ptable msdos --append "console=ttyAMA0"',
    'part u-boot --source rawcopy --sourceparams "file=/usr/lib/u-boot/b/u-boot-sunxi-with-spl.bin" --no-table --offset 8K',
    'part /boot --source bootimg-partition --sourceparams "files=/usr/lib/linux-image-*/allwinner/*.dtb;dtbs/allwinner/,fdtdir=/dtbs" --label BOOT --align 4096',
    'part / --source rootfs --fstype ext4 --label rootfs --align 4096',
  ].join('\n');

  it('parses wic syntax: a named raw part outside the table at an offset, a boot partition', () => {
    const [raw, boot, root] = wksOf(board).parts;
    expect(raw).toMatchObject({
      mountpoint: 'u-boot',
      source: 'rawcopy',
      noTable: true,
      offset: 8 * 1024,
      sourceParams: { file: '/usr/lib/u-boot/b/u-boot-sunxi-with-spl.bin' },
    });
    expect(raw!.fstype).toBeUndefined();
    expect(boot).toMatchObject({
      mountpoint: '/boot',
      source: 'bootimg-partition',
      fstype: 'vfat',
      noTable: false,
      align: 4 * MiB,
      sourceParams: {
        files: '/usr/lib/linux-image-*/allwinner/*.dtb;dtbs/allwinner/',
        fdtdir: '/dtbs',
      },
    });
    expect(root).toMatchObject({ noTable: false, offset: undefined });
    // --offset is in KiB by default, as --align is in wic.
    expect(wksOf('part --source rawcopy --sourceparams file=x --offset 33').parts[0]).toMatchObject(
      {
        mountpoint: '',
        offset: 33 * 1024,
        noTable: false,
      },
    );
  });

  it('takes an --offset in 512-byte sectors (s or S), as wic does, and only --offset', () => {
    const at = (o: string) =>
      wksOf(`part --source rawcopy --sourceparams file=x --no-table --offset ${o}`).parts[0]!
        .offset;
    expect([at('64s'), at('16S'), at('8K'), at('1M'), at('8')]).toEqual([
      64 * 512,
      16 * 512,
      8 * 1024,
      MiB,
      8 * 1024,
    ]);
    const r = parseWks('part / --source rootfs --fstype ext4 --size 64s', 'l.wks');
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors.map((e) => e.message)).toEqual([
      'l.wks:1:45: --size: not a size: "64s"',
    ]);
  });

  it('lays raw data outside the table: no number, no entry, nothing in the table covers it', () => {
    const wks = wksOf(board);
    const l = layoutPartitions(wks, [600 * 1024, 8 * MiB, 64 * MiB], 'arm64');
    const [raw, boot, root] = l.partitions;
    expect([raw!.kind, raw!.number, raw!.start, raw!.size]).toEqual(['raw', 0, 8192, 600 * 1024]);
    expect([boot!.number, boot!.start, root!.number, root!.start]).toEqual([
      1,
      4 * MiB,
      2,
      4 * MiB + 8 * MiB,
    ]);
    const entries = sfdiskScript(wks, l, '0x12345678')
      .split('\n')
      .filter((x) => x.startsWith('start='));
    // Only the two table partitions, the boot one marked bootable for U-Boot's distro boot.
    expect(entries).toEqual([
      `start=${(4 * MiB) / 512}, size=${(8 * MiB) / 512}, type=c, bootable`,
      `start=${(12 * MiB) / 512}, size=${(64 * MiB) / 512}, type=83`,
    ]);
  });

  it('marks a gpt boot partition LegacyBIOSBootable, the flag U-Boot looks for', () => {
    const wks = wksOf(board.replace('msdos', 'gpt').replace('--offset 8K', '--offset 1M'));
    const l = layoutPartitions(wks, [512, MiB, MiB], 'arm64', ['a', 'b', 'c']);
    expect(sfdiskScript(wks, l, 'X')).toMatch(/name="BOOT", attrs="LegacyBIOSBootable"\n/);
  });

  it('numbers table partitions around raw parts as wic does, logicals included', () => {
    const wks = wksOf(
      [
        'part spl --source rawcopy --sourceparams file=a --no-table --offset 1K',
        ...['/a', '/b', '/c', '/d', '/e'].map((m) => `part ${m} --fstype ext4 --size 1`),
      ].join('\n'),
    );
    const l = layoutPartitions(wks, [512, MiB, MiB, MiB, MiB, MiB], 'amd64');
    expect(l.partitions.map((p) => [p.mountpoint, p.number, p.kind])).toEqual([
      ['spl', 0, 'raw'],
      ['/a', 1, 'primary'],
      ['/b', 2, 'primary'],
      ['/c', 3, 'primary'],
      ['/d', 5, 'logical'],
      ['/e', 6, 'logical'],
    ]);
    expect(
      sfdiskScript(wks, l, '0x1')
        .split('\n')
        .filter((x) => x.startsWith('start=')),
    ).toHaveLength(6);
  });

  it('refuses an --offset over the partition table or over the partition before', () => {
    const over = wksOf(
      'bootloader --ptable gpt\npart spl --source rawcopy --sourceparams file=a --no-table --offset 8K',
    );
    expect(() => layoutPartitions(over, [512], 'arm64', [], 'l.wks')).toThrow(
      /^l\.wks:2:1: --offset 8192 would overwrite the gpt partition table, which takes the first 17408 bytes$/,
    );
    const overlap = wksOf(
      'part /boot --fstype vfat --size 1\npart spl --source rawcopy --sourceparams file=a --no-table --offset 1M',
    );
    expect(() => layoutPartitions(overlap, [MiB, 512], 'arm64', [], 'l.wks')).toThrow(
      /^l\.wks:2:1: --offset 1048576 of spl overlaps the partition before it, which ends at 2097152$/,
    );
  });

  it.each([
    ['part x --source rawcopy --no-table', /rawcopy needs --sourceparams "file=/],
    ['part x --source rawcopy --sourceparams file=a --fstype ext4', /takes no --fstype/],
    ['part / --source rootfs --fstype ext4 --no-table', /--no-table is for raw data/],
    ['part / --fstype ext4 --no-table', /the \/ partition must be in the table/],
    ['part x --source rawcopy --sourceparams file=a --no-table=yes', /--no-table takes no value/],
    ['part x --source rawcopy --sourceparams file=a --offset 0.1', /multiple of 512/],
    ['part x --source rawcopy --sourceparams file=a --offset 4 --align 4', /drop --align/],
    ['part /boot --source bootimg-partition --fstype ext4', /makes a vfat partition/],
    ['part /boot --source bootimg-partition --sourceparams loader=x', /keys: files, fdt, fdtdir/],
    ['part /boot --source bootimg-partition --sourceparams fdt=a,fdtdir=b', /exclude each other/],
    ['part /boot --source bootimg-efi --sourceparams file=x', /keys: loader/],
    ['part /boot --source rootfs --fstype ext4 --sourceparams file=x', /--source rootfs takes/],
    ['part ../x --source rawcopy --sourceparams file=a', /mountpoint must be an absolute path/],
    // Found by fuzzing: a TypeError (Object's constructor taken for a list of keys), an --align
    // of 0 that laid partitions out at NaN, and a size beyond exact byte counts.
    ['part / --source constructor --sourceparams a=b', /--source must be/],
    ['part / --source rootfs --fstype ext4 --align 0', /--align must be a positive multiple/],
    [`part / --source rootfs --fstype ext4 --size ${'9'.repeat(30)}G`, /--size: not a size/],
  ])('rejects %j', (text, re) => {
    const r = parseWks(text, 'l.wks');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.message).join('\n')).toMatch(re);
  });
});

describe('readWksFile', () => {
  it('names --wks for a file that is not there or is a directory, not a bare errno', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-wks-'));
    try {
      const missing = path.join(dir, 'nope.wks');
      const e = await readWksFile(missing).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(NotFoundError);
      expect((e as Error).message).toBe(`--wks ${missing}: no such file`);
      await expect(readWksFile(dir)).rejects.toThrow(
        `--wks ${dir} is a directory, not a .wks file`,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('GPT root partition types', () => {
  it('gives / the root type of its Debian architecture, and other ones the generic Linux type', () => {
    const wks = wksOf('bootloader --ptable gpt\npart / --source rootfs --fstype ext4');
    const rootType = (arch: string) => layoutPartitions(wks, [MiB], arch).partitions[0]!.type;
    expect(['amd64', 'arm64', 'armhf', 'i386', 'riscv64', 'constructor'].map(rootType)).toEqual([
      '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
      'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
      '69DAD710-2CE4-4E3C-B16C-21A1D49ABED3',
      '44479540-F297-41B2-9AF7-D131D5F0458A',
      '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
      '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
    ]);
  });
});
