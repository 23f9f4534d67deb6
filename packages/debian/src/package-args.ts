/**
 * Package arguments as apt reads them: `name`, `name:arch`, or a pattern.
 */
import type { DebianPackage } from '@strata/oci';

/** A REMOVE argument that apt reads as a pattern, not as one package name. */
export function isPattern(arg: string): boolean {
  return /[*?[\]~^$]/.test(arg);
}

/** `name` or `name:arch`, as apt takes them. */
export function splitArch(arg: string): { name: string; arch?: string } {
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
