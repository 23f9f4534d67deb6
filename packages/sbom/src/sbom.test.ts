import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { PackageURL } from 'packageurl-js';
import { Digest, ImageConfig, sha256 } from '@strata/oci';
import { TarSpec as Entry, tarOf } from '@strata/layer/testing';
import { Inventory, debPurl, filesChecksum, inventory, reportLicences } from './inventory';
import { packageLicense, spdxIdOf, unifyLicenseRefs } from './licenses';
import { readRootfsFiles, TarSource } from './rootfs';
import { toSpdx } from './spdx';
import { renderSbom, validateSbom } from './index';
import { SPDX_SCHEMA } from './validate';

/** A layer whose tar streams in small chunks, so that entries straddle them. */
function layer(entries: Entry[]): TarSource & { digest: Digest; diffId: Digest } {
  const tar = tarOf(entries);
  return {
    digest: sha256(Buffer.concat([Buffer.from('blob'), tar])),
    diffId: sha256(tar),
    openTar: async () => {
      const chunks: Buffer[] = [];
      for (let i = 0; i < tar.length; i += 300) chunks.push(tar.subarray(i, i + 300));
      return Readable.from(chunks);
    },
  };
}

const DEP5 = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: lib/*
Copyright: 2021 Other
License: Expat

Files: contrib/*
Copyright: 2021 Third
License: GPL-2+ or Artistic, and BSD-3-clause

Files: weird/*
Copyright: 2022 Fourth
License: GPL-2+ with OpenSSL exception

License: Artistic
 This program is free software; you can redistribute it under the terms of
 the Artistic License.
`;

/** Both documents of `i` pass their formats' schemas. */
async function expectValidSboms(i: Inventory): Promise<void> {
  expect(await validateSbom('spdx', renderSbom(i, 'spdx'))).toEqual([]);
  expect(await validateSbom('cyclonedx', renderSbom(i, 'cyclonedx'))).toEqual([]);
}

describe('licences', () => {
  test('Debian short names map to SPDX ids: the GNU family by version and +, Expat as MIT; others as they are on the SPDX list', () => {
    expect(spdxIdOf('GPL-2+')).toBe('GPL-2.0-or-later');
    expect(spdxIdOf('GPL-2')).toBe('GPL-2.0-only');
    expect(spdxIdOf('LGPL-2.1+')).toBe('LGPL-2.1-or-later');
    expect(spdxIdOf('LGPL-2')).toBe('LGPL-2.0-only');
    expect(spdxIdOf('AGPL-3+')).toBe('AGPL-3.0-or-later');
    expect(spdxIdOf('GFDL-1.3+')).toBe('GFDL-1.3-or-later');
    expect(spdxIdOf('Expat')).toBe('MIT');
    expect(spdxIdOf('BSD-3-clause')).toBe('BSD-3-Clause');
    expect(spdxIdOf('zlib')).toBe('Zlib');
    expect(spdxIdOf('Apache-2.0')).toBe('Apache-2.0');
    // Not on the SPDX list: no near match is made up.
    expect(spdxIdOf('Artistic')).toBeUndefined();
    expect(spdxIdOf('GPL-7+')).toBeUndefined();
  });

  test('a DEP-5 file gives the AND of its Files licences; names without an SPDX id become LicenseRefs carrying their text', () => {
    const l = packageLicense('demo', DEP5);
    expect(l.kind).toBe('dep5');
    expect(l.expression).toBe(
      'GPL-2.0-or-later AND MIT AND ((GPL-2.0-or-later OR LicenseRef-Artistic) AND BSD-3-Clause) AND LicenseRef-GPL-2plus-with-OpenSSL-exception',
    );
    expect(l.extracted).toEqual([
      {
        id: 'LicenseRef-Artistic',
        name: 'Artistic',
        text: 'This program is free software; you can redistribute it under the terms of\nthe Artistic License.',
      },
      {
        id: 'LicenseRef-GPL-2plus-with-OpenSSL-exception',
        name: 'GPL-2+ with OpenSSL exception',
        text: "GPL-2+ with OpenSSL exception (the licence as demo's copyright file names it)",
        placeholder: true,
      },
    ]);
  });

  test('a file that is not machine-readable is one LicenseRef with its summary; no file is none', () => {
    const text = `This is the Debian prepackaged version of demo.\n\nCopyright (C) 1999 Someone.\n\nSee /usr/share/common-licenses/GPL-2.\n${'x'.repeat(2000)}\n`;
    const l = packageLicense('lib+demo', text);
    expect(l.kind).toBe('text');
    expect(l.expression).toBe('LicenseRef-libplusdemo-copyright');
    expect(l.extracted[0]?.text).toBe(
      'This is the Debian prepackaged version of demo.\n\nCopyright (C) 1999 Someone.\n\nSee /usr/share/common-licenses/GPL-2.\n[…]',
    );
    expect(packageLicense('demo', undefined)).toEqual({ kind: 'none', extracted: [] });
  });
});

describe('package facts', () => {
  test('the purl percent-encodes the version as the purl spec says, and a purl parser reads it back', () => {
    const p = { name: 'curl', version: '7.88.1-10+deb12u5', architecture: 'amd64', source: 'curl' };
    const purl = debPurl(p, { id: 'debian', versionId: '12' });
    expect(purl).toBe('pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64&distro=debian-12');
    const back = PackageURL.fromString(purl);
    expect([back.type, back.namespace, back.name, back.version]).toEqual([
      'deb',
      'debian',
      'curl',
      '7.88.1-10+deb12u5',
    ]);
    const epoch = debPurl(
      { name: 'libstdc++6', version: '1:2.3', architecture: 'arm64', source: 'gcc' },
      { id: 'debian', versionCodename: 'trixie' },
    );
    expect(epoch).toBe('pkg:deb/debian/libstdc%2B%2B6@1%3A2.3?arch=arm64&distro=debian-trixie');
    expect(PackageURL.fromString(epoch).version).toBe('1:2.3');
  });

  test("the files checksum is sha256 of dpkg's md5sums lines sorted by path, whatever order they were written in", () => {
    const a =
      'd41d8cd98f00b204e9800998ecf8427e  usr/bin/b\n0cc175b9c0f1b6a831c399e269772661  usr/bin/a\n';
    const b =
      '0cc175b9c0f1b6a831c399e269772661  usr/bin/a\nd41d8cd98f00b204e9800998ecf8427e  usr/bin/b\n';
    const want = createHash('sha256').update(b).digest('hex');
    expect(filesChecksum(a)).toEqual({ sha256: want, files: 2 });
    expect(filesChecksum(b).sha256).toBe(want);
    expect(filesChecksum(b.replace('0cc1', '0cc2')).sha256).not.toBe(want);
  });
});

const STATUS = (pkgs: Array<[string, string, string?]>) =>
  pkgs
    .map(
      ([n, v, src]) =>
        `Package: ${n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${v}\n${src ? `Source: ${src}\n` : ''}`,
    )
    .join('\n');

describe('reading a layer stack', () => {
  const base = layer([
    { path: 'etc/' },
    { path: 'etc/os-release', link: '../usr/lib/os-release' },
    { path: 'usr/lib/os-release', body: 'ID=debian\nVERSION_ID="12"\n' },
    {
      path: 'var/lib/dpkg/status',
      body: STATUS([
        ['hello', '1.0'],
        ['gone', '2.0'],
      ]),
    },
    {
      path: 'var/lib/dpkg/info/hello.md5sums',
      body: '0cc175b9c0f1b6a831c399e269772661  usr/bin/hello\n',
    },
    {
      path: 'var/lib/dpkg/info/gone.md5sums',
      body: '0cc175b9c0f1b6a831c399e269772661  usr/bin/gone\n',
    },
    { path: 'usr/share/doc/hello/copyright', body: DEP5 },
    { path: 'usr/share/doc/gone/copyright', body: 'old\n' },
    { path: 'usr/share/doc/opaque/copyright', body: 'old\n' },
  ]);
  const top = layer([
    {
      path: 'var/lib/dpkg/status',
      body: STATUS([
        ['hello', '1.0'],
        ['libhello1', '1.1', 'hello (1.0)'],
      ]),
    },
    { path: 'var/lib/dpkg/info/.wh.gone.md5sums' },
    { path: 'usr/share/doc/.wh.gone' },
    { path: 'usr/share/doc/opaque/.wh..wh..opq' },
    {
      path: 'var/lib/dpkg/info/libhello1:amd64.md5sums',
      body: 'd41d8cd98f00b204e9800998ecf8427e  usr/lib/libhello.so.1\n',
    },
    // Debian lets a package's doc directory be a symlink to another package's of one source.
    { path: 'usr/share/doc/libhello1', link: 'hello' },
  ]);

  test('whiteouts and opaque directories hide what lower layers left; symlinks resolve', async () => {
    const files = await readRootfsFiles([base, top]);
    expect(files.get('var/lib/dpkg/info/gone.md5sums')).toBeUndefined();
    expect(files.get('usr/share/doc/gone/copyright')).toBeUndefined();
    expect(files.get('usr/share/doc/opaque/copyright')).toBeUndefined();
    expect(files.get('var/lib/dpkg/status')?.layer).toBe(1);
    expect(files.resolve('usr/share/doc/libhello1/copyright')?.data?.toString()).toBe(DEP5);
    expect(files.resolve('etc/os-release')?.data?.toString()).toContain('ID=debian');
  });

  test('with views, a stack read again reads only the layers above the longest prefix kept, with the same result', async () => {
    const kept = new Map<string, Buffer>();
    const views = {
      read: async (t: Digest, key: string) => kept.get(`${t}-${key}`),
      write: async (t: Digest, key: string, data: Buffer) => void kept.set(`${t}-${key}`, data),
    };
    const opened: string[] = [];
    const counted = (l: ReturnType<typeof layer>, name: string) => ({
      descriptor: {
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: l.digest,
        size: 1,
      },
      openTar: () => {
        opened.push(name);
        return l.openTar();
      },
    });
    const other = layer([{ path: 'var/lib/dpkg/status', body: STATUS([['other', '3']]) }]);
    const plain = [...(await readRootfsFiles([base, top])).entries()];
    expect([
      ...(await readRootfsFiles([counted(base, 'base'), counted(top, 'top')], views)).entries(),
    ]).toEqual(plain);
    expect(opened).toEqual(['base', 'top']);
    expect(kept.size).toBe(2); // after the first layer, and after the last
    opened.length = 0;
    expect([
      ...(await readRootfsFiles([counted(base, 'base'), counted(top, 'top')], views)).entries(),
    ]).toEqual(plain);
    expect(opened).toEqual([]);
    // Another stack on the same base reads only its own layer.
    const onBase = [counted(base, 'base'), counted(other, 'other')];
    const fresh = [...(await readRootfsFiles([base, other])).entries()];
    expect([...(await readRootfsFiles(onBase, views)).entries()]).toEqual(fresh);
    expect(opened).toEqual(['other']);
    // A damaged view, or one of another depth, is read again from the layers.
    for (const k of kept.keys()) kept.set(k, Buffer.from('{"v":1,"layers":'));
    opened.length = 0;
    expect([...(await readRootfsFiles(onBase, views)).entries()]).toEqual(fresh);
    expect(opened).toEqual(['base', 'other']);
  });

  async function inv(opts: { allLayers?: boolean } = {}) {
    const files = await readRootfsFiles([base, top]);
    const config: ImageConfig = {
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-02T03:04:05Z',
      rootfs: { type: 'layers', diff_ids: [base.diffId, top.diffId] },
      strata: {
        schemaVersion: 1,
        name: 'demo',
        created: '2024-01-02T03:04:05Z',
        features: [],
        architecture: 'amd64',
        distribution: {},
        packages: [],
        exclusions: [],
        layers: [
          { diffId: base.diffId, createdBy: 'base', packagesAdded: ['hello=1.0', 'gone=2.0'] },
          { diffId: top.diffId, createdBy: 'INSTALL libhello1', packagesAdded: ['libhello1=1.1'] },
        ],
        baseChain: [
          { name: 'root', ref: 'acme/root:1', digest: sha256(Buffer.from('root')) },
          { name: 'mid', ref: 'acme/mid:1', digest: sha256(Buffer.from('mid')) },
        ],
        shadowedPackages: [
          {
            name: 'gone',
            version: '2.0',
            architecture: 'amd64',
            source: 'gone',
            layer: base.diffId,
          },
          {
            name: 'hello',
            version: '0.9',
            architecture: 'amd64',
            source: 'hello',
            layer: base.diffId,
          },
        ],
      },
    };
    return inventory(
      { ref: 'acme/demo:1', digest: sha256(Buffer.from('demo')), config, layers: [base, top] },
      files,
      opts,
    );
  }

  test('packages a later layer removed or replaced are listed only with allLayers, marked, with the licence their hidden copyright file gives', async () => {
    expect((await inv()).packages.map((p) => p.name)).toEqual(['hello', 'libhello1']);
    const i = await inv({ allLayers: true });
    const shadowed = i.packages.filter((p) => p.shadowed);
    expect(shadowed.map((p) => [p.name, p.version, p.layer?.index])).toEqual([
      ['gone', '2.0', 0],
      ['hello', '0.9', 0],
    ]);
    // gone's copyright file is hidden by the top layer's whiteout, but read from the base.
    expect(shadowed[0]?.license.kind).toBe('text');
    // hello 0.9 was replaced: the installed version's copyright file is the package's.
    expect(shadowed[1]?.license.expression).toContain('GPL-2.0-or-later');
    const doc = toSpdx(i);
    const ids = doc.packages.map((p) => p.SPDXID);
    expect(new Set(ids).size).toBe(ids.length);
    const old = doc.packages.find((p) => p.name === 'hello' && p.versionInfo === '0.9');
    expect(old?.comment).toMatch(/removed or replaced by a later layer/);
    await expectValidSboms(i);
  });

  test('a view keeps the copyright files a layer hid', async () => {
    const kept = new Map<string, Buffer>();
    const views = {
      read: async (t: Digest, key: string) => kept.get(`${t}-${key}`),
      write: async (t: Digest, key: string, data: Buffer) => void kept.set(`${t}-${key}`, data),
    };
    const described = [base, top].map((l) => ({
      descriptor: {
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: l.digest,
        size: 1,
      },
      openTar: () => l.openTar(),
    }));
    const read = await readRootfsFiles(described, views);
    expect(read.hiddenFile('usr/share/doc/gone/copyright')?.data?.toString()).toBe('old\n');
    const restored = await readRootfsFiles(
      described.map((l) => ({ ...l, openTar: () => Promise.reject(new Error('read again')) })),
      views,
    );
    expect(restored.hiddenFile('usr/share/doc/gone/copyright')?.data?.toString()).toBe('old\n');
    expect(restored.hiddenFile('usr/share/doc/opaque/copyright')?.layer).toBe(0);
  });

  test('the inventory: packages with source, purl, licences, checksum and the layer that brought each in', async () => {
    const i = await inv();
    expect(i.platform).toBe('linux/amd64');
    expect(i.distribution).toEqual({ id: 'debian', versionId: '12' });
    expect(i.packages.map((p) => [p.name, p.source, p.sourceVersion, p.layer?.index])).toEqual([
      ['hello', 'hello', undefined, 0],
      ['libhello1', 'hello', '1.0', 1],
    ]);
    const lib = i.packages[1];
    expect(lib?.purl).toBe('pkg:deb/debian/libhello1@1.1?arch=amd64&distro=debian-12');
    expect(lib?.license.expression).toContain('GPL-2.0-or-later AND MIT');
    expect(lib?.filesSha256).toBe(
      createHash('sha256')
        .update('d41d8cd98f00b204e9800998ecf8427e  usr/lib/libhello.so.1\n')
        .digest('hex'),
    );
  });

  test('the SPDX document: the base chain as DESCENDANT_OF, layers CONTAIN the packages they installed', async () => {
    const doc = toSpdx(await inv());
    const rel = (t: string) =>
      doc.relationships
        .filter((r) => r.relationshipType === t)
        .map((r) => `${r.spdxElementId} ${r.relatedSpdxElement}`);
    expect(rel('DESCENDANT_OF')).toEqual([
      expect.stringMatching(/^SPDXRef-Template-demo SPDXRef-Base-mid-/),
      expect.stringMatching(/^SPDXRef-Base-mid-\S+ SPDXRef-Base-root-/),
    ]);
    expect(rel('CONTAINS')).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SPDXRef-Layer-0-\S+ SPDXRef-Package-deb-hello-amd64$/),
        expect.stringMatching(/^SPDXRef-Layer-1-\S+ SPDXRef-Package-deb-libhello1-amd64$/),
      ]),
    );
    expect(doc.creationInfo.created).toBe('2024-01-02T03:04:05Z');
  });

  const schemaDir = path.join(
    path.dirname(
      require.resolve('@cyclonedx/cyclonedx-library/package.json', { paths: [__dirname] }),
    ),
    'res',
    'schema',
  );
  const checker = path.join(__dirname, '..', '..', '..', 'e2e', 'support', 'validate-sbom.py');

  test.each(['spdx', 'cyclonedx'] as const)(
    'the %s document is valid by its official schema, for the code validator and for python3-jsonschema',
    async (format) => {
      const text = renderSbom(await inv(), format);
      expect(await validateSbom(format, text)).toEqual([]);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbom-unit-'));
      try {
        const file = path.join(dir, 'sbom.json');
        fs.writeFileSync(file, text);
        const schemas = format === 'spdx' ? path.dirname(SPDX_SCHEMA) : schemaDir;
        expect(execFileSync('python3', [checker, format, schemas, file]).toString()).toMatch(
          /^valid /,
        );
        // Both validators see a broken document as broken: the checks can fail.
        const broken = JSON.parse(text) as Record<string, unknown>;
        if (format === 'spdx') delete broken.SPDXID;
        else broken.bomFormat = 'SPDX';
        fs.writeFileSync(file, JSON.stringify(broken));
        expect(await validateSbom(format, JSON.stringify(broken))).not.toEqual([]);
        expect(() =>
          execFileSync('python3', [checker, format, schemas, file], { stdio: 'pipe' }),
        ).toThrow();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

/** The inventory of a one-layer template holding `entries`. */
async function oneLayer(
  entries: Entry[],
  packagesAdded: string[] = [],
  more: { localDebs?: string[]; debuilt?: string[] } = {},
) {
  const l = layer([
    { path: 'usr/lib/os-release', body: 'ID=debian\nVERSION_ID="12"\n' },
    ...entries,
  ]);
  const files = await readRootfsFiles([l]);
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-02T03:04:05Z',
    rootfs: { type: 'layers', diff_ids: [l.diffId] },
    strata: {
      schemaVersion: 1,
      name: 'one',
      created: '2024-01-02T03:04:05Z',
      features: [],
      architecture: 'amd64',
      distribution: {},
      packages: [],
      exclusions: [],
      layers: [
        {
          diffId: l.diffId,
          createdBy: 'one',
          packagesAdded,
          ...(more.localDebs ? { localDebs: more.localDebs } : {}),
        },
      ],
      ...(more.debuilt
        ? {
            debuilds: [
              {
                source: 'acme',
                cacheKey: sha256(Buffer.from('k')),
                buildchroot: sha256(Buffer.from('c')),
                inputs: [],
                packages: more.debuilt,
              },
            ],
          }
        : {}),
    },
  };
  return inventory(
    { ref: 'acme/one:1', digest: sha256(Buffer.from('one')), config, layers: [l] },
    files,
  );
}

describe('package states', () => {
  test('a package dpkg left unpacked is in the SBOM with its state: an SPDX comment, a CycloneDX property', async () => {
    const i = await oneLayer([
      {
        path: 'var/lib/dpkg/status',
        body:
          'Package: done\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n' +
          'Package: half\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 2\n',
      },
    ]);
    expect(i.packages.map((p) => [p.name, p.state])).toEqual([
      ['done', undefined],
      ['half', 'unpacked'],
    ]);
    const spdx = toSpdx(i);
    const half = spdx.packages.find((p) => p.name === 'half');
    expect(half?.comment).toContain('dpkg state: unpacked');
    expect(spdx.packages.find((p) => p.name === 'done')?.comment ?? '').not.toContain('state');
    const cdx = JSON.parse(renderSbom(i, 'cyclonedx')) as {
      components: Array<{ name: string; properties?: Array<{ name: string; value: string }> }>;
    };
    const props = (n: string) => cdx.components.find((c) => c.name === n)?.properties ?? [];
    expect(props('half')).toContainEqual({ name: 'debian:state', value: 'unpacked' });
    expect(props('done').map((p) => p.name)).not.toContain('debian:state');
    await expectValidSboms(i);
  });
});

test("the report's licences: a package without a copyright file has none (the page shows unknown), never SPDX's NONE", async () => {
  const i = await oneLayer([
    {
      path: 'var/lib/dpkg/status',
      body:
        'Package: documented\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n' +
        'Package: bare\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n',
    },
    { path: 'usr/share/doc/documented/copyright', body: DEP5 },
  ]);
  const l = reportLicences(i);
  expect(l.get('documented:amd64=1')).toContain('GPL-2.0-or-later');
  expect(l.has('bare:amd64=2')).toBe(false);
  expect([...l.values()]).not.toContain('NONE');
});

test('a DEP-5 licence named LicenseRef-… keeps its one prefix in the expression, the SPDX and CycloneDX documents', async () => {
  const copyright = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2024 Acme
License: LicenseRef-Acme-Proprietary

License: LicenseRef-Acme-Proprietary
 All rights reserved by Acme.
`;
  const l = packageLicense('acme', copyright);
  expect(l.expression).toBe('LicenseRef-Acme-Proprietary');
  expect(l.extracted.map((e) => [e.id, e.text])).toEqual([
    ['LicenseRef-Acme-Proprietary', 'All rights reserved by Acme.'],
  ]);
  const i = await oneLayer([
    {
      path: 'var/lib/dpkg/status',
      body: 'Package: acme\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n',
    },
    { path: 'usr/share/doc/acme/copyright', body: copyright },
  ]);
  for (const format of ['spdx', 'cyclonedx'] as const) {
    const text = renderSbom(i, format);
    expect(text).toContain('LicenseRef-Acme-Proprietary');
    expect(text).not.toContain('LicenseRef-LicenseRef');
  }
  expect(reportLicences(i).get('acme:amd64=1')).toBe('LicenseRef-Acme-Proprietary');
});

test('Built-Using: SPDX lists the embedded source package and the binary GENERATED_FROM it; CycloneDX a property', async () => {
  const i = await oneLayer([
    {
      path: 'var/lib/dpkg/status',
      body:
        'Package: fgetty\nStatus: install ok installed\nArchitecture: amd64\nVersion: 0.7-6\n' +
        'Built-Using: dietlibc (= 0.34~cvs20160606-14)\n',
    },
  ]);
  const spdx = toSpdx(i);
  const src = spdx.packages.find((p) => p.primaryPackagePurpose === 'SOURCE');
  expect(src).toMatchObject({ name: 'dietlibc', versionInfo: '0.34~cvs20160606-14' });
  expect(src?.externalRefs?.[0]?.referenceLocator).toBe(
    'pkg:deb/debian/dietlibc@0.34~cvs20160606-14?arch=source&distro=debian-12',
  );
  expect(spdx.relationships).toContainEqual({
    spdxElementId: 'SPDXRef-Package-deb-fgetty-amd64',
    relationshipType: 'GENERATED_FROM',
    relatedSpdxElement: src?.SPDXID,
    comment: expect.stringContaining('Built-Using: dietlibc (= 0.34~cvs20160606-14)'),
  });
  const cdx = JSON.parse(renderSbom(i, 'cyclonedx')) as {
    components: Array<{ name: string; properties?: Array<{ name: string; value: string }> }>;
  };
  expect(cdx.components.find((c) => c.name === 'fgetty')?.properties).toContainEqual({
    name: 'debian:built-using',
    value: 'dietlibc (= 0.34~cvs20160606-14)',
  });
  await expectValidSboms(i);
});

test("the supplier is dpkg's Maintainer: SPDX Person or Organization with the address, CycloneDX supplier and publisher", async () => {
  const i = await oneLayer([
    {
      path: 'var/lib/dpkg/status',
      body:
        'Package: dash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n' +
        'Maintainer: Andrej Shadura <andrewsh@debian.org>\n\n' +
        'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2\n' +
        'Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\n' +
        'Package: anon\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3\n',
    },
  ]);
  const spdx = toSpdx(i);
  const sup = (n: string) => spdx.packages.find((p) => p.name === n)?.supplier;
  expect(sup('dash')).toBe('Person: Andrej Shadura (andrewsh@debian.org)');
  expect(sup('libc6')).toBe('Organization: GNU Libc Maintainers (debian-glibc@lists.debian.org)');
  expect(sup('anon')).toBe('NOASSERTION');
  const cdx = JSON.parse(renderSbom(i, 'cyclonedx')) as {
    components: Array<{
      name: string;
      publisher?: string;
      supplier?: { name: string; contact?: Array<{ email?: string }> };
    }>;
  };
  const libc = cdx.components.find((c) => c.name === 'libc6');
  expect(libc?.publisher).toBe('GNU Libc Maintainers <debian-glibc@lists.debian.org>');
  expect(libc?.supplier?.name).toBe('GNU Libc Maintainers');
  expect(libc?.supplier?.contact?.[0]?.email).toBe('debian-glibc@lists.debian.org');
  expect(cdx.components.find((c) => c.name === 'anon')?.supplier).toBeUndefined();
  await expectValidSboms(i);
});

describe('one text per LicenseRef in a document', () => {
  const dep5 = (files: string, extra = '') =>
    `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n${files}\n${extra}`;
  const status = (names: string[]) =>
    names
      .map((n) => `Package: ${n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n`)
      .join('\n');

  test('a later real text replaces a placeholder; a text in a Files paragraph counts; different texts get ids of their own; ids differing by case are one', async () => {
    const i = await oneLayer([
      {
        path: 'var/lib/dpkg/status',
        body: status(['base-passwd', 'dash', 'perl-base', 'tzdata', 'bison', 'other']),
      },
      // Names the licence only: a placeholder.
      {
        path: 'usr/share/doc/base-passwd/copyright',
        body: dep5('Files: *\nCopyright: x\nLicense: public-domain\n'),
      },
      // Its text inside the Files paragraph.
      {
        path: 'usr/share/doc/dash/copyright',
        body: dep5(
          'Files: *\nCopyright: x\nLicense: public-domain\n Dash is in the public domain.\n',
        ),
      },
      {
        path: 'usr/share/doc/perl-base/copyright',
        body: dep5(
          'Files: *\nCopyright: x\nLicense: Artistic\n',
          '\nLicense: Artistic\n The "Artistic License", in full.\n',
        ),
      },
      // Another public-domain text: an id of its own.
      {
        path: 'usr/share/doc/tzdata/copyright',
        body: dep5(
          'Files: *\nCopyright: x\nLicense: public-domain\n',
          '\nLicense: public-domain\n The tz database is in the public domain.\n',
        ),
      },
      {
        path: 'usr/share/doc/bison/copyright',
        body: dep5(
          'Files: *\nCopyright: x\nLicense: GPL-3+ WITH BISON EXCEPTION\n',
          '\nLicense: GPL-3+ WITH BISON EXCEPTION\n Bison exception text.\n',
        ),
      },
      {
        path: 'usr/share/doc/other/copyright',
        body: dep5(
          'Files: *\nCopyright: x\nLicense: GPL-3+ with Bison exception\n',
          '\nLicense: GPL-3+ with Bison exception\n Bison   exception\n text.\n',
        ),
      },
    ]);
    const expr = (n: string) => i.packages.find((p) => p.name === n)?.license.expression;
    expect(expr('base-passwd')).toBe('LicenseRef-public-domain');
    expect(expr('dash')).toBe('LicenseRef-public-domain');
    expect(expr('tzdata')).toBe('LicenseRef-public-domain-tzdata');
    expect(expr('bison')).toBe('LicenseRef-GPL-3plus-WITH-BISON-EXCEPTION');
    expect(expr('other')).toBe('LicenseRef-GPL-3plus-WITH-BISON-EXCEPTION');
    const spdx = toSpdx(i);
    const texts = new Map(
      (spdx.hasExtractedLicensingInfos ?? []).map((e) => [e.licenseId, e.extractedText]),
    );
    expect([...texts.keys()].sort()).toEqual([
      'LicenseRef-Artistic',
      'LicenseRef-GPL-3plus-WITH-BISON-EXCEPTION',
      'LicenseRef-public-domain',
      'LicenseRef-public-domain-tzdata',
    ]);
    expect(texts.get('LicenseRef-public-domain')).toBe('Dash is in the public domain.');
    expect(texts.get('LicenseRef-public-domain-tzdata')).toBe(
      'The tz database is in the public domain.',
    );
    expect(texts.get('LicenseRef-Artistic')).toBe('The "Artistic License", in full.');
    // Every id a package uses is declared.
    for (const p of spdx.packages) {
      for (const id of p.licenseDeclared?.match(/LicenseRef-[A-Za-z0-9.-]+/g) ?? [])
        expect(texts.has(id)).toBe(true);
    }
    expect(await validateSbom('spdx', renderSbom(i, 'spdx'))).toEqual([]);
  });

  test('a placeholder stays when no package has the text', () => {
    const pkgs = [
      { name: 'a', license: packageLicense('a', dep5('Files: *\nCopyright: x\nLicense: Foo\n')) },
      { name: 'b', license: packageLicense('b', dep5('Files: *\nCopyright: x\nLicense: foo\n')) },
    ];
    unifyLicenseRefs(pkgs);
    expect(pkgs.map((p) => p.license.expression)).toEqual(['LicenseRef-Foo', 'LicenseRef-Foo']);
    expect(pkgs[1]?.license.extracted[0]?.placeholder).toBe(true);
  });

  test('an id made for another text is never one that a copyright file names', () => {
    const text = (n: string, body: string) =>
      packageLicense(
        n,
        dep5(
          `Files: *\nCopyright: x\nLicense: ${n === 'c' ? 'Foo-b' : 'Foo'}\n`,
          `\nLicense: ${n === 'c' ? 'Foo-b' : 'Foo'}\n ${body}\n`,
        ),
      );
    const pkgs = [
      { name: 'a', license: text('a', 'one') },
      { name: 'b', license: text('b', 'two') },
      { name: 'c', license: text('c', 'three') },
    ];
    unifyLicenseRefs(pkgs);
    expect(pkgs.map((p) => p.license.expression)).toEqual([
      'LicenseRef-Foo',
      'LicenseRef-Foo-b-2',
      'LicenseRef-Foo-b',
    ]);
  });
});

test('a package from a .deb of the build context, or built by DEBUILD, has no Debian purl and says where it came from', async () => {
  const i = await oneLayer(
    [
      {
        path: 'var/lib/dpkg/status',
        body: ['curl=7.88.1-10', 'tinyx=1.0', 'acme-tool=2.0']
          .map((k) => {
            const [n, v] = k.split('=');
            return `Package: ${n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${v}\n`;
          })
          .join('\n'),
      },
    ],
    ['curl=7.88.1-10', 'tinyx=1.0', 'acme-tool=2.0'],
    { localDebs: ['tinyx=1.0'], debuilt: ['acme-tool=2.0'] },
  );
  const purl = (n: string) => i.packages.find((p) => p.name === n)?.purl;
  expect(purl('curl')).toBe('pkg:deb/debian/curl@7.88.1-10?arch=amd64&distro=debian-12');
  expect(purl('tinyx')).toBe('pkg:deb/tinyx@1.0?arch=amd64');
  expect(purl('acme-tool')).toBe('pkg:deb/acme-tool@2.0?arch=amd64');
  expect(PackageURL.fromString(purl('tinyx') as string).namespace).toBeFalsy();
  const spdx = toSpdx(i);
  const comment = (n: string) => spdx.packages.find((p) => p.name === n)?.comment ?? '';
  expect(comment('tinyx')).toContain('installed from a local .deb in the build context');
  expect(comment('acme-tool')).toContain('built by a DEBUILD step');
  expect(comment('curl')).not.toContain('local');
  const cdx = JSON.parse(renderSbom(i, 'cyclonedx')) as {
    components: Array<{ name: string; properties?: Array<{ name: string; value: string }> }>;
  };
  const props = (n: string) => cdx.components.find((c) => c.name === n)?.properties ?? [];
  expect(props('tinyx')).toContainEqual({ name: 'strata:origin', value: 'context-deb' });
  expect(props('acme-tool')).toContainEqual({ name: 'strata:origin', value: 'debuild' });
  expect(props('curl').map((p) => p.name)).not.toContain('strata:origin');
  await expectValidSboms(i);
});
