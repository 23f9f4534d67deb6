/**
 * apt `Packages` indices: which versions a mirror offers.
 */
import { compareDebianVersions } from './version';

/** The highest version of every package in apt `Packages` index text, keyed `name:arch`. */
export function parsePackagesIndex(
  text: string,
  into = new Map<string, string>(),
): Map<string, string> {
  for (const para of text.split(/\n\s*\n/)) {
    // `[ \t]*`, not `\s*`: a field left empty must not take the next line as its value.
    const name = /^Package:[ \t]*(\S+)/m.exec(para)?.[1];
    const version = /^Version:[ \t]*(\S+)/m.exec(para)?.[1];
    const arch = /^Architecture:[ \t]*(\S+)/m.exec(para)?.[1] ?? 'all';
    if (!name || !version) continue;
    const key = `${name}:${arch}`;
    const have = into.get(key);
    if (have === undefined || compareDebianVersions(version, have) > 0) into.set(key, version);
  }
  return into;
}
