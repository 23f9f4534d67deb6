import { Readable } from 'node:stream';
import {
  Annotations,
  ImageIndex,
  MediaTypes,
  TemplateMetadata,
  parsePlatform,
  requireManifest,
  sha256,
} from '@strata/oci';
import { linuxPlatform, ociPlatform } from '@strata/debian';
import { hostDebianArchitecture } from '@strata/tools';
import { Store, writeBundle, writeImage } from '@strata/store';
import { withTempStore } from '@strata/store/testing';
import { writePlatformIndex } from './image-writer';
import { lockPathFor } from './lockfile';
import { basePlatform, platformArgs } from './platform';

let store: Store;
withTempStore('platform', (t) => ({ store } = t));

const created = '2025-05-10T08:47:33Z';

/** A one-layer image of a Debian architecture, its config naming that architecture's platform. */
async function image(arch: string, name: string) {
  const blob = await store.putBlob(Readable.from([Buffer.from(`${arch} ${name}`)]));
  const metadata: TemplateMetadata = {
    schemaVersion: 1,
    name,
    created,
    features: [],
    architecture: arch,
    distribution: {},
    packages: [],
    exclusions: [],
    layers: [],
  };
  return writeImage(store, {
    metadata,
    layers: [
      {
        descriptor: { mediaType: MediaTypes.layerZstd, digest: blob.digest, size: blob.size },
        diffId: sha256(`tar of ${arch} ${name}`),
        history: { created, created_by: name },
      },
    ],
    platform: ociPlatform(arch),
    env: [],
    labels: {},
    annotations: { [Annotations.title]: name },
  });
}

test("a multi-platform index: each platform's images with their platform and role, found by selection", async () => {
  const amd = await image('amd64', 'app');
  const armRootfs = await image('arm64', 'app');
  const armBc = await image('arm64', 'tools');
  const armBundle = await writeBundle(store, {
    rootfs: { descriptor: armRootfs.descriptor },
    buildchroot: { descriptor: armBc.descriptor },
  });
  const d = await writePlatformIndex(store, [
    { descriptor: amd.descriptor, config: amd.config },
    { descriptor: armBundle, config: armRootfs.config },
  ]);
  expect(d.mediaType).toBe(MediaTypes.imageIndex);
  const index: ImageIndex = await store.readImageIndex(d);
  expect(
    index.manifests.map((m) => [m.digest, m.annotations?.[Annotations.role], m.platform]),
  ).toEqual([
    [amd.descriptor.digest, 'rootfs', { os: 'linux', architecture: 'amd64' }],
    [armRootfs.descriptor.digest, 'rootfs', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    [armBc.descriptor.digest, 'buildchroot', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
  ]);
  const arm64 = parsePlatform('linux/arm64');
  expect(requireManifest(index, { platform: arm64 }, 'x').digest).toBe(armRootfs.descriptor.digest);
  expect(requireManifest(index, { role: 'buildchroot', platform: arm64 }, 'x').digest).toBe(
    armBc.descriptor.digest,
  );
  // amd64 has no buildchroot: selection says so rather than take another platform's.
  expect(() =>
    requireManifest(index, { role: 'buildchroot', platform: parsePlatform('linux/amd64') }, 'x'),
  ).toThrow(/no buildchroot image for linux\/amd64/);
});

test("the platform of a base: the one asked for, else the host's of a multi-platform index only", () => {
  const entry = (architecture: string, variant?: string) => ({
    mediaType: MediaTypes.imageManifest,
    digest: sha256(architecture),
    size: 1,
    platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
  });
  const multi: ImageIndex = { schemaVersion: 2, manifests: [entry('amd64'), entry('arm64', 'v8')] };
  const single: ImageIndex = { schemaVersion: 2, manifests: [entry('arm64', 'v8')] };
  const arm = parsePlatform('linux/arm64');
  expect(basePlatform(multi, arm)).toBe(arm);
  expect(basePlatform(multi, undefined)).toEqual(linuxPlatform(hostDebianArchitecture()));
  // A one-platform bundle of another architecture is taken as it is (FROM an arm64 template).
  expect(basePlatform(single, undefined)).toBeUndefined();
});

test("docker's platform ARGs, and a lock per platform", () => {
  expect(platformArgs(parsePlatform('linux/arm/v7'), parsePlatform('linux/amd64'))).toEqual({
    TARGETPLATFORM: 'linux/arm/v7',
    TARGETOS: 'linux',
    TARGETARCH: 'arm',
    TARGETVARIANT: 'v7',
    BUILDPLATFORM: 'linux/amd64',
    BUILDOS: 'linux',
    BUILDARCH: 'amd64',
    BUILDVARIANT: '',
  });
  expect(platformArgs(parsePlatform('linux/amd64')).TARGETVARIANT).toBe('');
  // Without a platform asked for, the target is the host, as docker defaults it.
  expect(platformArgs(undefined, parsePlatform('linux/arm64'))).toMatchObject({
    TARGETPLATFORM: 'linux/arm64',
    TARGETARCH: 'arm64',
    TARGETVARIANT: '',
    BUILDARCH: 'arm64',
  });
  expect(lockPathFor('/x/Stratafile')).toBe('/x/Stratafile.lock');
  expect(lockPathFor('/x/Stratafile', 'arm64')).toBe('/x/Stratafile.arm64.lock');
});
