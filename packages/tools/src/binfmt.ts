/**
 * Running programs of another architecture on this host: qemu-user, started by the kernel
 * through binfmt_misc. Whether that can work (binfmt_misc mounted and enabled, a handler for the
 * architecture registered and enabled, with the F flag so that it also works inside a chroot) is
 * read from /proc here, so that a build fails before a step starts, with the fix, rather than
 * with the kernel's bare "Exec format error" from deep inside a chroot.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { StrataError } from '@strata/oci';
import { findOnPath } from './spawn';

/** Where binfmt_misc is mounted on Linux. */
export const BINFMT_MISC = '/proc/sys/fs/binfmt_misc';

/** The qemu-user name (and so the binfmt handler `qemu-<name>`) of each Debian architecture. */
const QEMU_NAMES: Readonly<Record<string, string>> = {
  amd64: 'x86_64',
  arm64: 'aarch64',
  armhf: 'arm',
  armel: 'arm',
  i386: 'i386',
  ppc64el: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  mips64el: 'mips64el',
  mipsel: 'mipsel',
  loong64: 'loongarch64',
};

/** Node's `process.arch` as a Debian architecture. */
const NODE_ARCHES: Readonly<Record<string, string>> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'armhf',
  ia32: 'i386',
  ppc64: 'ppc64el',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
};

/**
 * Architectures a host CPU may run without emulation, besides its own: amd64 kernels run i386
 * binaries, and many arm64 CPUs run 32-bit arm ones. Debian's qemu-user-static registers no
 * handler for these on such hosts, so a missing handler is no error for them.
 */
const COMPANIONS: Readonly<Record<string, readonly string[]>> = {
  amd64: ['i386'],
  arm64: ['armhf', 'armel'],
};

/** The Debian architecture of the machine Strata runs on (of Node's `process.arch`). */
export function hostDebianArchitecture(nodeArch: string = process.arch): string {
  return NODE_ARCHES[nodeArch] ?? nodeArch;
}

/** The qemu-user name for a Debian architecture (`arm64` → `aarch64`), if qemu has one. */
export function qemuName(debArch: string): string | undefined {
  return QEMU_NAMES[debArch];
}

/** The binfmt handler that runs `debArch` binaries: `qemu-aarch64` for arm64. */
export function binfmtHandler(debArch: string): string | undefined {
  const q = qemuName(debArch);
  return q === undefined ? undefined : `qemu-${q}`;
}

/** What a binfmt_misc handler file says. */
export interface BinfmtEntry {
  enabled: boolean;
  interpreter?: string;
  flags: string;
}

/** Parse a handler file of binfmt_misc (`enabled`, `interpreter …`, `flags: PF`, …). */
export function parseBinfmtEntry(text: string): BinfmtEntry {
  const lines = text.split('\n').map((l) => l.trim());
  const interpreter = lines.find((l) => l.startsWith('interpreter '))?.slice(12);
  const flags =
    lines
      .find((l) => l.startsWith('flags:'))
      ?.slice(6)
      .trim() ?? '';
  return { enabled: lines[0] === 'enabled', flags, ...(interpreter ? { interpreter } : {}) };
}

const FIX =
  'install qemu-user-static and binfmt-support (apt-get install qemu-user-static binfmt-support), or run `bash scripts/setup.sh`';

/** This host cannot run programs of a Debian architecture: a step of it would not start. */
export class EmulatorMissingError extends StrataError {
  constructor(
    /** The Debian architecture, e.g. `arm64`. */
    readonly architecture: string,
    message: string,
    hint: string,
  ) {
    super('UNAVAILABLE', message, { hint });
  }
}

export interface EmulationOptions {
  /** Where binfmt_misc is mounted; default /proc/sys/fs/binfmt_misc. */
  binfmtDir?: string;
  /** The host's Debian architecture; default this machine's. */
  host?: string;
}

async function readOr(file: string): Promise<string | undefined> {
  return fsp.readFile(file, 'utf8').catch(() => undefined);
}

/**
 * How this host runs programs of `debArch`: natively, or through the binfmt_misc handler it
 * names. Throws EmulatorMissingError, naming the architecture and the fix, when neither works:
 * binfmt_misc not mounted or disabled, no handler for the architecture, a disabled handler, or
 * one without the F flag (its interpreter would be looked up inside the step's chroot).
 */
export async function requireEmulation(
  debArch: string,
  o: EmulationOptions = {},
): Promise<{ native: true } | { native: false; handler: string }> {
  const host = o.host ?? hostDebianArchitecture();
  if (debArch === host) return { native: true };
  const dir = o.binfmtDir ?? BINFMT_MISC;
  const handler = binfmtHandler(debArch);
  if (handler === undefined)
    throw new EmulatorMissingError(
      debArch,
      `this ${host} host cannot run ${debArch} programs: qemu-user has no emulator for ${debArch}`,
      'build it on a host of that architecture',
    );
  const companion = COMPANIONS[host]?.includes(debArch) ?? false;
  const status = await readOr(path.join(dir, 'status'));
  if (status === undefined) {
    if (companion) return { native: true };
    throw new EmulatorMissingError(
      debArch,
      `this ${host} host cannot run ${debArch} programs: binfmt_misc is not mounted at ${dir}, so the kernel cannot hand them to qemu-${qemuName(debArch)}`,
      `mount it (mount -t binfmt_misc binfmt_misc ${dir}), then ${FIX}`,
    );
  }
  if (status.trim() !== 'enabled') {
    if (companion) return { native: true };
    throw new EmulatorMissingError(
      debArch,
      `this ${host} host cannot run ${debArch} programs: binfmt_misc is disabled (${path.join(dir, 'status')})`,
      `enable it (echo 1 > ${path.join(dir, 'status')}), or ${FIX}`,
    );
  }
  const file = path.join(dir, handler);
  const text = await readOr(file);
  if (text === undefined) {
    if (companion) return { native: true };
    throw new EmulatorMissingError(
      debArch,
      `this ${host} host cannot run ${debArch} programs: no binfmt_misc handler ${handler} is registered`,
      FIX,
    );
  }
  const entry = parseBinfmtEntry(text);
  if (!entry.enabled) {
    if (companion) return { native: true };
    throw new EmulatorMissingError(
      debArch,
      `this ${host} host cannot run ${debArch} programs: the binfmt_misc handler ${handler} is disabled`,
      `enable it (echo 1 > ${file}, or update-binfmts --enable ${handler}), or ${FIX}`,
    );
  }
  if (!entry.flags.includes('F'))
    throw new EmulatorMissingError(
      debArch,
      `the binfmt_misc handler ${handler} for ${debArch} lacks the F flag: inside a build chroot the kernel would look for ${entry.interpreter ?? 'its interpreter'} in the template and fail`,
      `install qemu-user-static, whose handlers are registered with F (apt-get install qemu-user-static binfmt-support), or run \`bash scripts/setup.sh\``,
    );
  return { native: false, handler };
}

/**
 * What mmdebstrap needs to bootstrap `debArch` on this host: the emulator (see
 * requireEmulation), and arch-test, which it runs to find out whether the emulator works.
 */
export async function requireBootstrapEmulation(
  debArch: string,
  o: EmulationOptions & { path?: string } = {},
): Promise<void> {
  const how = await requireEmulation(debArch, o);
  if (how.native) return;
  if (findOnPath('arch-test', o.path) !== undefined) return;
  throw new EmulatorMissingError(
    debArch,
    `mmdebstrap cannot bootstrap ${debArch} here: arch-test, which it runs to check the emulator, is not installed`,
    'apt-get install arch-test, or run `bash scripts/setup.sh`',
  );
}
