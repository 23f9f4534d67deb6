/**
 * apt `Packages` indices: which versions a mirror offers.
 */
import { compareDebianVersions } from './version';

/** The fields read, each the value up to its first blank, as `^Field:[ \t]*(\S+)` would take. */
const FIELDS = ['Package:', 'Version:', 'Architecture:'] as const;

/** What `\s` matches (ASCII first: a real index has nothing else). */
function isBlank(c: number): boolean {
  if (c < 0x80) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return /\s/.test(String.fromCharCode(c));
}

/**
 * The highest version of every package in apt `Packages` index text, keyed `name:arch`.
 *
 * A mirror's main index is some 50 MB, so this walks it line by line instead of splitting it
 * into stanzas and matching each: a stanza ends at a line of only blanks, and of each field the
 * first line that gives it a value counts.
 */
export function parsePackagesIndex(
  text: string,
  into = new Map<string, string>(),
): Map<string, string> {
  const values: Array<string | undefined> = [undefined, undefined, undefined];
  const flush = () => {
    const [name, version, arch = 'all'] = values;
    values.fill(undefined);
    if (!name || !version) return;
    const key = `${name}:${arch}`;
    const have = into.get(key);
    if (have === undefined || compareDebianVersions(version, have) > 0) into.set(key, version);
  };
  let pos = 0;
  while (pos <= text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    let first = pos;
    while (first < end && isBlank(text.charCodeAt(first))) first++;
    if (first === end) flush();
    else if (first === pos) {
      for (let f = 0; f < FIELDS.length; f++) {
        const field = FIELDS[f] as string;
        if (values[f] !== undefined || !text.startsWith(field, pos)) continue;
        let from = pos + field.length;
        while (from < end && (text[from] === ' ' || text[from] === '\t')) from++;
        let to = from;
        while (to < end && !isBlank(text.charCodeAt(to))) to++;
        if (to > from) values[f] = text.slice(from, to);
        break;
      }
    }
    pos = end + 1;
  }
  flush();
  return into;
}
