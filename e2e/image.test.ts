/**
 * `strata image`: ext4 images and wic-style partitioned disks, read back with tools that are not
 * Strata: e2fsck, debugfs, sfdisk --json, fsck.vfat and mtools.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  cleanupTmp,
  isOneLineError,
  makeTinyRootfs,
  minbaseRootfs,
  run,
  runOk,
  SLOW,
  startStrata,
  strata,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

interface SfdiskJson {
  partitiontable: {
    label: string;
    id?: string;
    partitions: {
      node: string;
      start: number;
      size: number;
      type: string;
      uuid?: string;
      name?: string;
      bootable?: boolean;
    }[];
  };
}

let work: string;
let store: string;

/** debugfs -R CMD IMAGE, stdout. */
async function debugfs(image: string, cmd: string): Promise<string> {
  return (await runOk('debugfs', ['-R', cmd, image])).stdout;
}

/** Copy a partition out of a disk image with dd. */
async function extract(
  disk: string,
  p: { start: number; size: number },
  out: string,
): Promise<string> {
  await runOk('dd', [
    `if=${disk}`,
    `of=${out}`,
    'bs=512',
    `skip=${p.start}`,
    `count=${p.size}`,
    'status=none',
  ]);
  return out;
}

beforeAll(async () => {
  work = tmpDir('strata-image-e2e-');
  store = path.join(work, 'store');
  const root = makeTinyRootfs(path.join(work, 'rootfs'), 'image-e2e');
  const w = (rel: string, s: string, mode = 0o644): string => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, s);
    fs.chmodSync(p, mode);
    return p;
  };
  fs.chownSync(w('srv/owned', 'owned by 1234:5678\n', 0o640), 1234, 5678);
  w('usr/bin/suid', 'setuid\n', 0o4755);
  fs.linkSync(path.join(root, 'usr/bin/hello'), path.join(root, 'usr/bin/hello-link'));
  fs.symlinkSync('../usr/bin/hello', path.join(root, 'etc/hello-symlink'));
  await runOk('setfattr', ['-n', 'user.strata', '-v', 'xattr-value', path.join(root, 'srv/owned')]);
  // What --source bootimg-efi looks for (stand-ins: the real thing boots in e2e/boot.test.ts).
  w('boot/vmlinuz-6.1.0-99-amd64', 'not really a kernel\n');
  w('boot/initrd.img-6.1.0-99-amd64', 'not really an initrd\n');
  w('boot/vmlinuz-6.1.0-9-amd64', 'an older kernel\n');
  w('usr/lib/systemd/boot/efi/systemd-bootx64.efi', 'not really systemd-boot\n');
  w('data/readme.txt', 'for the vfat data partition\n');
  await strataOk(['template', 'create', root, '-t', 'tiny:1', '--name', 'tiny'], { store });
}, SLOW);

afterAll(() => cleanupTmp());

describe('strata image --ext4', () => {
  it(
    'writes an ext4 image that e2fsck accepts, with owners, modes, xattrs and links',
    async () => {
      const img = path.join(work, 'root.ext4');
      const r = await strataOk(
        ['image', 'tiny:1', '--ext4', img, '--label', 'tinyroot', '--extra-space', '8M'],
        {
          store,
        },
      );
      expect(r.stdout).toMatch(/^wrote ext4 .*root\.ext4: .* UUID [0-9a-f-]{36}, in /);
      expect(r.stdout.trim().split('\n')).toHaveLength(1);
      await runOk('e2fsck', ['-fn', img]);
      expect((await runOk('dumpe2fs', ['-h', img])).stdout).toMatch(
        /Filesystem volume name:\s+tinyroot/,
      );
      expect(await debugfs(img, 'cat /etc/marker')).toBe('image-e2e\n');
      const owned = await debugfs(img, 'stat /srv/owned');
      expect(owned).toMatch(/User:\s+1234\s+Group:\s+5678/);
      expect(owned).toMatch(/Mode:\s+0640/);
      expect(await debugfs(img, 'ea_get /srv/owned user.strata')).toMatch(/xattr-value/);
      expect(await debugfs(img, 'stat /usr/bin/suid')).toMatch(/Mode:\s+04755/);
      expect(await debugfs(img, 'stat /usr/bin/hello')).toMatch(/Links: 2/);
      expect(await debugfs(img, 'stat /etc/hello-symlink')).toMatch(
        /Fast link dest: "..\/usr\/bin\/hello"/,
      );
    },
    SLOW,
  );

  it('honours --size as the minimum size', async () => {
    const img = path.join(work, 'sized.ext4');
    await strataOk(['image', 'tiny:1', '--ext4', img, '--size', '64M'], { store });
    expect(fs.statSync(img).size).toBe(64 * 1024 * 1024);
    await runOk('e2fsck', ['-fn', img]);
  });
});

describe('strata image --wks', () => {
  it(
    'assembles a GPT disk with an EFI system partition and an ext4 rootfs',
    async () => {
      const wks = path.join(work, 'gpt.wks');
      fs.writeFileSync(
        wks,
        [
          'bootloader --ptable gpt --timeout 2 --append "console=ttyS0"',
          'part /boot/efi --source bootimg-efi --sourceparams=loader=systemd-boot --fstype vfat --label ESP',
          'part / --source rootfs --fstype ext4 --label root --extra-space 16M --align 4096',
          '',
        ].join('\n'),
      );
      const disk = path.join(work, 'gpt.img');
      const res = await strataJson<{ partitions: { uuid: string }[] }>(
        ['image', 'tiny:1', '--wks', wks, '-o', disk],
        {
          store,
        },
      );
      const t = JSON.parse((await runOk('sfdisk', ['--json', disk])).stdout) as SfdiskJson;
      expect(t.partitiontable.label).toBe('gpt');
      const [esp, root] = t.partitiontable.partitions;
      expect(esp).toMatchObject({
        start: 2048,
        type: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
        name: 'ESP',
      });
      expect(root).toMatchObject({ type: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709', name: 'root' });
      expect((root!.start * 512) % (4096 * 1024)).toBe(0);
      expect(root!.uuid!.toLowerCase()).toBe(res.partitions[1]!.uuid);

      const rootImg = await extract(disk, root!, path.join(work, 'p2.ext4'));
      await runOk('e2fsck', ['-fn', rootImg]);
      expect(await debugfs(rootImg, 'cat /etc/marker')).toBe('image-e2e\n');

      const espImg = await extract(disk, esp!, path.join(work, 'p1.vfat'));
      await runOk('fsck.vfat', ['-n', espImg]);
      const env = { MTOOLS_SKIP_CHECK: '1' };
      const offset = `${disk}@@${esp!.start * 512}`;
      const entry = (await runOk('mtype', ['-i', offset, '::/loader/entries/strata.conf'], { env }))
        .stdout;
      expect(entry).toContain('linux /vmlinuz');
      expect(entry).toContain('initrd /initrd.img');
      expect(entry).toContain(`root=PARTUUID=${res.partitions[1]!.uuid}`);
      expect(entry).toContain('console=ttyS0');
      expect((await runOk('mtype', ['-i', offset, '::/vmlinuz'], { env })).stdout).toBe(
        'not really a kernel\n',
      );
      expect(
        (await runOk('mtype', ['-i', offset, '::/EFI/BOOT/BOOTX64.EFI'], { env })).stdout,
      ).toBe('not really systemd-boot\n');
      expect(
        (await runOk('mtype', ['-i', offset, '::/loader/loader.conf'], { env })).stdout,
      ).toContain('timeout 2');
    },
    SLOW,
  );

  it(
    'assembles an msdos disk with a vfat data partition from a rootfs subtree, reproducibly',
    async () => {
      const wks = path.join(work, 'mbr.wks');
      fs.writeFileSync(
        wks,
        [
          '# comments and blank lines are fine',
          '',
          'bootloader --ptable msdos',
          'part / --source rootfs --fstype ext4 --label root',
          'part /data --source rootfs --fstype vfat --label DATA --size 8 --part-type 0c',
          'part /spare --size 4',
        ].join('\n'),
      );
      const disks = [path.join(work, 'mbr1.img'), path.join(work, 'mbr2.img')];
      for (const d of disks) {
        await strataOk(['image', 'tiny:1', '--wks', wks, '-o', d], {
          store,
          env: { SOURCE_DATE_EPOCH: '1700000000' },
        });
      }
      const t = JSON.parse((await runOk('sfdisk', ['--json', disks[0]!])).stdout) as SfdiskJson;
      expect(t.partitiontable.label).toBe('dos');
      expect(t.partitiontable.partitions.map((p) => p.type)).toEqual(['83', 'c', '83']);
      const data = t.partitiontable.partitions[1]!;
      expect(data.size * 512).toBeGreaterThanOrEqual(8 * 1024 * 1024);
      const dataImg = await extract(disks[0]!, data, path.join(work, 'data.vfat'));
      await runOk('fsck.vfat', ['-n', dataImg]);
      const txt = await runOk('mtype', ['-i', dataImg, '::/readme.txt'], {
        env: { MTOOLS_SKIP_CHECK: '1' },
      });
      expect(txt.stdout).toBe('for the vfat data partition\n');
      const root = await extract(
        disks[0]!,
        t.partitiontable.partitions[0]!,
        path.join(work, 'mbr-root.ext4'),
      );
      await runOk('e2fsck', ['-fn', root]);
      // The partition table and the vfat filesystem are the same bytes every time. (ext4 is not:
      // mke2fs 1.47.0 -d copies each inode's ctime from the scratch tree; see docs/image.md.)
      const sum = async (f: string) => (await runOk('sha256sum', [f])).stdout.split(' ')[0];
      const again = await extract(disks[1]!, data, path.join(work, 'data2.vfat'));
      expect(await sum(dataImg)).toBe(await sum(again));
      const mbr = (f: string) => fs.readFileSync(f).subarray(0, 512);
      expect(mbr(disks[0]!).equals(mbr(disks[1]!))).toBe(true);
    },
    SLOW,
  );

  it(
    'gives the same table, boot partitions and rawcopy bytes on every run, dated SOURCE_DATE_EPOCH or the image',
    async () => {
      // Issue: the ESP and /boot held files stamped with the time of the run.
      const wks = path.join(work, 'repro.wks');
      fs.writeFileSync(
        wks,
        [
          'bootloader --ptable gpt',
          'part /boot/efi --source bootimg-efi --sourceparams=loader=systemd-boot --label ESP',
          'part /boot --source bootimg-partition --sourceparams "files=data/readme.txt;docs/" --label BOOT',
          'part blob --source rawcopy --sourceparams file=/data/readme.txt',
          'part / --source rootfs --fstype ext4 --label root',
        ].join('\n'),
      );
      const env = { MTOOLS_SKIP_CHECK: '1', TZ: 'UTC0' };
      const dir = async (img: string, p: { start: number }, d: string): Promise<string> =>
        (await runOk('mdir', ['-i', `${img}@@${p.start * 512}`, d], { env })).stdout;
      for (const epoch of ['1700000000', undefined]) {
        const disks = [path.join(work, 'repro1.img'), path.join(work, 'repro2.img')];
        for (const [i, d] of disks.entries()) {
          // FAT counts in 2 s: runs further apart than that would see the clock.
          if (i > 0) await new Promise((r) => setTimeout(r, 2100));
          await strataOk(['image', 'tiny:1', '--wks', wks, '-o', d], {
            store,
            env: epoch === undefined ? { SOURCE_DATE_EPOCH: '' } : { SOURCE_DATE_EPOCH: epoch },
          });
        }
        const t = JSON.parse((await runOk('sfdisk', ['--json', disks[0]!])).stdout) as SfdiskJson;
        const [esp, boot, blob, root] = t.partitiontable.partitions;
        expect(esp && boot && blob && root).toBeTruthy();
        const a = fs.readFileSync(disks[0]!);
        const b = fs.readFileSync(disks[1]!);
        // The table (and GPT's backup at the end), then each partition but ext4 (see docs).
        expect(a.subarray(0, esp!.start * 512).equals(b.subarray(0, esp!.start * 512))).toBe(true);
        expect(a.subarray(a.length - 33 * 512).equals(b.subarray(b.length - 33 * 512))).toBe(true);
        for (const p of [esp!, boot!, blob!]) {
          const bytes = (x: Buffer) => x.subarray(p.start * 512, (p.start + p.size) * 512);
          expect({ start: p.start, same: bytes(a).equals(bytes(b)) }).toEqual({
            start: p.start,
            same: true,
          });
        }
        // Dated by SOURCE_DATE_EPOCH (2023-11-14 22:13:20 UTC), else by the image's creation.
        const created = JSON.parse(
          (await strataOk(['inspect', 'tiny:1', '--json'], { store })).stdout,
        ) as { config?: { created?: string }; created?: string };
        const when = new Date(
          epoch === undefined
            ? (created.config?.created ?? created.created ?? '')
            : Number(epoch) * 1000,
        );
        expect(Number.isNaN(when.getTime())).toBe(false);
        const day = when.toISOString().slice(0, 10);
        const minute = when.toISOString().slice(11, 16);
        for (const [p, d, name] of [
          [esp!, '::/', 'vmlinuz'],
          [esp!, '::/', 'EFI'],
          [esp!, '::/EFI/BOOT', 'BOOTX64'],
          [boot!, '::/', 'extlinux'],
          [boot!, '::/docs', 'readme'],
        ] as const) {
          const line = (await dir(disks[0]!, p, d)).split('\n').find((l) => l.startsWith(name));
          expect(line).toContain(`${day}  ${minute}`);
        }
      }
    },
    SLOW,
  );

  it(
    'puts a fifth msdos partition in an extended partition, as wic does (no bootloader line)',
    async () => {
      // Issue 15: four parts and then `part /` on msdos wrote a table without the root
      // partition. With no bootloader line the table is msdos.
      const wks = path.join(work, 'five.wks');
      fs.writeFileSync(
        wks,
        [
          'part /boot/efi --source bootimg-efi --sourceparams=loader=systemd-boot --label ESP',
          'part /data --source rootfs --fstype vfat --label DATA --size 8',
          'part /spare --size 4',
          'part /srv --source rootfs --fstype ext4 --label srv',
          'part / --source rootfs --fstype ext4 --label root',
        ].join('\n'),
      );
      const disk = path.join(work, 'five.img');
      const res = await strataJson<{
        partitions: { mountpoint: string; number: number; kind: string }[];
        extended: { start: number; size: number };
      }>(['image', 'tiny:1', '--wks', wks, '-o', disk], { store });
      expect(res.partitions.map((p) => [p.mountpoint, p.number, p.kind])).toEqual([
        ['/boot/efi', 1, 'primary'],
        ['/data', 2, 'primary'],
        ['/spare', 3, 'primary'],
        ['/srv', 5, 'logical'],
        ['/', 6, 'logical'],
      ]);
      const t = JSON.parse((await runOk('sfdisk', ['--json', disk])).stdout) as SfdiskJson;
      expect(t.partitiontable.label).toBe('dos');
      const byNumber = new Map(
        t.partitiontable.partitions.map((p) => [Number(/(\d+)$/.exec(p.node)![1]), p]),
      );
      expect([...byNumber.keys()]).toEqual([1, 2, 3, 4, 5, 6]);
      expect([...byNumber.values()].map((p) => p.type)).toEqual(['ef', 'c', '83', '5', '83', '83']);
      expect(byNumber.get(1)!.bootable).toBe(true);
      const ext = byNumber.get(4)!;
      const srv = byNumber.get(5)!;
      const root = byNumber.get(6)!;
      expect(ext.start * 512).toBe(res.extended.start);
      expect(ext.start).toBeGreaterThanOrEqual(byNumber.get(3)!.start + byNumber.get(3)!.size);
      expect(ext.start + ext.size).toBe(root.start + root.size);
      // sfdisk -d, the dump format, lists the same six entries.
      const dump = (await runOk('sfdisk', ['-d', disk])).stdout;
      expect(dump.split('\n').filter((l) => l.includes('start='))).toHaveLength(6);

      // The filesystems read back at the offsets the table gives.
      const rootImg = await extract(disk, root, path.join(work, 'five-root.ext4'));
      await runOk('e2fsck', ['-fn', rootImg]);
      expect(await debugfs(rootImg, 'cat /etc/marker')).toBe('image-e2e\n');
      expect((await runOk('dumpe2fs', ['-h', rootImg])).stdout).toMatch(
        /Filesystem volume name:\s+root\n/,
      );
      const srvImg = await extract(disk, srv, path.join(work, 'five-srv.ext4'));
      await runOk('e2fsck', ['-fn', srvImg]);
      expect(await debugfs(srvImg, 'cat /owned')).toBe('owned by 1234:5678\n');
      const env = { MTOOLS_SKIP_CHECK: '1' };
      const data = byNumber.get(2)!;
      expect(
        (await runOk('mtype', ['-i', `${disk}@@${data.start * 512}`, '::/readme.txt'], { env }))
          .stdout,
      ).toBe('for the vfat data partition\n');
      // The kernel names the root partition <disk id>-06: the loader entry must say so.
      const esp = byNumber.get(1)!;
      const entry = (
        await runOk(
          'mtype',
          ['-i', `${disk}@@${esp.start * 512}`, '::/loader/entries/strata.conf'],
          {
            env,
          },
        )
      ).stdout;
      const diskId = t.partitiontable.id!.replace(/^0x/, '');
      expect(entry).toContain(`root=PARTUUID=${diskId}-06 `);
    },
    SLOW,
  );

  it('refuses a partition type the table cannot hold, at its line', async () => {
    const wks = path.join(work, 'ext.wks');
    fs.writeFileSync(
      wks,
      'bootloader --ptable msdos\npart / --source rootfs --fstype ext4 --part-type 0f\n',
    );
    const out = path.join(work, 'ext.img');
    const r = await strata(['image', 'tiny:1', '--wks', wks, '-o', out], { store });
    expect(r.code).toBe(1);
    expect(isOneLineError(r.stderr)).toBe(true);
    expect(r.stderr).toContain(`${wks}:2:1: --part-type 0f is an extended partition`);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('rejects an unknown option with file:line:column, writing nothing', async () => {
    const wks = path.join(work, 'bad.wks');
    fs.writeFileSync(
      wks,
      'bootloader --ptable gpt\n\npart / --source rootfs --fstype ext4 --ondisk sda\n',
    );
    const out = path.join(work, 'bad.img');
    const r = await strata(['image', 'tiny:1', '--wks', wks, '-o', out], { store });
    expect(r.code).toBe(1);
    expect(isOneLineError(r.stderr)).toBe(true);
    expect(r.stderr).toContain(`${wks}:3:38: unknown option --ondisk`);
    expect(fs.existsSync(out)).toBe(false);
  });

  it.each([
    [
      'rawcopy of a missing file',
      'part u-boot --source rawcopy --sourceparams file=/usr/lib/u-boot/nope.bin --no-table --offset 8K',
      'file=',
      'rawcopy: /usr/lib/u-boot/nope.bin is not in the rootfs',
    ],
    [
      'rawcopy of a directory',
      'part u-boot --source rawcopy --sourceparams file=/usr/bin',
      'file=',
      'rawcopy: /usr/bin is not a regular file',
    ],
    [
      'a files glob that matches nothing',
      'part /boot --source bootimg-partition --sourceparams "files=/usr/lib/*.dtb"',
      '"files=',
      'bootimg-partition: files: nothing in the rootfs matches /usr/lib/*.dtb',
    ],
    [
      'an fdt that is not among the boot files',
      'part /boot --source bootimg-partition --sourceparams fdt=/board.dtb',
      'fdt=',
      'bootimg-partition: fdt=/board.dtb is not among the boot files',
    ],
    [
      'a rootfs mountpoint that is not a directory',
      'part /etc/marker --source rootfs --fstype ext4',
      '/etc/marker',
      '/etc/marker is not a directory in the rootfs',
    ],
  ])(
    'names file:line:column for %s, exit 1, writing nothing',
    async (_what, line, at, message) => {
      const wks = path.join(work, 'line.wks');
      fs.writeFileSync(
        wks,
        `bootloader --ptable msdos\n${line}\npart / --source rootfs --fstype ext4\n`,
      );
      const out = path.join(work, 'line.img');
      const r = await strata(['image', 'tiny:1', '--wks', wks, '-o', out], { store });
      expect(r.stderr).toContain(`${wks}:2:${line.indexOf(at) + 1}: ${message}`);
      expect(isOneLineError(r.stderr)).toBe(true);
      expect(r.code).toBe(1);
      expect(fs.existsSync(out)).toBe(false);
    },
    SLOW,
  );

  it('names the Debian architecture when bootimg-efi has no systemd-boot for it', async () => {
    const root = makeTinyRootfs(path.join(work, 'armel'), 'armel');
    fs.writeFileSync(
      path.join(root, 'var/lib/dpkg/status'),
      'Package: base-files\nStatus: install ok installed\nArchitecture: armel\nVersion: 12.4+deb12u5\n',
    );
    fs.mkdirSync(path.join(root, 'boot'));
    fs.writeFileSync(path.join(root, 'boot/vmlinuz-6.1.0-99-marvell'), 'not really a kernel\n');
    await strataOk(['template', 'create', root, '-t', 'armel:1', '--name', 'armel'], { store });
    const wks = path.join(work, 'armel.wks');
    fs.writeFileSync(wks, 'bootloader --ptable gpt\npart /boot/efi --source bootimg-efi\n');
    const r = await strata(['image', 'armel:1', '--wks', wks, '-o', path.join(work, 'armel.img')], {
      store,
    });
    expect(r.stderr).toContain(
      `${wks}:2:25: bootimg-efi: no systemd-boot for the armel architecture (hint: bootimg-efi is for`,
    );
    expect(r.stderr).toContain('for U-Boot use --source bootimg-partition');
    expect(r.code).toBe(1);
  });

  it(
    'boots an armhf template from GPT: systemd-bootarm.efi as BOOTARM.EFI, / of the ARM32 root type',
    async () => {
      const root = makeTinyRootfs(path.join(work, 'armhf'), 'armhf');
      fs.writeFileSync(
        path.join(root, 'var/lib/dpkg/status'),
        'Package: base-files\nStatus: install ok installed\nArchitecture: armhf\nVersion: 12.4+deb12u5\n',
      );
      fs.mkdirSync(path.join(root, 'boot'));
      fs.writeFileSync(path.join(root, 'boot/vmlinuz-6.1.0-99-armmp'), 'not really a kernel\n');
      fs.mkdirSync(path.join(root, 'usr/lib/systemd/boot/efi'), { recursive: true });
      fs.writeFileSync(
        path.join(root, 'usr/lib/systemd/boot/efi/systemd-bootarm.efi'),
        'not really systemd-boot\n',
      );
      await strataOk(['template', 'create', root, '-t', 'armhf:1', '--name', 'armhf'], { store });
      const wks = path.join(work, 'armhf.wks');
      fs.writeFileSync(
        wks,
        'bootloader --ptable gpt\npart /boot/efi --source bootimg-efi --label ESP\npart / --source rootfs --fstype ext4\n',
      );
      const disk = path.join(work, 'armhf.img');
      await strataOk(['image', 'armhf:1', '--wks', wks, '-o', disk], { store });
      const t = JSON.parse((await runOk('sfdisk', ['--json', disk])).stdout) as SfdiskJson;
      const [esp, rootPart] = t.partitiontable.partitions;
      expect(rootPart!.type).toBe('69DAD710-2CE4-4E3C-B16C-21A1D49ABED3');
      const env = { MTOOLS_SKIP_CHECK: '1' };
      expect(
        (
          await runOk('mtype', ['-i', `${disk}@@${esp!.start * 512}`, '::/EFI/BOOT/BOOTARM.EFI'], {
            env,
          })
        ).stdout,
      ).toBe('not really systemd-boot\n');
    },
    SLOW,
  );

  it('explains a missing bootloader in the rootfs', async () => {
    makeTinyRootfs(path.join(work, 'noboot'), 'noboot');
    await strataOk(
      ['template', 'create', path.join(work, 'noboot'), '-t', 'noboot:1', '--name', 'noboot'],
      { store },
    );
    const wks = path.join(work, 'esp.wks');
    fs.writeFileSync(
      wks,
      'bootloader --ptable gpt\npart /boot/efi --source bootimg-efi --fstype vfat\n',
    );
    const r = await run(process.execPath, [
      path.join(__dirname, '..', 'packages', 'cli', 'bin', 'strata.js'),
      '--store',
      store,
      'image',
      'noboot:1',
      '--wks',
      wks,
      '-o',
      path.join(work, 'noboot.img'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `${wks}:2:25: bootimg-efi: /usr/lib/systemd/boot/efi/systemd-bootx64.efi is not in the rootfs (hint: install systemd-boot-efi`,
    );
  });
});

describe('strata image, interrupted', () => {
  beforeAll(async () => {
    const fx = await minbaseRootfs();
    await strataOk(['template', 'create', fx.rootfs, '-t', 'minbase:1', '--name', 'minbase'], {
      store,
    });
  }, SLOW);

  /** The scratch dir of an image built into `dir`, once `inside` exists in it. */
  const scratchHolds =
    (inside: string) =>
    (dir: string): boolean =>
      fs
        .readdirSync(dir)
        .some((n) => n.startsWith('.strata-image-') && fs.existsSync(path.join(dir, n, inside)));

  it.each([
    ['SIGINT', 'while it unpacks the rootfs', scratchHolds('rootfs/usr')],
    ['SIGTERM', 'while mke2fs runs', scratchHolds('out.ext4')],
  ] as const)(
    '%s %s: exit 130, one error line, no scratch dir or image left',
    async (signal, _when, ready) => {
      const dir = tmpDir('strata-image-intr-');
      const run = startStrata([
        '--store',
        store,
        'image',
        'minbase:1',
        '--ext4',
        path.join(dir, 'root.ext4'),
      ]);
      while (run.running() && !ready(dir)) await new Promise((r) => setTimeout(r, 5));
      expect(run.running()).toBe(true); // the build was caught in the act
      run.child.kill(signal);
      expect(await run.exited).toEqual([130, null]);
      expect(run.output()).toEqual({ stdout: '', stderr: 'strata: error: image interrupted\n' });
      expect(fs.readdirSync(dir)).toEqual([]);
    },
    SLOW,
  );
});
