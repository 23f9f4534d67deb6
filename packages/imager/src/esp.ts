/**
 * The EFI system partition of a disk image (`--source bootimg-efi`): systemd-boot, the newest
 * kernel of the rootfs and its initrd, and a loader entry that boots the root partition.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError, UnsafeEntryError } from '@strata/oci';
import { Wks } from './wks';

/** Names a file under `root` that must be a regular file (no symlink anywhere on the way). */
export function regularFile(root: string, rel: string): string {
  let p = root;
  for (const c of rel.split('/')) {
    p = `${p}/${c}`;
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) throw new NotFoundError(`/${rel} is not in the rootfs`);
    if (st.isSymbolicLink())
      throw new UnsafeEntryError(rel, `${p.slice(root.length)} is a symlink`);
  }
  if (!fs.lstatSync(p).isFile()) throw new InvalidArgumentError(`/${rel} is not a regular file`);
  return p;
}

/** Newest kernel in /boot and its initrd. */
export function findKernel(
  root: string,
  source = 'bootimg-efi',
): { kernel: string; initrd?: string; version: string } {
  const boot = `${root}/boot`;
  const names = fs.existsSync(boot) ? fs.readdirSync(boot) : [];
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const version = versions[versions.length - 1];
  if (version === undefined) {
    throw new NotFoundError(`no kernel (/boot/vmlinuz-*) in the rootfs for ${source}`, {
      hint: 'install linux-image-<arch> in the template',
    });
  }
  const kernel = regularFile(root, `boot/vmlinuz-${version}`);
  const initrd = names.includes(`initrd.img-${version}`)
    ? regularFile(root, `boot/initrd.img-${version}`)
    : undefined;
  return { kernel, initrd, version };
}

const EFI_ARCH: Record<string, string> = { amd64: 'x64', arm64: 'aa64', i386: 'ia32' };

/** Stage an EFI system partition with systemd-boot, the kernel and its initrd. */
export function stageEsp(
  root: string,
  dir: string,
  arch: string,
  rootDevice: string | undefined,
  boot: Wks['bootloader'],
): void {
  const efiArch = EFI_ARCH[arch];
  if (efiArch === undefined)
    throw new InvalidArgumentError(`bootimg-efi: unsupported architecture ${arch}`);
  const loaderRel = `usr/lib/systemd/boot/efi/systemd-boot${efiArch}.efi`;
  if (!fs.existsSync(`${root}/${loaderRel}`)) {
    throw new NotFoundError(`bootimg-efi: /${loaderRel} is not in the rootfs`, {
      hint: 'install systemd-boot-efi in the template',
    });
  }
  const loader = regularFile(root, loaderRel);
  const k = findKernel(root);
  const mk = (rel: string): string => {
    fs.mkdirSync(path.join(dir, rel), { recursive: true });
    return path.join(dir, rel);
  };
  fs.copyFileSync(loader, path.join(mk('EFI/BOOT'), `BOOT${efiArch.toUpperCase()}.EFI`));
  fs.copyFileSync(loader, path.join(mk('EFI/systemd'), `systemd-boot${efiArch}.efi`));
  fs.copyFileSync(k.kernel, path.join(dir, 'vmlinuz'));
  if (k.initrd !== undefined) fs.copyFileSync(k.initrd, path.join(dir, 'initrd.img'));
  fs.writeFileSync(
    path.join(mk('loader'), 'loader.conf'),
    `default strata.conf\ntimeout ${boot.timeout ?? 0}\n`,
  );
  const options = [rootDevice ? `root=${rootDevice}` : '', 'rw', boot.append ?? '']
    .filter(Boolean)
    .join(' ');
  fs.writeFileSync(
    path.join(mk('loader/entries'), 'strata.conf'),
    [
      `title Strata (${k.version})`,
      'linux /vmlinuz',
      ...(k.initrd !== undefined ? ['initrd /initrd.img'] : []),
      `options ${options}`,
      '',
    ].join('\n'),
  );
}
