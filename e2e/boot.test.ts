/**
 * The boot example (examples/boot): a Debian rootfs with linux-image-amd64 and systemd-boot,
 * made into a template, imaged with boot.wks into a GPT disk with an EFI system partition, and
 * booted in qemu-system-x86_64 with OVMF under TCG (no KVM). It passes once userspace is up:
 * the example's unit prints STRATA-BOOT-OK on the serial console.
 *
 * Cost: mmdebstrap ≈ 3–5 min (cached in $STRATA_E2E_CACHE afterwards), template + image ≈ 1 min,
 * the TCG boot 1–4 min. Needs root, the Debian mirror, qemu-system-x86 and ovmf.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bootUntil, CACHE_DIR, cleanupTmp, REPO_ROOT, runOk, strataOk, tmpDir } from './helpers';

const EXAMPLE = path.join(REPO_ROOT, 'examples', 'boot');
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
const MARKER = 'STRATA-BOOT-OK';
const BOOT_TIMEOUT = 12 * 60 * 1000;

/** The example rootfs tarball, rebuilt when the example's inputs change. */
async function exampleRootfs(): Promise<string> {
  const h = createHash('sha256');
  for (const f of ['rootfs.sh', 'strata-boot-marker.service']) {
    h.update(fs.readFileSync(path.join(EXAMPLE, f)));
  }
  const tar = path.join(CACHE_DIR, `boot-rootfs-${h.digest('hex').slice(0, 12)}.tar`);
  if (!fs.existsSync(tar)) {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    // mmdebstrap picks the output format from the extension: keep '.tar' at the end.
    const part = tar.replace(/\.tar$/, '.partial.tar');
    await runOk(path.join(EXAMPLE, 'rootfs.sh'), [part]);
    fs.renameSync(part, tar);
  }
  return tar;
}

/** Boot `disk` and resolve with the serial console output once `MARKER` appears. */
function boot(disk: string, vars: string, log: string): Promise<string> {
  return bootUntil(
    'qemu-system-x86_64',
    [
      '-machine',
      'q35',
      '-accel',
      'tcg',
      '-cpu',
      'max',
      '-smp',
      '2',
      '-m',
      '1024',
      '-nographic',
      '-no-reboot',
      '-net',
      'none',
      '-drive',
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive',
      `if=pflash,format=raw,unit=1,file=${vars}`,
      '-drive',
      `file=${disk},format=raw,if=virtio`,
    ],
    { marker: MARKER, timeoutMs: BOOT_TIMEOUT, log },
  );
}

afterAll(() => cleanupTmp());

it(
  'boots the example image to userspace in qemu + OVMF under TCG',
  async () => {
    const work = tmpDir('strata-boot-e2e-');
    const store = path.join(work, 'store');
    const tar = await exampleRootfs();
    await strataOk(['template', 'create', tar, '-t', 'boot-example:1', '--name', 'boot-example'], {
      store,
    });
    const disk = path.join(work, 'disk.img');
    await strataOk(
      ['image', 'boot-example:1', '--wks', path.join(EXAMPLE, 'boot.wks'), '-o', disk],
      { store },
    );
    const vars = path.join(work, 'OVMF_VARS.fd');
    fs.copyFileSync(OVMF_VARS, vars);
    const console = await boot(disk, vars, path.join(CACHE_DIR, 'boot-console.log'));
    expect(console).toContain(MARKER);
    expect(console).toMatch(/Linux version|Welcome to|Debian GNU\/Linux/);
  },
  30 * 60 * 1000,
);
