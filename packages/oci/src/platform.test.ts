import {
  Annotations,
  Descriptor,
  ImageIndex,
  InvalidArgumentError,
  MediaTypes,
  NotFoundError,
  formatPlatform,
  parsePlatform,
  parsePlatforms,
  platformsOf,
  requireManifest,
  sha256,
} from './index';

function img(role: string, platform: Descriptor['platform']): Descriptor {
  const data = Buffer.from(`${role}-${platform?.architecture}-${platform?.variant}`);
  return {
    mediaType: MediaTypes.imageManifest,
    digest: sha256(data),
    size: data.length,
    annotations: { [Annotations.role]: role },
    ...(platform ? { platform } : {}),
  };
}

const amd64 = { os: 'linux', architecture: 'amd64' };
const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

test("platforms in docker's os/arch[/variant] syntax", () => {
  expect(parsePlatform('linux/arm64')).toEqual({ os: 'linux', architecture: 'arm64' });
  expect(parsePlatform('linux/arm/v7')).toEqual({
    os: 'linux',
    architecture: 'arm',
    variant: 'v7',
  });
  expect(parsePlatform(' Linux/AMD64 ')).toEqual({ os: 'linux', architecture: 'amd64' });
  for (const bad of ['linux', 'linux/', 'linux/arm/v7/x', '/amd64', 'linux/a b']) {
    expect(() => parsePlatform(bad)).toThrow(InvalidArgumentError);
  }
  expect(parsePlatforms('linux/amd64,linux/arm64,linux/amd64').map(formatPlatform)).toEqual([
    'linux/amd64',
    'linux/arm64',
  ]);
  expect(() => parsePlatforms(',')).toThrow(InvalidArgumentError);
  expect(formatPlatform(arm64)).toBe('linux/arm64/v8');
});

test("every spelling of a platform is docker's one", () => {
  const same: Array<[string, string]> = [
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['arm64', 'linux/arm64'],
    ['aarch64', 'linux/arm64'],
    ['linux/x86_64', 'linux/amd64'],
    ['x86-64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armv7l', 'linux/arm/v7'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['linux/arm/6', 'linux/arm/v6'],
    ['linux/armel', 'linux/arm/v5'],
    ['linux/i386', 'linux/386'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
  ];
  for (const [text, want] of same)
    expect([text, formatPlatform(parsePlatform(text))]).toEqual([text, want]);
  // Deduped after normalising: one platform spelled twice is built once.
  expect(parsePlatforms('linux/arm64,linux/arm64/v8,linux/aarch64').map(formatPlatform)).toEqual([
    'linux/arm64',
  ]);
  // linux/aarch64 selects the arm64/v8 image of an index.
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [img('rootfs', amd64), img('rootfs', arm64)],
  };
  expect(requireManifest(index, { platform: parsePlatform('linux/aarch64') }, 'T')).toBe(
    index.manifests[1],
  );
  expect(requireManifest(index, { platform: parsePlatform('x86_64') }, 'T')).toBe(
    index.manifests[0],
  );
  // An image's own platform is read as docker spells it too: `arm` without a variant is arm/v7.
  const armNoVariant: ImageIndex = {
    schemaVersion: 2,
    manifests: [img('rootfs', { os: 'linux', architecture: 'arm' })],
  };
  expect(requireManifest(armNoVariant, { platform: parsePlatform('linux/armhf') }, 'T')).toBe(
    armNoVariant.manifests[0],
  );
});

test('a multi-platform index: its platforms, selection by platform and role, and the error that lists them', () => {
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      img('rootfs', amd64),
      img('buildchroot', amd64),
      img('rootfs', arm64),
      img('buildchroot', arm64),
    ],
  };
  expect(platformsOf(index).map(formatPlatform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
  const sel = (p: string, role: 'rootfs' | 'buildchroot' = 'rootfs') =>
    requireManifest(index, { role, platform: parsePlatform(p) }, 'T');
  expect(sel('linux/arm64')).toBe(index.manifests[2]);
  expect(sel('linux/arm64/v8', 'buildchroot')).toBe(index.manifests[3]);
  expect(sel('linux/amd64', 'buildchroot')).toBe(index.manifests[1]);
  expect(() => sel('linux/arm64/v7')).toThrow(NotFoundError);
  expect(() => sel('linux/arm/v7')).toThrow(
    'T has no image for linux/arm/v7 (its platforms: linux/amd64, linux/arm64/v8)',
  );
  // Asked for no platform, two rootfs images: it cannot tell, and says how to choose.
  expect(() => requireManifest(index, {}, 'T')).toThrow(InvalidArgumentError);
});
