import { essentialAmong, parseDpkgStatus } from './dpkg-status';

const STATUS = `Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libbz2-1.0
Status: install ok installed
Architecture: amd64
Source: bzip2 (1.0.8-5)
Version: 1.0.8-5+b1

Package: unpacked-only
Status: install ok unpacked
Architecture: all
Version: 2.0

Package: half-conf
Status: install reinstreq half-configured
Architecture: amd64
Version: 3.0

Package: trig-pend
Status: install ok triggers-pending
Architecture: amd64
Version: 4.0

Package: trig-await
Status: install ok triggers-awaited
Architecture: amd64
Version: 5.0

Package: half-inst
Status: install reinstreq half-installed
Architecture: amd64
Version: 6.0

Package: never-here
Status: purge ok not-installed
Architecture: amd64
Version: 7.0
`;

test('dpkg status: installed packages with their source', () => {
  expect(parseDpkgStatus(STATUS).filter((p) => p.state === undefined)).toEqual([
    { name: 'base-files', version: '12.4+deb12u5', architecture: 'amd64', source: 'base-files' },
    {
      name: 'libbz2-1.0',
      version: '1.0.8-5+b1',
      architecture: 'amd64',
      source: 'bzip2',
      sourceVersion: '1.0.8-5',
    },
    { name: 'libc6', version: '2.36-9+deb12u4', architecture: 'amd64', source: 'glibc' },
  ]);
});

test('dpkg status: a package dpkg left part way has its files on disk, so it is listed with its state; config-files and not-installed are not', () => {
  const byName = new Map(parseDpkgStatus(STATUS).map((p) => [p.name, p]));
  expect(byName.get('unpacked-only')).toEqual({
    name: 'unpacked-only',
    version: '2.0',
    architecture: 'all',
    source: 'unpacked-only',
    state: 'unpacked',
  });
  expect(byName.get('half-conf')?.state).toBe('half-configured');
  expect(byName.get('trig-pend')?.state).toBe('triggers-pending');
  expect(byName.get('trig-await')?.state).toBe('triggers-awaited');
  expect(byName.get('half-inst')?.state).toBe('half-installed');
  expect(byName.get('libc6')?.state).toBeUndefined();
  expect(byName.has('removed-pkg')).toBe(false);
  expect(byName.has('never-here')).toBe(false);
});

const MARKED = `Package: e2fsprogs
Status: install ok installed
Protected: yes
Version: 1.47.0-2

Package: dash
Essential: yes
Status: install ok installed
Version: 0.5.12-2

Package: curl
Status: install ok installed
Version: 7.88.1-10

Package: logsave
Status: install ok installed
Important: yes
Version: 1.47.0-2

Package: bash
Essential: yes
Status: deinstall ok config-files
Version: 5.2.15-2
`;

test('essentialAmong finds Essential, Protected and Important installed packages, with the field', () => {
  expect(
    essentialAmong(MARKED, ['curl', 'e2fsprogs', 'dash:amd64', 'bash', 'da*', 'logsave']),
  ).toEqual([
    { name: 'e2fsprogs', field: 'Protected' },
    { name: 'dash:amd64', field: 'Essential' },
    { name: 'logsave', field: 'Important' },
  ]);
});

test('dpkg status: Built-Using and Static-Built-Using name the sources a package embeds, as name=version', () => {
  const [p] = parseDpkgStatus(`Package: fgetty
Status: install ok installed
Architecture: amd64
Version: 0.7-6
Built-Using: dietlibc (= 0.34~cvs20160606-14), gcc-12 (= 12.2.0-14)
Static-Built-Using: rustc (= 1.63.0+dfsg1-2),  not-exact (>= 1)
`);
  expect(p?.builtUsing).toEqual(['dietlibc=0.34~cvs20160606-14', 'gcc-12=12.2.0-14']);
  expect(p?.staticBuiltUsing).toEqual(['rustc=1.63.0+dfsg1-2']);
  expect(parseDpkgStatus(STATUS).some((x) => 'builtUsing' in x)).toBe(false);
});
