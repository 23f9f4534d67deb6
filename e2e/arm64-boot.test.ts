/**
 * The arm64 boot example (examples/boot-arm64): an arm64 minbase template (the cached
 * `foreignMinbaseTar('arm64')`), a Stratafile that installs the kernel, systemd and the
 * bootloaders' files under qemu-user, and two disks made from it by `strata image --wks`, each
 * booted in `qemu-system-aarch64 -M virt` under TCG:
 *  - efi.wks: GPT + EFI system partition with systemd-bootaa64.efi, on AAVMF (UEFI);
 *  - uboot.wks: msdos, a rawcopy part outside the table, and a bootimg-partition that U-Boot's
 *    distro boot (u-boot-qemu's qemu_arm64 build as -bios) finds extlinux.conf on: no EFI.
 *
 * By default a boot passes at the kernel's first userspace line ("Run /init as init process":
 * firmware, bootloader, kernel and initrd all worked), which keeps CI short. With
 * STRATA_E2E_FULL_BOOT=1 it waits for the example's marker unit, STRATA-BOOT-OK, printed once
 * systemd has reached multi-user (README: "Booting the arm64 examples").
 *
 * Cost (measured on the loaded 2-core dev machine): the template build runs apt and
 * update-initramfs emulated, ≈ 14 min the first time (then loaded from $STRATA_E2E_CACHE in
 * about a minute); each boot ≈ 40 s to the first userspace line, ≈ 2 min to the marker. Needs root, the mirror, qemu-user-static + binfmt_misc, qemu-system-arm,
 * qemu-efi-aarch64 and u-boot-qemu.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  bootUntil,
  CACHE_DIR,
  cleanupTmp,
  foreignMinbaseTar,
  REPO_ROOT,
  runOk,
  sha256File,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

const EXAMPLE = path.join(REPO_ROOT, 'examples', 'boot-arm64');
const AAVMF_CODE = '/usr/share/AAVMF/AAVMF_CODE.fd';
const AAVMF_VARS = '/usr/share/AAVMF/AAVMF_VARS.fd';
const UBOOT = '/usr/lib/u-boot/qemu_arm64/u-boot.bin';
const FULL = process.env.STRATA_E2E_FULL_BOOT === '1';
const MARKER = FULL ? 'STRATA-BOOT-OK' : 'Run /init as init process';
const BOOT_TIMEOUT = (FULL ? 20 : 8) * 60 * 1000;

const EM_X86_64 = 0x3e;
const EM_AARCH64 = 0xb7;

/** e_machine of an ELF file (after symlinks), or undefined for a script. */
function elfMachine(file: string): number | undefined {
  const h = Buffer.alloc(20);
  const fd = fs.openSync(fs.realpathSync(file), 'r');
  try {
    fs.readSync(fd, h, 0, 20, 0);
  } finally {
    fs.closeSync(fd);
  }
  return h.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))
    ? h.readUInt16LE(18)
    : undefined;
}

/** The programs `strata ARGS` executes (strace -f), each once. */
async function tracedExecs(args: string[]): Promise<string[]> {
  const trace = path.join(work, 'exec.trace');
  await runOk('strace', [
    '-f',
    '-qq',
    '-e',
    'trace=execve',
    '-e',
    'signal=none',
    '-o',
    trace,
    process.execPath,
    path.join(REPO_ROOT, 'packages/cli/bin/strata.js'),
    '--store',
    store,
    ...args,
  ]);
  return [
    ...new Set(
      fs
        .readFileSync(trace, 'utf8')
        .split('\n')
        .map((l) => /execve\("([^"]+)".*= 0$/.exec(l)?.[1])
        .filter((x): x is string => x !== undefined),
    ),
  ];
}

let work: string;
let store: string;

/**
 * The example's template in `store` as boot-arm64:1. Built once from the arm64 minbase and the
 * example's Stratafile, then saved in CACHE_DIR under a name that hashes those inputs.
 */
async function exampleTemplate(): Promise<void> {
  const tar = await foreignMinbaseTar('arm64');
  const h = createHash('sha256');
  // What the build reads: the .wks files and the README are not part of the template.
  for (const f of ['Stratafile', 'strata-boot-marker.service']) {
    h.update(f).update(fs.readFileSync(path.join(EXAMPLE, f)));
  }
  h.update(sha256File(tar));
  const saved = path.join(CACHE_DIR, `boot-arm64-${h.digest('hex').slice(0, 12)}.tmpl.img`);
  if (fs.existsSync(saved)) {
    await strataOk(['load', saved, '-t', 'boot-arm64:1'], { store });
    return;
  }
  await strataOk(['template', 'create', tar, '-t', 'minbase-arm64:1', '--name', 'minbase-arm64'], {
    store,
  });
  await strataOk(['build', '-q', '-t', 'boot-arm64:1', EXAMPLE], { store });
  const part = `${saved}.partial-${process.pid}`;
  await strataOk(['save', 'boot-arm64:1', '-o', part], { store });
  fs.renameSync(part, saved);
}

/** Boot qemu-system-aarch64 with `args`; resolve with the console once `MARKER` appears. */
function boot(args: string[], log: string): Promise<string> {
  return bootUntil(
    'qemu-system-aarch64',
    [
      '-machine',
      'virt',
      '-accel',
      'tcg',
      '-cpu',
      'cortex-a57',
      '-smp',
      '2',
      '-m',
      '1024',
      '-nographic',
      '-no-reboot',
      '-net',
      'none',
      ...args,
    ],
    { marker: MARKER, timeoutMs: BOOT_TIMEOUT, log },
  );
}

beforeAll(
  async () => {
    work = tmpDir('strata-arm64-boot-e2e-');
    store = path.join(work, 'store');
    await exampleTemplate();
  },
  60 * 60 * 1000,
);

afterAll(cleanupTmp);

it(
  'the arm64 template carries arm64, and flatten and image need no emulation',
  async () => {
    const info = await strataJson<{ architecture: string }>(['inspect', 'boot-arm64:1'], {
      store,
    });
    expect(info.architecture).toBe('arm64');
    // Every program that flatten and image run is a host (x86-64) binary: list what they exec.
    const flattenExecs = await tracedExecs([
      'flatten',
      'boot-arm64:1',
      '--rootfs',
      path.join(work, 'traced.tar.zst'),
    ]);
    const imageExecs = await tracedExecs([
      'image',
      'boot-arm64:1',
      '--wks',
      path.join(EXAMPLE, 'efi.wks'),
      '-o',
      path.join(work, 'traced.img'),
    ]);
    expect(flattenExecs).toContainEqual(expect.stringMatching(/\/zstd$/));
    expect(imageExecs).toContainEqual(expect.stringMatching(/\/mke2fs$/));
    for (const exe of [...flattenExecs, ...imageExecs]) {
      expect(exe).not.toMatch(/qemu-/);
      expect([exe, elfMachine(exe)]).not.toEqual([exe, EM_AARCH64]);
    }
    expect(imageExecs.map(elfMachine)).toContain(EM_X86_64);
    // Each disk is a few GB: keep one at a time on the CI machine's disk.
    for (const f of ['traced.tar.zst', 'traced.img'])
      fs.rmSync(path.join(work, f), { force: true });
  },
  30 * 60 * 1000,
);

it(
  `boots the efi.wks disk on AAVMF (UEFI, systemd-boot aa64) to ${FULL ? 'the marker unit' : 'userspace'}`,
  async () => {
    const disk = path.join(work, 'efi.img');
    await strataOk(['image', 'boot-arm64:1', '--wks', path.join(EXAMPLE, 'efi.wks'), '-o', disk], {
      store,
    });
    const vars = path.join(work, 'AAVMF_VARS.fd');
    fs.copyFileSync(AAVMF_VARS, vars);
    const console = await boot(
      [
        '-drive',
        `if=pflash,format=raw,unit=0,readonly=on,file=${AAVMF_CODE}`,
        '-drive',
        `if=pflash,format=raw,unit=1,file=${vars}`,
        '-drive',
        `file=${disk},format=raw,if=virtio`,
      ],
      path.join(CACHE_DIR, 'boot-arm64-efi-console.log'),
    );
    expect(console).toMatch(/Linux version \S+-arm64/);
    // The kernel was started as an EFI application (by systemd-boot).
    expect(console).toContain('EFI stub');
    expect(console).toContain(MARKER);
    fs.rmSync(disk);
  },
  30 * 60 * 1000,
);

it(
  `boots the uboot.wks disk with U-Boot distro boot (extlinux.conf, no EFI) to ${FULL ? 'the marker unit' : 'userspace'}`,
  async () => {
    const disk = path.join(work, 'uboot.img');
    await strataOk(
      ['image', 'boot-arm64:1', '--wks', path.join(EXAMPLE, 'uboot.wks'), '-o', disk],
      { store },
    );
    const console = await boot(
      ['-bios', UBOOT, '-drive', `file=${disk},format=raw,if=virtio`],
      path.join(CACHE_DIR, 'boot-arm64-uboot-console.log'),
    );
    expect(console).toContain('extlinux/extlinux.conf');
    expect(console).toMatch(/Linux version \S+-arm64/);
    // U-Boot started the kernel from extlinux.conf: no EFI loader took part.
    expect(console).not.toMatch(/EFI stub|systemd-boot/);
    expect(console).toContain(MARKER);
  },
  30 * 60 * 1000,
);
