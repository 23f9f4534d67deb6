import type { DebianPackage } from '@strata/oci';
import {
  debianArchitecture,
  debianArchitectureOf,
  linuxPlatform,
  ociPlatform,
} from './architecture';

const pkg = (name: string, architecture: string): DebianPackage => ({
  name,
  version: '1.0',
  architecture,
  source: name,
});

test("a rootfs's architecture: dpkg's own, else dpkg's package's, else the most common", () => {
  const mixed = [pkg('a', 'all'), pkg('b', 'armhf'), pkg('c', 'arm64'), pkg('d', 'arm64')];
  expect(debianArchitecture(mixed, 'riscv64')).toBe('riscv64');
  expect(debianArchitecture([...mixed, pkg('dpkg', 'armhf')])).toBe('armhf');
  expect(debianArchitecture([...mixed, pkg('dpkg', 'all')])).toBe('arm64');
  expect(debianArchitecture([pkg('tzdata', 'all')])).toBeUndefined();
  expect(debianArchitecture([])).toBeUndefined();
});

test('OCI platforms of Debian architectures', () => {
  expect(ociPlatform('armhf')).toEqual({ architecture: 'arm', variant: 'v7' });
  expect(ociPlatform('amd64')).toEqual({ architecture: 'amd64' });
  expect(ociPlatform('arm64')).toEqual({ architecture: 'arm64', variant: 'v8' });
  expect(ociPlatform('i386')).toEqual({ architecture: '386' });
  expect(ociPlatform('ppc64el')).toEqual({ architecture: 'ppc64le' });
  expect(ociPlatform('riscv64')).toEqual({ architecture: 'riscv64' });
});

test('Debian architectures of OCI platforms, and back', () => {
  for (const arch of ['amd64', 'arm64', 'armhf', 'armel', 'i386', 'ppc64el', 'riscv64']) {
    expect(debianArchitectureOf(ociPlatform(arch))).toBe(arch);
  }
  // docker's linux/arm means arm/v7
  expect(debianArchitectureOf({ architecture: 'arm' })).toBe('armhf');
  expect(debianArchitectureOf({ architecture: 'arm64' })).toBe('arm64');
  expect(linuxPlatform('arm64')).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
});
