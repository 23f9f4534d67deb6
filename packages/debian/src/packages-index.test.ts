import fc from 'fast-check';
import { parsePackagesIndex } from './packages-index';
import { compareDebianVersions } from './version';

test('parsePackagesIndex keeps the highest version per name and architecture', () => {
  const text = [
    'Package: curl\nVersion: 7.88.1-10+deb12u5\nArchitecture: amd64\n',
    'Package: curl\nVersion: 7.88.1-10+deb12u12\nArchitecture: amd64\n',
    'Package: curl\nVersion: 8.0-1\nArchitecture: arm64\n',
    'Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n',
    'Package: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\nDescription: x\n multi\n line\n',
  ].join('\n');
  const m = parsePackagesIndex(text);
  expect(Object.fromEntries(m)).toEqual({
    'curl:amd64': '7.88.1-10+deb12u12',
    'curl:arm64': '8.0-1',
    'tzdata:all': '2025b-0+deb12u1',
  });
});

// Found by fuzzing: `\s*` ran across the line end, so an empty field took the next field's name
// as its value (here: version "Package:").
test('an empty field never takes the next line as its value', () => {
  expect(parsePackagesIndex('Version: \nPackage: curl').size).toBe(0);
  expect(parsePackagesIndex('Package:\nVersion: 1.0\nArchitecture:\n').size).toBe(0);
  expect(
    Object.fromEntries(parsePackagesIndex('Package: curl\nArchitecture:\nVersion: 1.0')),
  ).toEqual({
    'curl:all': '1.0',
  });
});

/** The stanza-splitting parser this one replaced, kept as the reference it must agree with. */
function reference(text: string): Map<string, string> {
  const into = new Map<string, string>();
  for (const para of text.split(/\n\s*\n/)) {
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

test('agrees with splitting into stanzas and matching each, on lines made of field parts', () => {
  // Lines put together from the pieces that matter: field names, blanks of every kind, values.
  // (Carriage returns are left out: the reference's `^` also matches after one, which apt's
  // parser does not do, and nor does this one.)
  const piece = fc.constantFrom(
    'Package:',
    'Version:',
    'Architecture:',
    'Packages:',
    ' ',
    '\t',
    '\u00a0',
    '\v',
    'curl',
    '1.0',
    '2:1.0-1',
    'amd64',
    'all',
    '.',
  );
  const line = fc.array(piece, { maxLength: 4 }).map((p) => p.join(''));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 30 }), (lines) => {
      const text = lines.join('\n');
      expect(parsePackagesIndex(text)).toEqual(reference(text));
    }),
    { numRuns: 3000 },
  );
});
