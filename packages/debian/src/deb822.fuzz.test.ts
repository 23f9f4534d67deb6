/**
 * Fuzzing of the readers of apt and dpkg files that come from outside (a mirror's Packages
 * index, the dpkg status file of a rootfs someone else built): parsePackagesIndex,
 * parseDpkgStatus, essentialAmong and parseDeb822 under them. Each must return (or throw a
 * StrataError) quickly, and what they return must be what the rest of Strata can store.
 */
import fc from 'fast-check';
import { DebianPackage, validateTemplateMetadata } from '@strata/oci';
import {
  FUZZ_TIMEOUT_MS,
  anyText,
  fuzzParams,
  mutatedText,
  parsesOrThrowsTyped,
} from '@strata/oci/testing';
import { parseDeb822 } from './deb822';
import { essentialAmong, parseDpkgStatus } from './dpkg-status';
import { parsePackagesIndex } from './packages-index';
import { compareDebianVersions } from './version';

/** Stanzas of a real bookworm dpkg status file (shortened). */
const STATUS = `Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u11
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Pre-Depends: awk
Conffiles:
 /etc/debian_version 8031d1483ffa9c819e6be94c6c77fd2a
 /etc/host.conf 4eb63731c9f5e30903ac4fc07a7fe3d6
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 .
 several important miscellaneous files.

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u14
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
Homepage: https://www.gnu.org/software/libc/libc.html

Package: libgcc-s1
Protected: yes
Status: install ok installed
Architecture: arm64
Source: gcc-12 (12.2.0-14+deb12u1)
Version: 12.2.0-14+deb12u1

Package: tzdata
Status: deinstall ok config-files
Architecture: all
Version: 2025b-0+deb12u2
`;

/** Stanzas of a bookworm Packages index (shortened). */
const PACKAGES = `Package: curl
Version: 7.88.1-10+deb12u12
Installed-Size: 500
Maintainer: Alessandro Ghedini <ghedo@debian.org>
Architecture: amd64
Depends: libc6 (>= 2.34), libcurl4 (= 7.88.1-10+deb12u12), zlib1g (>= 1:1.1.4)
Description: command line tool for transferring data with URL syntax
Multi-Arch: foreign
Homepage: https://curl.se/
Description-md5: 0d6a3e2ed8ee4d5e5ad8f3a1ac6a8c4a
Section: web
Priority: optional
Filename: pool/main/c/curl/curl_7.88.1-10+deb12u12_amd64.deb
Size: 315472
SHA256: 0f3f7a0f5b0a8f2d0c8f2b5c5b0d2e0e8f8b9d1e1f5a0d8c3e3b0a9f6a0b1c2d

Package: curl
Version: 7.88.1-10+deb12u5
Architecture: amd64
Filename: pool/main/c/curl/curl_7.88.1-10+deb12u5_amd64.deb

Package: tzdata
Version: 2025b-0+deb12u2
Architecture: all

Package: libc6
Version: 2.36-9+deb12u14
Architecture: arm64
Source: glibc
`;

const PIECES = [
  '\n',
  '\n\n',
  '\n \n',
  ' ',
  '\t',
  ':',
  ': ',
  'Package: ',
  'Version: ',
  'Architecture: ',
  'Status: install ok installed',
  'Source: ',
  ' (',
  ')',
  'Essential: yes',
  'Protected: yes',
  'Important: yes',
  '1:',
  '-',
  '~',
  '+',
  '\r\n',
];

const deb822Text = (valid: string) =>
  fc.oneof(
    { arbitrary: mutatedText(fc.constant(valid), PIECES), weight: 5 },
    {
      arbitrary: fc
        .array(
          fc.tuple(
            fc.constantFrom(
              'Package',
              'Version',
              'Architecture',
              'Status',
              'Source',
              'Essential',
              'X',
            ),
            fc.oneof(
              fc.constantFrom('curl', '1.0-1', 'install ok installed', 'all', 'yes', ''),
              anyText(12),
            ),
          ),
          { maxLength: 12 },
        )
        .map((fs) => fs.map(([k, v]) => `${k}: ${v}`).join('\n')),
      weight: 3,
    },
    { arbitrary: anyText(200), weight: 1 },
  );

/** Template metadata that lists `packages`, as a build writes it into the image config. */
function metadataWith(packages: DebianPackage[]): unknown {
  return {
    schemaVersion: 1,
    name: 'fuzz',
    created: '2024-01-01T00:00:00Z',
    features: [],
    architecture: 'amd64',
    distribution: {},
    packages,
    exclusions: [],
    layers: [],
  };
}

describe('apt and dpkg files under fuzzing', () => {
  test(
    'dpkg status: installed packages that a template can record, or a typed error',
    () => {
      let some = 0;
      fc.assert(
        fc.property(deb822Text(STATUS), fc.array(anyText(10), { maxLength: 3 }), (text, args) => {
          const r = parsesOrThrowsTyped(() => parseDpkgStatus(text));
          if (r.ok) {
            if (r.value.length > 0) some++;
            const v = validateTemplateMetadata(metadataWith(r.value));
            if (!v.ok) throw new Error(`a template could not record them: ${v.errors.join('; ')}`);
          }
          parsesOrThrowsTyped(() => essentialAmong(text, [...args, 'base-files', 'libgcc-s1']));
          const paras = parsesOrThrowsTyped(() => parseDeb822(text));
          if (paras.ok) {
            for (const p of paras.value) {
              expect(p.size).toBeGreaterThan(0);
              for (const k of p.keys()) expect(k).toMatch(/^[^:]+$/);
            }
          }
        }),
        fuzzParams('dpkg status'),
      );
      expect(some).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );

  test(
    'Packages index: each version is one a stanza of the package gives, or a typed error',
    () => {
      let some = 0;
      const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      fc.assert(
        fc.property(deb822Text(PACKAGES), (text) => {
          const r = parsesOrThrowsTyped(() => parsePackagesIndex(text));
          if (!r.ok) return;
          if (r.value.size > 0) some++;
          for (const [key, version] of r.value) {
            // Taken from the value of a Package and a Version field, never from another line.
            // (The key is name:arch; garbage may hold colons, so any colon may be the one.)
            const names = [...key.matchAll(/:/g)].map((m) => key.slice(0, m.index));
            expect(
              names.some((n) => new RegExp(`^Package:[ \t]*${esc(n)}(?:\\s|$)`, 'm').test(text)),
            ).toBe(true);
            expect(text).toMatch(new RegExp(`^Version:[ \t]*${esc(version)}(?:\\s|$)`, 'm'));
          }
        }),
        fuzzParams('Packages index'),
      );
      expect(some).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );

  const stanza = fc.record({
    name: fc.constantFrom('curl', 'libc6', 'tzdata', 'a+b.c-d'),
    version: fc
      .tuple(
        fc.constantFrom('', '1:', '2:'),
        fc.stringMatching(/^[0-9][0-9a-z.+~]{0,6}$/),
        fc.constantFrom('', '-1', '-1~bpo1', '-10+deb12u5'),
      )
      .map(([e, u, r]) => `${e}${u}${r}`),
    arch: fc.constantFrom(undefined, 'amd64', 'arm64', 'all'),
    extra: fc.constantFrom('', 'Description: a\n more\n .\n', 'Depends: b (>= 1:2)\n'),
  });

  test('Packages index: of well-formed stanzas, the highest version of each name:arch', () => {
    fc.assert(
      fc.property(fc.array(stanza, { maxLength: 8 }), (stanzas) => {
        const text = stanzas
          .map(
            (s) =>
              `Package: ${s.name}\n${s.extra}Version: ${s.version}\n` +
              `${s.arch ? `Architecture: ${s.arch}\n` : ''}`,
          )
          .join('\n');
        const want = new Map<string, string>();
        for (const s of stanzas) {
          const key = `${s.name}:${s.arch ?? 'all'}`;
          const have = want.get(key);
          if (have === undefined || compareDebianVersions(s.version, have) > 0) {
            want.set(key, s.version);
          }
        }
        expect(parsePackagesIndex(text)).toEqual(want);
      }),
      fuzzParams('Packages index (well-formed)', 500),
    );
  });
});
