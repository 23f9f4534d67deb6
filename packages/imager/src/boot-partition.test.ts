import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { rawcopyFile, stageBootPartition } from './boot-partition';
import { parseWks, Wks } from './wks';

let root: string;
let out: string;

function wksOf(text: string): Wks {
  const r = parseWks(text, 'l.wks');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('\n'));
  return r.value;
}

function write(rel: string, s: string): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), s);
}

beforeEach(() => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bootpart-'));
  root = path.join(base, 'root');
  out = path.join(base, 'out');
  fs.mkdirSync(out, { recursive: true });
  write('boot/vmlinuz-6.1.0-10-arm64', 'kernel 10\n');
  write('boot/vmlinuz-6.1.0-9-arm64', 'kernel 9\n');
  write('boot/initrd.img-6.1.0-10-arm64', 'initrd 10\n');
  write('usr/lib/linux-image-6.1.0-10-arm64/rockchip/rk3399-a.dtb', 'a\n');
  write('usr/lib/linux-image-6.1.0-10-arm64/rockchip/rk3399-b.dtb', 'b\n');
  write('usr/lib/linux-image-6.1.0-10-arm64/rockchip/rk3399-b.dtbo', 'overlay\n');
});

afterEach(() => fs.rmSync(path.dirname(root), { recursive: true, force: true }));

const read = (rel: string): string => fs.readFileSync(path.join(out, rel), 'utf8');

it('stages the newest kernel, its initrd, the globbed files and an extlinux.conf', () => {
  const wks = wksOf(
    [
      'bootloader --timeout 3 --append "console=ttyS2"',
      'part /boot --source bootimg-partition --sourceparams "files=/usr/lib/linux-image-*/rockchip/*.dtb;dtbs/rockchip/ /boot/vmlinuz-6.1.0-9-arm64;old/vmlinuz,fdtdir=/dtbs"',
    ].join('\n'),
  );
  stageBootPartition(root, out, wks.parts[0]!, 'PARTUUID=abcd-02', wks.bootloader);
  expect(read('vmlinuz')).toBe('kernel 10\n');
  expect(read('initrd.img')).toBe('initrd 10\n');
  expect(fs.readdirSync(path.join(out, 'dtbs/rockchip')).sort()).toEqual([
    'rk3399-a.dtb',
    'rk3399-b.dtb',
  ]);
  expect(read('old/vmlinuz')).toBe('kernel 9\n');
  expect(read('extlinux/extlinux.conf')).toBe(
    [
      '# Written by strata (--source bootimg-partition) for U-Boot distro boot.',
      'default strata',
      'timeout 30',
      '',
      'label strata',
      '    menu label Strata (6.1.0-10-arm64)',
      '    kernel /vmlinuz',
      '    initrd /initrd.img',
      '    fdtdir /dtbs',
      '    append root=PARTUUID=abcd-02 rw console=ttyS2',
      '',
    ].join('\n'),
  );
});

it('refuses an fdt that is not among the boot files, and two files of one name', () => {
  const fdt = wksOf('part /boot --source bootimg-partition --sourceparams fdt=/board.dtb');
  expect(() => stageBootPartition(root, out, fdt.parts[0]!, undefined, fdt.bootloader)).toThrow(
    /fdt=\/board\.dtb is not among the boot files/,
  );
  fs.rmSync(out, { recursive: true });
  fs.mkdirSync(out);
  const clash = wksOf(
    'part /boot --source bootimg-partition --sourceparams "files=/boot/vmlinuz-6.1.0-9-arm64;vmlinuz"',
  );
  expect(() => stageBootPartition(root, out, clash.parts[0]!, undefined, clash.bootloader)).toThrow(
    'two boot files would share the name /vmlinuz',
  );
});

it('follows the rootfs symlinks inside it, never out of it', () => {
  // Debian's usrmerge: /lib is a symlink to usr/lib.
  fs.symlinkSync('usr/lib', path.join(root, 'lib'));
  write('usr/lib/u-boot/board/u-boot.bin', 'spl\n');
  const raw = (file: string) =>
    wksOf(`part spl --source rawcopy --sourceparams file=${file} --no-table`).parts[0]!;
  expect(rawcopyFile(root, raw('/lib/u-boot/board/u-boot.bin'))).toBe(
    path.join(root, 'usr/lib/u-boot/board/u-boot.bin'),
  );
  const viaLib = wksOf(
    'part /boot --source bootimg-partition --sourceparams "files=/lib/linux-image-*/rockchip/*.dtb;dtbs/"',
  );
  stageBootPartition(root, out, viaLib.parts[0]!, undefined, viaLib.bootloader);
  expect(fs.readdirSync(path.join(out, 'dtbs')).sort()).toEqual(['rk3399-a.dtb', 'rk3399-b.dtb']);

  // An absolute target starts at the rootfs, and '..' stops at its top: the host's files are
  // out of reach.
  fs.symlinkSync('/etc', path.join(root, 'usr/lib/escape'));
  fs.symlinkSync('../../../../../../../etc', path.join(root, 'usr/lib/up'));
  expect(() => rawcopyFile(root, raw('/usr/lib/escape/passwd'))).toThrow(
    '/usr/lib/escape/passwd is not in the rootfs',
  );
  expect(() => rawcopyFile(root, raw('/usr/lib/up/passwd'))).toThrow(
    '/usr/lib/up/passwd is not in the rootfs',
  );
  write('etc/passwd', 'the rootfs passwd\n');
  expect(rawcopyFile(root, raw('/usr/lib/escape/passwd'))).toBe(path.join(root, 'etc/passwd'));
  expect(rawcopyFile(root, raw('/usr/lib/up/passwd'))).toBe(path.join(root, 'etc/passwd'));
  fs.symlinkSync('loop', path.join(root, 'loop'));
  expect(() => rawcopyFile(root, raw('/loop'))).toThrow('/loop is not in the rootfs');
  expect(() => rawcopyFile(root, raw('/usr/../../etc/passwd'))).toThrow(/not a clean path/);
  expect(() => rawcopyFile(root, raw('/lib/u-boot'))).toThrow(
    '/lib/u-boot is not a regular file (it leads to /usr/lib/u-boot)',
  );
  expect(rawcopyFile(root, raw('boot/vmlinuz-6.1.0-9-arm64'))).toBe(
    path.join(root, 'boot/vmlinuz-6.1.0-9-arm64'),
  );
});
