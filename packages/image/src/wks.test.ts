import { parseWks } from './wks';

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
  ])('rejects %j', (text, re) => {
    const r = parseWks(text, 'l.wks');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]?.message).toMatch(re);
  });
});
