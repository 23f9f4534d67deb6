/**
 * The sources of wic that ARM boards need: `bootimg-partition`, a vfat partition with the
 * kernel, its initrd, named boot files and an extlinux.conf for U-Boot's distro boot, and
 * `rawcopy`, the bytes of one file of the rootfs (a bootloader) at a fixed place on the disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@strata/oci';
import { aboutSourceParams, findKernel, regularFile, resolveInRoot } from './esp';
import { Wks, WksPart } from './wks';

/** A path in the rootfs as the .wks names it: leading slashes dropped, no '..', not empty. */
function relPath(what: string, p: string): string {
  const rel = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (rel === '' || rel.split('/').some((c) => c === '..' || c === '.' || c === '')) {
    throw aboutSourceParams(
      new InvalidArgumentError(`${what}: not a clean path in the rootfs: ${JSON.stringify(p)}`),
    );
  }
  return rel;
}

/** The file a rawcopy part copies: a regular file of the rootfs, its symlinks followed inside it. */
export function rawcopyFile(root: string, part: WksPart): string {
  const file = part.sourceParams.file as string;
  try {
    return regularFile(root, relPath('file', file));
  } catch (e) {
    throw e instanceof InvalidArgumentError || e instanceof NotFoundError
      ? aboutSourceParams(e)
      : e;
  }
}

function globRe(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[^/]*')
    .replace(/\?/g, '[^/]');
  return new RegExp(`^${body}$`);
}

/**
 * Paths of the rootfs matching `pattern`, where `*` and `?` match within one path component
 * (as wic's IMAGE_BOOT_FILES globs do). Symlinks on the way are followed inside the rootfs
 * (see resolveInRoot), so a symlink in the rootfs can never lead the copy out of it.
 */
function expand(root: string, pattern: string): string[] {
  let found = [''];
  for (const comp of relPath('files', pattern).split('/')) {
    const next: string[] = [];
    for (const dir of found) {
      const real = resolveInRoot(root, dir);
      if (real === undefined) continue;
      const abs = path.join(root, real);
      if (!fs.lstatSync(abs).isDirectory()) continue;
      if (!/[*?]/.test(comp)) {
        if (fs.lstatSync(path.join(abs, comp), { throwIfNoEntry: false }) !== undefined)
          next.push(dir === '' ? comp : `${dir}/${comp}`);
        continue;
      }
      const re = globRe(comp);
      for (const n of fs.readdirSync(abs).sort()) {
        if (re.test(n)) next.push(dir === '' ? n : `${dir}/${n}`);
      }
    }
    found = next;
  }
  return found;
}

/** A name inside the boot partition: relative, clean. */
function destPath(d: string): string {
  const rel = d.replace(/^\/+/, '');
  if (rel.split('/').some((c) => c === '..' || c === '.')) {
    throw aboutSourceParams(
      new InvalidArgumentError(`files: bad destination ${JSON.stringify(d)}`),
    );
  }
  return rel;
}

/**
 * Copy the `files` list (wic's IMAGE_BOOT_FILES syntax: blank-separated `src` or `src;dest`
 * entries; a glob's matches go into `dest` as a directory) from the rootfs into `dir`.
 */
function copyBootFiles(root: string, dir: string, list: string): void {
  for (const entry of list.split(/\s+/).filter(Boolean)) {
    const semi = entry.indexOf(';');
    const src = semi < 0 ? entry : entry.slice(0, semi);
    const dest = semi < 0 ? undefined : destPath(entry.slice(semi + 1));
    const matches = expand(root, src);
    if (matches.length === 0) {
      throw aboutSourceParams(new NotFoundError(`files: nothing in the rootfs matches ${src}`));
    }
    const isGlob = /[*?]/.test(src);
    for (const m of matches) {
      let from: string;
      try {
        from = regularFile(root, m);
      } catch (e) {
        throw e instanceof InvalidArgumentError || e instanceof NotFoundError
          ? aboutSourceParams(e)
          : e;
      }
      const name = path.basename(m);
      const to =
        dest === undefined || dest === ''
          ? name
          : isGlob || dest.endsWith('/')
            ? path.join(dest, name)
            : dest;
      const abs = path.join(dir, to);
      if (fs.existsSync(abs)) {
        throw aboutSourceParams(
          new InvalidArgumentError(`files: two boot files would share the name /${to}`),
        );
      }
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.copyFileSync(from, abs);
    }
  }
}

/**
 * Stage a U-Boot boot partition in `dir`: the newest kernel as /vmlinuz and its initrd as
 * /initrd.img (the names bootimg-efi uses), the `files` of `--sourceparams`, and
 * /extlinux/extlinux.conf, which U-Boot's distro boot finds on the bootable partition and
 * which boots the root partition by PARTUUID.
 */
export function stageBootPartition(
  root: string,
  dir: string,
  part: WksPart,
  rootDevice: string | undefined,
  boot: Wks['bootloader'],
): void {
  const k = findKernel(root);
  fs.copyFileSync(k.kernel, path.join(dir, 'vmlinuz'));
  if (k.initrd !== undefined) fs.copyFileSync(k.initrd, path.join(dir, 'initrd.img'));
  const files = part.sourceParams.files;
  if (files !== undefined) copyBootFiles(root, dir, files);
  const fdt = part.sourceParams.fdt;
  const fdtdir = part.sourceParams.fdtdir;
  for (const [key, p] of [
    ['fdt', fdt],
    ['fdtdir', fdtdir],
  ] as const) {
    if (p !== undefined && !fs.existsSync(path.join(dir, destPath(p)))) {
      throw aboutSourceParams(
        new NotFoundError(`${key}=${p} is not among the boot files`, {
          hint: 'copy it with --sourceparams "files=<path in the rootfs>;<name>"',
        }),
      );
    }
  }
  const append = [rootDevice ? `root=${rootDevice}` : '', 'rw', boot.append ?? '']
    .filter(Boolean)
    .join(' ');
  const lines = [
    '# Written by strata (--source bootimg-partition) for U-Boot distro boot.',
    'default strata',
    // extlinux counts in tenths of a second; without a prompt U-Boot boots the default.
    ...(boot.timeout ? [`timeout ${boot.timeout * 10}`] : []),
    '',
    'label strata',
    `    menu label Strata (${k.version})`,
    '    kernel /vmlinuz',
    ...(k.initrd !== undefined ? ['    initrd /initrd.img'] : []),
    ...(fdt !== undefined ? [`    fdt /${destPath(fdt)}`] : []),
    ...(fdtdir !== undefined ? [`    fdtdir /${destPath(fdtdir)}`] : []),
    `    append ${append}`,
    '',
  ];
  fs.mkdirSync(path.join(dir, 'extlinux'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'extlinux', 'extlinux.conf'), lines.join('\n'));
}
