/**
 * `strata image --wks … --bmap`: the block map bmaptool flashes with, checked with Debian's
 * bmap-tools. `bmaptool copy` checks every checksum, but into a regular file it truncates the
 * file first, so the blocks it leaves out read as zeros. On a card or an eMMC they keep whatever
 * was there: that is what `flashMapped` does here, writing exactly the mapped runs onto a file of
 * random bytes. What lands there must be a disk whose table sfdisk reads as the image's, whose
 * filesystems e2fsck passes, and whose bootloader bytes at their offset are the file's, zero runs
 * included.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  cleanupTmp,
  makeTinyRootfs,
  run,
  runOk,
  SLOW,
  strata,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

let work: string;
let store: string;
/** A bootloader with a run of zeros longer than the 4 MiB chunks the image skips. */
let spl: Buffer;

interface DiskJson {
  file: string;
  sizeBytes: number;
  partitions: { number: number; kind: string; start: number; size: number; fstype?: string }[];
  bmap: { file: string; blocks: number; mappedBlocks: number };
}

interface SfdiskJson {
  partitiontable: { partitions: { start: number; size: number; type: string }[] };
}

/** A file of `size` random bytes: a device that held something else before the flash. */
function dirtyDevice(file: string, size: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (let at = 0; at < size; at += 1 << 20) {
      fs.writeSync(fd, randomBytes(Math.min(1 << 20, size - at)));
    }
  } finally {
    fs.closeSync(fd);
  }
}

function bytesAt(file: string, start: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, start);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** The block runs of a bmap file, inclusive. */
function ranges(bmap: string): Array<[number, number]> {
  return [...bmap.matchAll(/<Range[^>]*>\s*(\d+)(?:-(\d+))?\s*<\/Range>/g)].map((m) => [
    Number(m[1]),
    Number(m[2] ?? m[1]),
  ]);
}

/**
 * What `bmaptool copy` does on a block device: write the mapped runs of `image` at their
 * offsets, and nothing else (the runs' checksums are bmaptool's to check, as the tests do).
 */
function flashMapped(image: string, bmap: string, device: string): void {
  const from = fs.openSync(image, 'r');
  const to = fs.openSync(device, 'r+');
  try {
    for (const [first, last] of ranges(fs.readFileSync(bmap, 'utf8'))) {
      const b = Buffer.alloc((last - first + 1) * 4096);
      const n = fs.readSync(from, b, 0, b.length, first * 4096);
      fs.writeSync(to, b, 0, n, first * 4096);
    }
  } finally {
    fs.closeSync(from);
    fs.closeSync(to);
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  work = tmpDir('strata-bmap-e2e-');
  store = path.join(work, 'store');
  const root = makeTinyRootfs(path.join(work, 'rootfs'), 'bmap-e2e');
  spl = Buffer.concat([
    Buffer.from('SPL header\n'),
    Buffer.alloc(9 << 20),
    Buffer.from('SPL end\n'),
  ]);
  fs.mkdirSync(path.join(root, 'usr/lib/u-boot/board'), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr/lib/u-boot/board/spl.bin'), spl);
  await strataOk(['template', 'create', root, '-t', 'tiny:1', '--name', 'tiny'], { store });
}, SLOW);

afterAll(() => cleanupTmp());

test(
  'bmaptool copy checks the map; writing only its blocks onto a dirty device gives the same table, clean filesystems and the bootloader bytes',
  async () => {
    // msdos with five partitions: the fifth is logical, behind an EBR in the gap before it.
    const wks = path.join(work, 'board.wks');
    fs.writeFileSync(
      wks,
      [
        'bootloader --ptable msdos',
        'part spl --source rawcopy --sourceparams "file=/usr/lib/u-boot/board/spl.bin" --no-table --offset 8K',
        'part / --source rootfs --fstype ext4 --label root --align 16384',
        'part /data --fstype ext4 --label data --size 16M',
        'part /a --fstype ext4 --size 8M',
        'part /b --fstype ext4 --size 8M',
        'part /c --fstype ext4 --label logical --size 8M',
        '',
      ].join('\n'),
    );
    const disk = path.join(work, 'board.img');
    const r = await strataJson<DiskJson>(['image', 'tiny:1', '--wks', wks, '-o', disk, '--bmap'], {
      store,
    });
    expect(r.bmap.file).toBe(`${disk}.bmap`);
    expect(r.bmap.blocks).toBe(Math.ceil(r.sizeBytes / 4096));
    expect(r.bmap.mappedBlocks).toBeLessThan(r.bmap.blocks);
    // Every block that bmaptool itself finds holding data in the sparse image is in the map.
    const reference = path.join(work, 'reference.bmap');
    await runOk('bmaptool', ['create', '-o', reference, disk]);
    const ours = ranges(fs.readFileSync(`${disk}.bmap`, 'utf8'));
    for (const [first, last] of ranges(fs.readFileSync(reference, 'utf8'))) {
      expect([first, last, ours.some(([a, b]) => a <= first && last <= b)]).toEqual([
        first,
        last,
        true,
      ]);
    }
    expect(r.partitions.some((p) => p.kind === 'logical')).toBe(true);

    const copy = path.join(work, 'copy.img');
    await runOk('bmaptool', ['copy', '--bmap', `${disk}.bmap`, disk, copy]);
    const device = path.join(work, 'device.img');
    dirtyDevice(device, r.sizeBytes);
    flashMapped(disk, `${disk}.bmap`, device);

    const table = async (f: string) =>
      (
        JSON.parse((await runOk('sfdisk', ['--json', f])).stdout) as SfdiskJson
      ).partitiontable.partitions.map(({ start, size, type }) => ({ start, size, type }));
    expect(await table(copy)).toEqual(await table(disk));
    expect(await table(device)).toEqual(await table(disk));
    for (const p of r.partitions.filter((x) => x.fstype === 'ext4')) {
      const part = path.join(work, `part${p.number}.img`);
      fs.writeFileSync(part, bytesAt(device, p.start, p.size));
      await runOk('e2fsck', ['-fn', part]);
      if (p.number === 1) {
        expect((await runOk('debugfs', ['-R', 'cat /etc/marker', part])).stdout).toBe('bmap-e2e\n');
      }
      fs.rmSync(part);
    }
    expect(sha(bytesAt(device, 8192, spl.length))).toBe(sha(spl));
  },
  SLOW,
);

test(
  'a .zst disk is flashed by bmaptool with its disk.img.bmap; a .gz one unpacks to the raw disk',
  async () => {
    const wks = path.join(work, 'packed.wks');
    fs.writeFileSync(
      wks,
      'bootloader --ptable gpt\npart / --source rootfs --fstype ext4 --label root\n',
    );
    const zst = path.join(work, 'packed.img.zst');
    const r = await strataJson<DiskJson>(['image', 'tiny:1', '--wks', wks, '-o', zst, '--bmap'], {
      store,
    });
    // Named after the raw image, as Yocto's wic.bmap beside wic.zst.
    expect(r.bmap.file).toBe(path.join(work, 'packed.img.bmap'));
    expect(fs.statSync(zst).size).toBeLessThan(r.sizeBytes / 4);
    const device = path.join(work, 'packed-device.img');
    const copied = await runOk('bmaptool', ['copy', zst, device]);
    expect(copied.stderr).toContain(`discovered bmap file '${r.bmap.file}'`);
    const root = r.partitions[0] as DiskJson['partitions'][number];
    const part = path.join(work, 'packed-root.img');
    fs.writeFileSync(part, bytesAt(device, root.start, root.size));
    await runOk('e2fsck', ['-fn', part]);
    expect((await runOk('debugfs', ['-R', 'cat /etc/marker', part])).stdout).toBe('bmap-e2e\n');

    const gz = path.join(work, 'packed.img.gz');
    const g = await strataJson<DiskJson>(['image', 'tiny:1', '--wks', wks, '-o', gz], { store });
    expect(g).not.toHaveProperty('bmap');
    const raw = path.join(work, 'unpacked.img');
    await runOk('sh', ['-c', `gzip -dc '${gz}' > '${raw}'`]);
    expect(fs.statSync(raw).size).toBe(g.sizeBytes);
    expect((await runOk('sfdisk', ['--json', raw])).stdout).toContain('"label": "gpt"');
  },
  SLOW,
);

test('a changed byte in the image, or in the map, fails the flash', async () => {
  const wks = path.join(work, 'plain.wks');
  fs.writeFileSync(wks, 'bootloader --ptable gpt\npart / --source rootfs --fstype ext4\n');
  const disk = path.join(work, 'plain.img');
  await strataOk(['image', 'tiny:1', '--wks', wks, '-o', disk, '--bmap'], { store });
  const device = path.join(work, 'plain-device.img');
  fs.writeFileSync(device, '');
  await runOk('bmaptool', ['copy', disk, device]);

  // The GPT header's first byte, in the first mapped range.
  const fd = fs.openSync(disk, 'r+');
  const sig = bytesAt(disk, 512, 1);
  fs.writeSync(fd, Buffer.from([(sig[0] as number) ^ 0xff]), 0, 1, 512);
  fs.closeSync(fd);
  const damaged = await run('bmaptool', ['copy', disk, device]);
  expect(damaged.code).not.toBe(0);
  expect(damaged.stderr).toMatch(/checksum mismatch/);

  const fd2 = fs.openSync(disk, 'r+');
  fs.writeSync(fd2, sig, 0, 1, 512);
  fs.closeSync(fd2);
  const map = fs.readFileSync(`${disk}.bmap`, 'utf8');
  fs.writeFileSync(`${disk}.bmap`, map.replace('<BlockSize> 4096', '<BlockSize>  4096'));
  const edited = await run('bmaptool', ['copy', disk, device]);
  expect(edited.code).not.toBe(0);
  expect(edited.stderr).toMatch(/checksum mismatch/);
});

test('--bmap goes with --wks', async () => {
  const r = await strata(['image', 'tiny:1', '--ext4', path.join(work, 'x.ext4'), '--bmap'], {
    store,
  });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain('--bmap goes with --wks -o DISK.img');
});
