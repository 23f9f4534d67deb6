/**
 * dpkg's status file: what is installed, and which packages dpkg marks as not to be removed.
 */
import type { DebianPackage } from '@strata/oci';
import { parseDeb822 } from './deb822';
import { isPattern, splitArch } from './package-args';

/**
 * dpkg states in which a package's files are not on disk as the package: `not-installed`, and
 * `config-files`, a removed package of which only its conffiles remain (dpkg -l's `rc`; listing
 * it would make a REMOVE without purge look as if it removed nothing).
 */
const ABSENT = new Set(['not-installed', 'config-files']);

/**
 * The packages of a dpkg status file whose files are on disk, sorted by name then architecture:
 * installed ones, and those that dpkg left part way (unpacked, half-configured, awaiting or
 * pending triggers, half-installed), which ship all the same; these carry their state.
 */
export function parseDpkgStatus(text: string): DebianPackage[] {
  const pkgs: DebianPackage[] = [];
  for (const p of parseDeb822(text)) {
    const name = p.get('package');
    const state = p.get('status')?.split(/\s+/)[2];
    const version = p.get('version');
    if (!name || !version || state === undefined || ABSENT.has(state)) continue;
    const pkg: DebianPackage = {
      name,
      version,
      architecture: p.get('architecture') ?? 'all',
      source: name,
      ...(state !== 'installed' ? { state } : {}),
    };
    for (const [field, key] of [
      ['built-using', 'builtUsing'],
      ['static-built-using', 'staticBuiltUsing'],
    ] as const) {
      const used = builtUsing(p.get(field));
      if (used.length > 0) pkg[key] = used;
    }
    const src = p.get('source');
    if (src) {
      const m = /^(\S+)(?:\s+\(([^)]+)\))?/.exec(src);
      if (m) {
        pkg.source = m[1] as string;
        if (m[2] !== undefined && m[2] !== version) pkg.sourceVersion = m[2];
      }
    }
    pkgs.push(pkg);
  }
  return pkgs.sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : a.architecture < b.architecture ? -1 : 1,
  );
}

/**
 * A `Built-Using` field (`gcc-12 (= 12.2.0-14), dietlibc (= 0.34-1)`, Policy 7.8: each an exact
 * source version) as `name=version`, in its order; an item without an exact version is not a
 * source that can be fetched, and is left out.
 */
function builtUsing(field: string | undefined): string[] {
  if (field === undefined) return [];
  const out: string[] = [];
  for (const item of field.split(',')) {
    const m = /^\s*([a-z0-9][a-z0-9+.-]*)\s*\(\s*=\s*([^()\s]+)\s*\)\s*$/i.exec(item);
    if (m && !out.includes(`${m[1]}=${m[2]}`)) out.push(`${m[1]}=${m[2]}`);
  }
  return out;
}

const MARKERS = ['Essential', 'Protected', 'Important'] as const;
type Marker = (typeof MARKERS)[number];

/**
 * The REMOVE arguments that dpkg marks Essential, Protected or Important (Protected's other name;
 * bookworm's e2fsprogs has it) in `statusText` (a dpkg status file), each with the field that
 * marks it. apt refuses to remove them with -y: the system is not meant to run without them.
 */
export function essentialAmong(
  statusText: string,
  args: readonly string[],
): Array<{ name: string; field: Marker }> {
  const marked = new Map<string, Marker>();
  for (const p of parseDeb822(statusText)) {
    const name = p.get('package');
    if (!name || p.get('status')?.split(/\s+/)[2] !== 'installed') continue;
    const field = MARKERS.find((m) => p.get(m.toLowerCase()) === 'yes');
    if (field) marked.set(name, field);
  }
  const out: Array<{ name: string; field: Marker }> = [];
  for (const arg of args) {
    const field = isPattern(arg) ? undefined : marked.get(splitArch(arg).name);
    if (field) out.push({ name: arg, field });
  }
  return out;
}
