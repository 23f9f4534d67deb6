import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { DebianPackage } from '@strata/oci';
import { parseDeb822 } from '@strata/template';

const MARKERS = ['Essential', 'Protected', 'Important'] as const;
type Marker = (typeof MARKERS)[number];

/** A REMOVE argument that apt reads as a pattern, not as one package name. */
function isPattern(arg: string): boolean {
  return /[*?[\]~^$]/.test(arg);
}

/** `name` or `name:arch`, as apt takes them. */
function splitArch(arg: string): { name: string; arch?: string } {
  const i = arg.indexOf(':');
  return i < 0 ? { name: arg } : { name: arg.slice(0, i), arch: arg.slice(i + 1) };
}

/**
 * The REMOVE arguments that name no installed package. apt would accept them and remove nothing,
 * and the step would add an empty layer. Patterns are left to apt.
 */
export function notInstalled(
  installed: readonly DebianPackage[],
  args: readonly string[],
): string[] {
  return args.filter((arg) => {
    if (isPattern(arg)) return false;
    const { name, arch } = splitArch(arg);
    return !installed.some(
      (p) => p.name === name && (arch === undefined || p.architecture === arch),
    );
  });
}

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

/** The dpkg status file of an overlay stack, from its lower dirs (topmost first). */
export async function statusOfLowers(lower: readonly string[]): Promise<string | undefined> {
  for (const dir of lower) {
    try {
      return await fsp.readFile(path.join(dir, 'var/lib/dpkg/status'), 'utf8');
    } catch {
      // not in this layer: look further down
    }
  }
  return undefined;
}
