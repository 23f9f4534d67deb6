/**
 * The .wks sources for ARM boards, on a small hand-made rootfs: `rawcopy` puts a file's bytes at
 * a fixed offset outside the partition table, and `bootimg-partition` makes the vfat partition
 * that U-Boot's distro boot reads (kernel, initrd, named boot files, extlinux/extlinux.conf).
 * Read back with sfdisk --json, cmp and mtools. The real boot is e2e/arm64-boot.test.ts.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  cleanupTmp,
  isOneLineError,
  makeTinyRootfs,
  runOk,
  strata,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

interface SfdiskJson {
  partitiontable: {
    label: string;
    partitions: { start: number; size: number; type: string; bootable?: boolean }[];
  };
}

let work: string;
let store: string;
/** Stands in for a board's U-Boot SPL: random, so bytes found at the offset came from it. */
let spl: Buffer;

const MTOOLS = { MTOOLS_SKIP_CHECK: '1' };

beforeAll(async () => {
  work = tmpDir('strata-arm-board-e2e-');
  store = path.join(work, 'store');
  const root = makeTinyRootfs(path.join(work, 'rootfs'), 'arm-board');
  const w = (rel: string, s: string | Buffer): void => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), s);
  };
  // 300 KiB plus an odd tail: the raw part rounds up to whole sectors.
  spl = randomBytes(300 * 1024 + 77);
  w('usr/lib/u-boot/board/u-boot-sunxi-with-spl.bin', spl);
  w('boot/vmlinuz-6.1.0-99-arm64', 'not really a kernel\n');
  w('boot/initrd.img-6.1.0-99-arm64', 'not really an initrd\n');
  w('boot/vmlinuz-6.1.0-9-arm64', 'an older kernel\n');
  w('usr/lib/linux-image-6.1.0-99-arm64/allwinner/sun50i-a64-pine64.dtb', 'pine64 dtb\n');
  w('usr/lib/linux-image-6.1.0-99-arm64/allwinner/sun50i-h6-orangepi.dtb', 'orangepi dtb\n');
  w('usr/lib/linux-image-6.1.0-99-arm64/rockchip/rk3399-rockpro64.dtb', 'rockpro64 dtb\n');
  fs.symlinkSync('/etc/shadow', path.join(root, 'usr/lib/u-boot/board/escape.bin'));
  await strataOk(['template', 'create', root, '-t', 'board:1', '--name', 'board'], { store });
}, 120_000);

afterAll(cleanupTmp);

const BOARD_WKS = [
  'bootloader --ptable msdos --timeout 2 --append "console=ttyS2,1500000"',
  'part u-boot --source rawcopy --sourceparams "file=/usr/lib/u-boot/board/u-boot-sunxi-with-spl.bin" --no-table --offset 8K',
  'part /boot --source bootimg-partition --sourceparams "files=/usr/lib/linux-image-*/allwinner/*.dtb;dtbs/allwinner/ /usr/lib/linux-image-6.1.0-99-arm64/rockchip/rk3399-rockpro64.dtb;board.dtb,fdtdir=/dtbs" --label BOOT --align 4096',
  'part / --source rootfs --fstype ext4 --label rootfs --align 4096',
  '',
].join('\n');

it('rawcopy puts the file at --offset, and no partition of the table covers those bytes', async () => {
  const wks = path.join(work, 'board.wks');
  fs.writeFileSync(wks, BOARD_WKS);
  const disk = path.join(work, 'board.img');
  const res = await strataJson<{
    partitions: { mountpoint: string; kind: string; number: number; start: number; size: number }[];
  }>(['image', 'board:1', '--wks', wks, '-o', disk], { store });
  expect(res.partitions[0]).toMatchObject({
    mountpoint: 'u-boot',
    kind: 'raw',
    number: 0,
    start: 8192,
    size: Math.ceil(spl.length / 512) * 512,
  });

  // The bytes at 8 KiB are the file's, read back independently of strata.
  const fd = fs.openSync(disk, 'r');
  const got = Buffer.alloc(spl.length);
  fs.readSync(fd, got, 0, spl.length, 8192);
  fs.closeSync(fd);
  expect(got.equals(spl)).toBe(true);

  // The table has the two real partitions only, and none reaches into the raw bytes.
  const t = JSON.parse((await runOk('sfdisk', ['--json', disk])).stdout) as SfdiskJson;
  expect(t.partitiontable.label).toBe('dos');
  expect(t.partitiontable.partitions).toHaveLength(2);
  const [boot, root] = t.partitiontable.partitions;
  for (const p of t.partitiontable.partitions) {
    const [start, end] = [p.start * 512, (p.start + p.size) * 512];
    expect(end <= 8192 || start >= 8192 + spl.length).toBe(true);
  }
  expect(boot).toMatchObject({ start: 8192, type: 'c', bootable: true });
  expect(root).toMatchObject({ type: '83' });
  // The MBR (sector 0) ends in its boot signature: the raw part starts after it.
  const mbr = Buffer.alloc(512);
  const fd2 = fs.openSync(disk, 'r');
  fs.readSync(fd2, mbr, 0, 512, 0);
  fs.closeSync(fd2);
  expect(mbr.readUInt16LE(510)).toBe(0xaa55);
});

it('bootimg-partition holds the kernel, initrd, named boot files and an extlinux.conf for U-Boot', async () => {
  const wks = path.join(work, 'board2.wks');
  fs.writeFileSync(wks, BOARD_WKS);
  const disk = path.join(work, 'board2.img');
  await strataOk(['image', 'board:1', '--wks', wks, '-o', disk], { store });
  const t = JSON.parse((await runOk('sfdisk', ['--json', disk])).stdout) as SfdiskJson & {
    partitiontable: { id: string };
  };
  const id = t.partitiontable.id.replace(/^0x/, '');
  const img = `${disk}@@${t.partitiontable.partitions[0]!.start * 512}`;
  const type = async (p: string): Promise<string> =>
    (await runOk('mtype', ['-i', img, `::${p}`], { env: MTOOLS })).stdout;
  expect(await type('/vmlinuz')).toBe('not really a kernel\n');
  expect(await type('/initrd.img')).toBe('not really an initrd\n');
  expect(await type('/dtbs/allwinner/sun50i-a64-pine64.dtb')).toBe('pine64 dtb\n');
  expect(await type('/dtbs/allwinner/sun50i-h6-orangepi.dtb')).toBe('orangepi dtb\n');
  expect(await type('/board.dtb')).toBe('rockpro64 dtb\n');
  const conf = await type('/extlinux/extlinux.conf');
  expect(conf).toMatch(/^default strata$/m);
  expect(conf).toMatch(/^timeout 20$/m);
  expect(conf).toMatch(/^\s+kernel \/vmlinuz$/m);
  expect(conf).toMatch(/^\s+initrd \/initrd\.img$/m);
  expect(conf).toMatch(/^\s+fdtdir \/dtbs$/m);
  // msdos PARTUUIDs are <disk id>-<partition number>: the root partition is number 2.
  expect(conf).toMatch(
    new RegExp(`^\\s+append root=PARTUUID=${id}-02 rw console=ttyS2,1500000$`, 'm'),
  );
});

it('on GPT, the boot partition is LegacyBIOSBootable, where U-Boot looks for extlinux.conf', async () => {
  const wks = path.join(work, 'gpt.wks');
  fs.writeFileSync(
    wks,
    BOARD_WKS.replace('--ptable msdos', '--ptable gpt').replace('--offset 8K', '--offset 32K'),
  );
  const disk = path.join(work, 'gpt.img');
  await strataOk(['image', 'board:1', '--wks', wks, '-o', disk], { store });
  const dump = (await runOk('sfdisk', ['--dump', disk])).stdout;
  const entries = dump.split('\n').filter((l) => l.includes(' : start='));
  expect(entries).toHaveLength(2);
  expect(entries[0]).toMatch(/name="BOOT", attrs="LegacyBIOSBootable"$/);
  expect(entries[1]).not.toMatch(/attrs=/);
  // The raw bytes at 32 KiB are past the primary GPT (34 sectors) and before partition 1.
  const fd = fs.openSync(disk, 'r');
  const got = Buffer.alloc(spl.length);
  fs.readSync(fd, got, 0, spl.length, 32 * 1024);
  fs.closeSync(fd);
  expect(got.equals(spl)).toBe(true);
});

it.each([
  [
    // The symlink is followed inside the rootfs, which has no /etc/shadow: the host's is not read.
    'a rawcopy file whose symlink leads out of the rootfs',
    'part spl --source rawcopy --sourceparams file=/usr/lib/u-boot/board/escape.bin --no-table --offset 8K',
    /bad\.wks:1:42: rawcopy: \/usr\/lib\/u-boot\/board\/escape\.bin is not in the rootfs/,
  ],
  [
    'a missing rawcopy file',
    'part spl --source rawcopy --sourceparams file=/usr/lib/u-boot/none.bin --no-table --offset 8K',
    /\/usr\/lib\/u-boot\/none\.bin is not in the rootfs/,
  ],
  [
    'an offset over the partition table',
    'bootloader --ptable gpt\npart spl --source rawcopy --sourceparams file=/usr/lib/u-boot/board/u-boot-sunxi-with-spl.bin --no-table --offset 8K',
    /would overwrite the gpt partition table/,
  ],
  [
    'boot files that match nothing',
    'part /boot --source bootimg-partition --sourceparams "files=/usr/lib/none/*.dtb"',
    /nothing in the rootfs matches \/usr\/lib\/none\/\*\.dtb/,
  ],
])('refuses %s with a one-line error', async (_what, text, re) => {
  const wks = path.join(work, 'bad.wks');
  fs.writeFileSync(wks, `${text}\npart / --source rootfs --fstype ext4\n`);
  const r = await strata(['image', 'board:1', '--wks', wks, '-o', path.join(work, 'bad.img')], {
    store,
  });
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(re);
  expect(isOneLineError(r.stderr)).toBe(true);
  expect(fs.existsSync(path.join(work, 'bad.img'))).toBe(false);
});
