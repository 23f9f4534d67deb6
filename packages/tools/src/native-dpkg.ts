/**
 * The host's dpkg, set up to run inside a root of another architecture.
 *
 * In a foreign root every program runs under qemu-user, and dpkg's unpacking (reading each
 * .deb, decompressing it in dpkg-deb, writing and renaming every file, the database) is the part
 * of an apt step that gains the most from running natively: it does the same work for any
 * architecture. So the host's own dpkg and dpkg-deb are copied, with the host's dynamic loader and
 * the libraries they link, into a kit that a step mounts at NATIVE_DPKG_DIR; the binaries are
 * rewritten (patchelf) to load from there, so the kernel runs them natively inside the chroot.
 * There they see the root as it is: its /etc/dpkg configuration, /etc/passwd and database.
 * apt is pointed at a wrapper that hands `dpkg --unpack` to the native dpkg and every other
 * call, configuring included, to the root's own dpkg: maintainer scripts, and dependency checks
 * that must see the root's architecture as its native one, stay emulated.
 *
 * The kit is used only for roots whose dpkg is of the host's release series (kitRefusal), so
 * both write the same database: a root of another release is unpacked by its own dpkg under
 * emulation, as before.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { findOnPath, runTool } from './spawn';

/** Where a step sees the kit (a tmpfs under /run, so nothing of it reaches the layer). */
export const NATIVE_DPKG_DIR = '/run/strata/native';

/** A ready kit: `dir` is mounted read-only at NATIVE_DPKG_DIR; apt's dpkg is `wrapper`. */
export interface NativeDpkg {
  dir: string;
  /** The host dpkg's version: only a root with a dpkg of its series may use the kit. */
  version: string;
  /** Dir::Bin::dpkg for apt inside the root. */
  wrapper: string;
}

/** A dpkg version's release series: `1.21` of `1.21.22` (and of `1.21.22+b1`). */
export function dpkgSeries(version: string): string {
  return /^(?:\d+:)?(\d+\.\d+)(?:[.~+-]|$)/.exec(version)?.[1] ?? version;
}

/**
 * Why the kit must not unpack into a root whose dpkg has version `root` (undefined: it may). It
 * may when the root's dpkg is of the host's release series (1.21.x: a Debian stable release's
 * updates fix bugs and keep the database as it is); a root without dpkg has no apt steps to speed.
 */
export function kitRefusal(
  kit: Pick<NativeDpkg, 'version'>,
  root: string | undefined,
): string | undefined {
  if (root === undefined) return 'this root has no dpkg: unpacking under emulation';
  if (dpkgSeries(root) === dpkgSeries(kit.version)) return undefined;
  return `this root's dpkg ${root} is not of the host's dpkg ${kit.version} series: unpacking under emulation`;
}

/**
 * apt's dpkg inside the root. It announces itself once per step (the marker lives on the step's
 * /run tmpfs), so a build log shows which dpkg unpacked. Before each unpack it asks the root's
 * dpkg for its version: a step that upgrades dpkg to another release series (a dist-upgrade)
 * unpacks the rest with the root's new dpkg. `--force-architecture`: the host's dpkg takes the
 * root's architecture for a foreign one, which a root made by debootstrap does not list in
 * /var/lib/dpkg/arch.
 */
function wrapperScript(version: string): string {
  const series = dpkgSeries(version);
  return `#!/bin/sh
for a; do
  if [ "$a" = --unpack ]; then
    root=$(dpkg-query --showformat='\${Version}' --show dpkg 2>/dev/null)
    case "$root" in
      ${series}.*) ;;
      *)
        echo "strata: this root's dpkg is now $root: unpacking with it"
        exec dpkg "$@"
        ;;
    esac
    if [ ! -e /run/strata/.native-dpkg ] && touch /run/strata/.native-dpkg 2>/dev/null; then
      echo "strata: unpacking with the host's dpkg ${version} (native); configuring with this root's dpkg"
    fi
    PATH=${NATIVE_DPKG_DIR}/path:$PATH exec ${NATIVE_DPKG_DIR}/dpkg --force-architecture "$@"
  fi
done
exec dpkg "$@"
`;
}

/** The shared libraries `ldd` lists for `binaries` (name as linked → file on the host). */
export function parseLdd(text: string): Map<string, string> {
  const libs = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+) => (\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) libs.set(m[1], m[2]);
  }
  return libs;
}

/** The kit's name part: of the host binaries it copies and the wrapper it writes. */
async function digestOf(files: string[], wrapper: string): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) h.update(await fsp.readFile(f));
  h.update(wrapper);
  return h.digest('hex').slice(0, 16);
}

/** fsync every file under `dir`, then each directory, so that a renamed kit is whole. */
async function syncTree(dir: string): Promise<void> {
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await syncTree(p);
    else {
      const fh = await fsp.open(p, 'r');
      await fh.sync().finally(() => fh.close());
    }
  }
  const dh = await fsp.open(dir, 'r');
  await dh.sync().finally(() => dh.close());
}

/**
 * The kit for this host's dpkg, made once under `cacheDir` (keyed by the host binaries and the
 * wrapper, so an upgraded host dpkg, or another wrapper, makes a new one). Undefined where it
 * cannot be made: no dpkg, dpkg-deb or patchelf on the host. The kit's dpkg is run once through
 * its loader before it is kept.
 */
export async function nativeDpkg(cacheDir: string): Promise<NativeDpkg | undefined> {
  const dpkg = findOnPath('dpkg');
  const dpkgDeb = findOnPath('dpkg-deb');
  const patchelf = findOnPath('patchelf');
  if (dpkg === undefined || dpkgDeb === undefined || patchelf === undefined) return undefined;
  const version = (
    await runTool('dpkg-query', ['--showformat=${Version}', '--show', 'dpkg']).catch(() => '')
  ).trim();
  if (version === '') return undefined;
  const wrapper = wrapperScript(version);
  const dir = path.join(
    cacheDir,
    `dpkg-${version.replace(/[^A-Za-z0-9.+~-]/g, '_')}-${await digestOf([dpkg, dpkgDeb], wrapper)}`,
  );
  const kit = { dir, version, wrapper: `${NATIVE_DPKG_DIR}/dpkg-wrapper` };
  if (
    await fsp.stat(path.join(dir, 'dpkg-wrapper')).then(
      () => true,
      () => false,
    )
  )
    return kit;

  await fsp.mkdir(cacheDir, { recursive: true });
  // What a build killed while making a kit left: another build may be making one now.
  for (const name of await fsp.readdir(cacheDir)) {
    const p = path.join(cacheDir, name);
    if (name.startsWith('.tmp-') && (await fsp.stat(p)).mtimeMs < Date.now() - 3600_000)
      await fsp.rm(p, { recursive: true, force: true });
  }
  const tmp = await fsp.mkdtemp(path.join(cacheDir, '.tmp-'));
  try {
    await fsp.mkdir(path.join(tmp, 'lib'));
    await fsp.mkdir(path.join(tmp, 'path'));
    const loader = (await runTool(patchelf, ['--print-interpreter', dpkg])).trim();
    await fsp.copyFile(await fsp.realpath(loader), path.join(tmp, 'ld.so'));
    await fsp.chmod(path.join(tmp, 'ld.so'), 0o755);
    for (const [name, file] of parseLdd(await runTool('ldd', [dpkg, dpkgDeb])))
      await fsp.copyFile(await fsp.realpath(file), path.join(tmp, 'lib', name));
    const bins: Array<[string, string]> = [
      [dpkg, path.join(tmp, 'dpkg')],
      // dpkg runs dpkg-deb by name, from PATH: the wrapper puts this directory first.
      [dpkgDeb, path.join(tmp, 'path', 'dpkg-deb')],
    ];
    for (const [from, to] of bins) {
      await fsp.copyFile(from, to);
      await fsp.chmod(to, 0o755);
      // DT_RPATH rather than DT_RUNPATH: it also serves the libraries' own dependencies.
      await runTool(patchelf, [
        '--set-interpreter',
        `${NATIVE_DPKG_DIR}/ld.so`,
        '--force-rpath',
        '--set-rpath',
        `${NATIVE_DPKG_DIR}/lib`,
        to,
      ]);
    }
    await runTool(path.join(tmp, 'ld.so'), [
      '--library-path',
      path.join(tmp, 'lib'),
      path.join(tmp, 'dpkg'),
      '--version',
    ]);
    await fsp.writeFile(path.join(tmp, 'dpkg-wrapper'), wrapper, { mode: 0o755 });
    await syncTree(tmp);
    try {
      await fsp.rename(tmp, dir);
    } catch (e) {
      // Another build made the same kit first: use that one.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e;
      await fsp.rm(tmp, { recursive: true, force: true });
    }
    return kit;
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
