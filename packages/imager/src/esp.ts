/**
 * The EFI system partition of a disk image (`--source bootimg-efi`): systemd-boot, the newest
 * kernel of the rootfs and its initrd, and a loader entry that boots the root partition.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError, StrataError } from '@strata/oci';
import { Wks } from './wks';

/**
 * Marks an error of a source as one about its `--sourceparams` (a file it names), so that the
 * message points at that option of the `part` line.
 */
export function aboutSourceParams<E extends StrataError>(e: E): E {
  (e as E & { wksOption?: string }).wksOption = 'sourceparams';
  return e;
}

/**
 * Where `rel` leads in the rootfs at `root`, following the rootfs's own symlinks as a chroot
 * would (an absolute target starts at `root`, `..` stops there), so no symlink can lead out
 * of it: Debian's usrmerge makes /lib a symlink to usr/lib. Relative to `root`; undefined when
 * it leads nowhere.
 */
export function resolveInRoot(root: string, rel: string): string | undefined {
  const parts = (s: string): string[] => s.split('/').filter((c) => c !== '' && c !== '.');
  const todo = parts(rel);
  const done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift() as string;
    if (c === '..') {
      done.pop();
      continue;
    }
    const p = path.join(root, ...done, c);
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      // The kernel's own limit on symlinks in one lookup.
      if (++hops > 40) return undefined;
      const target = fs.readlinkSync(p);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...parts(target));
      continue;
    }
    if (todo.length > 0 && !st.isDirectory()) return undefined;
    done.push(c);
  }
  return done.join('/');
}

/** The regular file `rel` names in the rootfs at `root`, its symlinks followed inside it. */
export function regularFile(root: string, rel: string): string {
  const real = resolveInRoot(root, rel);
  if (real === undefined) throw new NotFoundError(`/${rel} is not in the rootfs`);
  const p = path.join(root, real);
  if (!fs.lstatSync(p).isFile()) {
    const via = real === rel ? '' : ` (it leads to /${real})`;
    throw new InvalidArgumentError(`/${rel} is not a regular file${via}`);
  }
  return p;
}

/** Newest kernel in /boot and its initrd. */
export function findKernel(root: string): { kernel: string; initrd?: string; version: string } {
  const boot = `${root}/boot`;
  const names = fs.existsSync(boot) ? fs.readdirSync(boot) : [];
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const version = versions[versions.length - 1];
  if (version === undefined) {
    throw new NotFoundError('no kernel (/boot/vmlinuz-*) in the rootfs', {
      hint: 'install linux-image-<arch> in the template',
    });
  }
  const kernel = regularFile(root, `boot/vmlinuz-${version}`);
  const initrd = names.includes(`initrd.img-${version}`)
    ? regularFile(root, `boot/initrd.img-${version}`)
    : undefined;
  return { kernel, initrd, version };
}

/** systemd-boot's name for each Debian architecture it is built for. */
const EFI_ARCH: Record<string, string> = {
  amd64: 'x64',
  arm64: 'aa64',
  armhf: 'arm',
  i386: 'ia32',
};

/** Stage an EFI system partition with systemd-boot, the kernel and its initrd. */
export function stageEsp(
  root: string,
  dir: string,
  arch: string,
  rootDevice: string | undefined,
  boot: Wks['bootloader'],
): void {
  const efiArch = Object.hasOwn(EFI_ARCH, arch) ? EFI_ARCH[arch] : undefined;
  if (efiArch === undefined) {
    throw new InvalidArgumentError(`bootimg-efi: no systemd-boot for the ${arch} architecture`, {
      hint: `bootimg-efi is for ${Object.keys(EFI_ARCH).join(', ')}; for U-Boot use --source bootimg-partition`,
    });
  }
  const loaderRel = `usr/lib/systemd/boot/efi/systemd-boot${efiArch}.efi`;
  if (resolveInRoot(root, loaderRel) === undefined) {
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
