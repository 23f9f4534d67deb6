import { layoutPartitions, sfdiskScript } from './partition-table';
import { parseWks, Wks } from './wks';

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
    ['part / --source nfs --fstype ext4', /--source must be rootfs or bootimg-efi/],
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
