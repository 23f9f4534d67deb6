import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeSources, parseDsc } from '@strata/debian';
import {
  ArtifactTypes,
  DigestMismatchError,
  InvalidDocumentError,
  MediaTypes,
  parseDigest,
  validateSourceIndex,
} from '@strata/oci';
import type { DebianPackage, Digest, TemplateMetadata } from '@strata/oci';
import { Store, writeImage as writeStoreImage } from '@strata/store';
import { createTemplate } from '@strata/template';
import { sourcesOf, writeSources } from './source-bundle';
import { checkAttachedSource, debuildSources } from './source-carried';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('sourcesOf', () => {
  test('a binNMU maps to the source version its Source: field names; DEBUILD packages are left out', () => {
    const pkgs: DebianPackage[] = [
      {
        name: 'libcap-ng0',
        version: '0.8.3-1+b3',
        architecture: 'amd64',
        source: 'libcap-ng',
        sourceVersion: '0.8.3-1',
      },
      { name: 'libcap-ng-utils', version: '0.8.3-1', architecture: 'amd64', source: 'libcap-ng' },
      { name: 'base-files', version: '12.4+deb12u15', architecture: 'amd64', source: 'base-files' },
      { name: 'acme-tool', version: '1.0', architecture: 'amd64', source: 'acme' },
    ];
    const got = sourcesOf(pkgs, new Set(['acme-tool=1.0']));
    expect([...got.keys()]).toEqual(['base-files=12.4+deb12u15', 'libcap-ng=0.8.3-1']);
    expect(got.get('libcap-ng=0.8.3-1')?.binaries).toEqual([
      'libcap-ng-utils:amd64=0.8.3-1',
      'libcap-ng0:amd64=0.8.3-1+b3',
    ]);
  });
});

test('sourcesOf: the sources a Built-Using or Static-Built-Using names are wanted, with the binaries that embed them, even for a DEBUILD package', () => {
  const pkgs: DebianPackage[] = [
    {
      name: 'fgetty',
      version: '0.7-6',
      architecture: 'amd64',
      source: 'fgetty',
      builtUsing: ['dietlibc=0.34~cvs20160606-14'],
    },
    {
      name: 'acme-tool',
      version: '1.0',
      architecture: 'amd64',
      source: 'acme',
      staticBuiltUsing: ['dietlibc=0.34~cvs20160606-14', 'rustc=1.63'],
    },
  ];
  const got = sourcesOf(pkgs, new Set(['acme-tool=1.0']));
  expect([...got.keys()]).toEqual(['dietlibc=0.34~cvs20160606-14', 'fgetty=0.7-6', 'rustc=1.63']);
  expect(got.get('dietlibc=0.34~cvs20160606-14')).toEqual({
    name: 'dietlibc',
    version: '0.34~cvs20160606-14',
    binaries: [],
    builtUsing: [
      { binary: 'acme-tool:amd64=1.0', field: 'Static-Built-Using' },
      { binary: 'fgetty:amd64=0.7-6', field: 'Built-Using' },
    ],
  });
  expect(got.get('fgetty=0.7-6')?.builtUsing).toBeUndefined();
});

test('sourcesOf: a binary that a later layer removed or replaced wants its source too, and is named as shadowed', () => {
  const layer = `sha256:${'1'.repeat(64)}` as Digest;
  const got = sourcesOf([
    { name: 'libfoo1', version: '2', architecture: 'amd64', source: 'foo' },
    { name: 'libfoo1', version: '1', architecture: 'amd64', source: 'foo', layer },
    { name: 'gone', version: '5', architecture: 'all', source: 'gone', layer },
  ]);
  expect([...got.values()]).toEqual([
    { name: 'foo', version: '1', binaries: ['libfoo1:amd64=1'], shadowed: ['libfoo1:amd64=1'] },
    { name: 'foo', version: '2', binaries: ['libfoo1:amd64=2'] },
    { name: 'gone', version: '5', binaries: ['gone:all=5'], shadowed: ['gone:all=5'] },
  ]);
});

describe('DEBUILD sources carried with the .debs', () => {
  const tar = { name: 'acme_2.0.tar.xz', sha256: 'a'.repeat(64), size: 10 };
  const dsc = parseDsc(
    `Source: acme\nBinary: acme-tool, acme-doc\nVersion: 2.0\nChecksums-Sha256:\n ${tar.sha256} 10 ${tar.name}\n`,
    'acme_2.0.dsc',
  );
  const dscBlob = { digest: `sha256:${'d'.repeat(64)}`, size: 99 };

  test('checkAttachedSource: the .dsc and each file it lists, as the .dsc gives them', () => {
    const attached = new Map([[tar.name, { digest: `sha256:${tar.sha256}`, size: 10 }]]);
    expect(checkAttachedSource('acme_2.0.dsc', dscBlob, dsc, attached, 'test')).toEqual([
      { name: 'acme_2.0.dsc', sha256: 'd'.repeat(64), size: 99 },
      tar,
    ]);
  });

  test('checkAttachedSource refuses a file that is not attached, or attached with other bytes', () => {
    expect(() => checkAttachedSource('acme_2.0.dsc', dscBlob, dsc, new Map(), 'test')).toThrow(
      /acme_2\.0\.tar\.xz, which acme_2\.0\.dsc lists, is not attached/,
    );
    for (const other of [
      { digest: `sha256:${'b'.repeat(64)}`, size: 10 },
      { digest: `sha256:${tar.sha256}`, size: 11 },
    ]) {
      expect(() =>
        checkAttachedSource('acme_2.0.dsc', dscBlob, dsc, new Map([[tar.name, other]]), 'test'),
      ).toThrow(InvalidDocumentError);
    }
  });

  test('debuildSources: the DEBUILD line that made it, else the installed packages built from it', () => {
    const files = [tar];
    const installed: DebianPackage[] = [
      { name: 'acme-tool', version: '2.0', architecture: 'amd64', source: 'acme' },
      { name: 'base-files', version: '12.4', architecture: 'amd64', source: 'base-files' },
    ];
    const record = {
      source: './acme',
      cacheKey: `sha256:${'c'.repeat(64)}` as Digest,
      buildchroot: `sha256:${'e'.repeat(64)}` as Digest,
      inputs: [],
      packages: ['acme-tool=2.0', 'acme-tool-dbgsym=2.0', 'acme-doc=2.0'],
    };
    // Another line's packages at another version are not this source's.
    const other = { ...record, source: './old-acme', packages: ['acme-tool=1.0'] };
    expect(debuildSources([{ dsc, files }], [other, record], installed)).toEqual([
      { name: 'acme', version: '2.0', source: './acme', packages: record.packages, files },
    ]);
    expect(debuildSources([{ dsc, files }], [other], installed)).toEqual([
      { name: 'acme', version: '2.0', packages: ['acme-tool=2.0'], files },
    ]);
  });
});

/**
 * writeSources against a small apt repository on 127.0.0.1 (a real HTTP server, the real
 * store): what it writes, what it asks the server for, and what it refuses.
 */
describe('writeSources', () => {
  let dir: string;
  let store: Store;
  let server: http.Server;
  let uri: string;
  const requests: string[] = [];
  const files = new Map<string, Buffer>();
  /** What the server serves instead, by path: a tampered mirror. */
  const served = new Map<string, Buffer>();

  const orig = Buffer.from('upstream tarball\n'.repeat(1000));
  const debian = Buffer.from('debian dir\n');
  const dscText = (tarSha: string) => `Format: 3.0 (quilt)
Source: hello
Version: 1.0-1
Checksums-Sha256:
 ${tarSha} ${orig.length} hello_1.0.orig.tar.gz
 ${sha(debian)} ${debian.length} hello_1.0-1.debian.tar.xz
`;
  const dsc = Buffer.from(dscText(sha(orig)));

  function publish(dscBytes: Buffer): void {
    files.clear();
    const pool = 'pool/main/h/hello';
    files.set(`${pool}/hello_1.0-1.dsc`, dscBytes);
    files.set(`${pool}/hello_1.0.orig.tar.gz`, orig);
    files.set(`${pool}/hello_1.0-1.debian.tar.xz`, debian);
    const para = [
      'Package: hello',
      'Version: 1.0-1',
      `Directory: ${pool}`,
      'Checksums-Sha256:',
      ...[...files].map(([p, b]) => ` ${sha(b)} ${b.length} ${path.basename(p)}`),
    ].join('\n');
    const sources = gzipSync(`Package: other\nVersion: 2\nDirectory: pool/o\n\n${para}\n`);
    files.set('dists/test/main/source/Sources.gz', sources);
    files.set(
      'dists/test/InRelease',
      Buffer.from(
        `Suite: test\nSHA256:\n ${sha(sources)} ${sources.length} main/source/Sources.gz\n`,
      ),
    );
  }

  async function template(tag: string, status: string, into = store): Promise<void> {
    const root = path.join(dir, `root-${tag.replace(/\W/g, '-')}`);
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'var/lib/dpkg'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\nVERSION_CODENAME=bookworm\n');
    fs.writeFileSync(path.join(root, 'var/lib/dpkg/status'), status);
    await createTemplate(into, { source: { kind: 'dir', path: root }, tag, name: 'small' });
  }

  const pkg = (name: string, version: string, source?: string) =>
    `Package: ${name}\nStatus: install ok installed\nArchitecture: amd64\n${source ? `Source: ${source}\n` : ''}Version: ${version}\n\n`;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-sources-'));
    store = await Store.open(path.join(dir, 'store'));
    server = http.createServer((req, res) => {
      // /private/ is the same mirror behind basic auth.
      if (req.url?.startsWith('/private/') && req.headers.authorization !== PRIVATE_AUTH) {
        res.writeHead(401).end();
        return;
      }
      const rel = (req.url ?? '').replace(/^\/(debian|private)\//, '');
      requests.push(rel);
      const body = served.get(rel) ?? files.get(rel);
      if (body === undefined) res.writeHead(404).end();
      else res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`;
    publish(dsc);
    await template('t:1', pkg('hello-bin', '1.0-1+b2', 'hello (1.0-1)') + pkg('vanished', '3.0-1'));
    await template('t:2', pkg('hello-bin', '1.0-1+b2', 'hello (1.0-1)'));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const opts = () => ({ aptSources: makeSources(`deb ${uri} test main\n`, 'test sources') });

  /** Tag as `to` the image of `from` with its metadata changed by `change`, its layers kept. */
  async function withMetadata(
    from: string,
    to: string,
    change: (meta: TemplateMetadata) => TemplateMetadata,
  ): Promise<void> {
    const tagged = await store.resolve(from);
    const img = await store.selectImage(tagged, { role: 'rootfs' }, from);
    const [config, manifest] = await Promise.all([img.config(), store.readManifest(tagged)]);
    const written = await writeStoreImage(store, {
      metadata: change(config.strata!),
      layers: manifest.layers.map((d, i) => ({
        descriptor: d,
        diffId: config.rootfs.diff_ids[i] as Digest,
        history: { created_by: 'test' },
      })),
      platform: { architecture: 'amd64' },
      env: [],
      labels: {},
      annotations: {},
    });
    await store.tag(to, written.descriptor);
  }
  const PRIVATE_AUTH = `Basic ${Buffer.from('reader:s3cret').toString('base64')}`;

  test('reads a mirror behind basic auth with the apt-auth secret, and names it without', async () => {
    const fresh = await Store.open(path.join(dir, 'store-private'));
    await template('p:1', pkg('hello-bin', '1.0-1+b2', 'hello (1.0-1)'), fresh);
    const priv = uri.replace(/\/debian$/, '/private');
    const o = { aptSources: makeSources(`deb ${priv} test main\n`, 'private sources') };
    const refused = writeSources(fresh, 'p:1', path.join(dir, 'out-refused'), o);
    await expect(refused).rejects.toThrow('HTTP 401: the repository wants credentials');
    await expect(refused).rejects.toMatchObject({ hint: expect.stringContaining('apt-auth') });
    requests.length = 0;
    const r = await writeSources(fresh, 'p:1', path.join(dir, 'out-private'), {
      ...o,
      aptAuth: Buffer.from(`machine ${priv} login reader password s3cret\n`),
    });
    expect(r.index.sources.map((x) => x.name)).toEqual(['hello']);
    expect(r.stats.downloads).toBe(4);
    expect(requests.filter((q) => q.startsWith('pool/'))).toHaveLength(3);
  });

  test('writes each source file, an index, and names what the mirror lacks; a second run downloads nothing', async () => {
    requests.length = 0;
    const out = path.join(dir, 'out1');
    const r = await writeSources(store, 't:1', out, opts());
    expect(r.index.sources).toEqual([
      {
        name: 'hello',
        version: '1.0-1',
        binaries: ['hello-bin:amd64=1.0-1+b2'],
        repository: uri,
        files: expect.any(Array),
      },
    ]);
    expect(r.index.missing.map((m) => `${m.name}=${m.version}`)).toEqual(['vanished=3.0-1']);
    for (const [p, b] of files) {
      if (!p.startsWith('pool/')) continue;
      expect(fs.readFileSync(path.join(out, path.basename(p)))).toEqual(b);
    }
    const written: unknown = JSON.parse(fs.readFileSync(path.join(out, 'sources.json'), 'utf8'));
    expect(written).toEqual(r.index);
    expect(validateSourceIndex(written)).toEqual({ ok: true, value: written });
    expect(validateSourceIndex({ ...r.index, extra: 1 }).ok).toBe(false);
    expect(fs.readFileSync(path.join(out, 'SOURCES.txt'), 'utf8')).toMatch(/vanished 3\.0-1/);
    expect(r.stats.downloads).toBe(4); // Sources.gz, the .dsc, two files
    expect(requests.filter((q) => q.startsWith('pool/')).sort()).toEqual(
      [...files.keys()].filter((p) => p.startsWith('pool/')).sort(),
    );

    requests.length = 0;
    const again = await writeSources(store, 't:1', path.join(dir, 'out2'), opts());
    expect(again.stats.downloads).toBe(0);
    expect(again.stats.fromCache).toBe(4);
    expect(requests).toEqual(['dists/test/InRelease']);
    expect(again.index).toEqual(r.index);
  });

  test('fetches the sources a Built-Using names, and names the binary that needs one the mirror lacks', async () => {
    const embeds =
      'Package: embedder\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5\n' +
      'Built-Using: hello (= 1.0-1), dietlibc (= 0.34~cvs20160606-14)\n\n';
    await template('bu:1', embeds);
    const out = path.join(dir, 'out-built-using');
    const r = await writeSources(store, 'bu:1', out, opts());
    const by = [{ binary: 'embedder:amd64=5', field: 'Built-Using' }];
    expect(r.index.sources.map((x) => [x.name, x.version, x.binaries, x.builtUsing])).toEqual([
      ['hello', '1.0-1', [], by],
    ]);
    expect(r.index.missing.map((m) => [m.name, m.version, m.builtUsing])).toEqual([
      ['dietlibc', '0.34~cvs20160606-14', by],
      ['embedder', '5', undefined],
    ]);
    expect(fs.readFileSync(path.join(out, 'hello_1.0-1.dsc'))).toEqual(dsc);
    const written: unknown = JSON.parse(fs.readFileSync(path.join(out, 'sources.json'), 'utf8'));
    expect(validateSourceIndex(written)).toEqual({ ok: true, value: written });
    const txt = fs.readFileSync(path.join(out, 'SOURCES.txt'), 'utf8');
    expect(txt).toContain('embedder:amd64=5 (Built-Using)');
    expect(txt).toMatch(
      /dietlibc 0\.34~cvs20160606-14: .*needed by embedder:amd64=5 \(Built-Using\)/,
    );
  });

  test('without apt sources given, it reads those the template records it was built with', async () => {
    await withMetadata('t:2', 't:recorded', (meta) => ({
      ...meta,
      aptSources: [`deb ${uri} test main`],
    }));
    requests.length = 0;
    const r = await writeSources(store, 't:recorded', path.join(dir, 'out-recorded'), {});
    expect(r.index.sources.map((x) => x.name)).toEqual(['hello']);
    expect(r.index.missing).toEqual([]);
    expect(requests).toContain('dists/test/InRelease');
  });

  test('a template without packages asks the mirror nothing', async () => {
    await template('t:empty', '');
    requests.length = 0;
    const r = await writeSources(store, 't:empty', path.join(dir, 'out-empty'), opts());
    expect(r.index.sources).toEqual([]);
    expect(r.index.indices).toEqual({ read: [], none: [] });
    expect(requests).toEqual([]);
  });

  test('a package a later layer removed is still wanted, its binary named as shadowed, in sources.json and SOURCES.txt', async () => {
    await withMetadata('t:2', 't:shadowed', (meta) => ({
      ...meta,
      packages: [],
      shadowedPackages: [
        {
          name: 'hello-bin',
          version: '1.0-1+b2',
          architecture: 'amd64',
          source: 'hello',
          sourceVersion: '1.0-1',
          layer: meta.layers[0]!.diffId,
        },
      ],
    }));
    const out = path.join(dir, 'out-shadowed');
    const r = await writeSources(store, 't:shadowed', out, opts());
    expect(r.index.sources).toEqual([
      expect.objectContaining({
        name: 'hello',
        binaries: ['hello-bin:amd64=1.0-1+b2'],
        shadowed: ['hello-bin:amd64=1.0-1+b2'],
      }),
    ]);
    expect(fs.readFileSync(path.join(out, 'SOURCES.txt'), 'utf8')).toContain(
      'hello-bin:amd64=1.0-1+b2 (lower layer)',
    );
  });

  test('a COPY --from layer is in the folder with the stage it came from, whose sources it lacks', async () => {
    const createdBy = 'COPY --from=builder /out/hello /usr/bin/';
    await withMetadata('t:2', 't:copied-from', (meta) => ({
      ...meta,
      layers: meta.layers.map((l, i) =>
        i === 0 ? { ...l, createdBy, copiedFrom: { stage: 'builder', chain: l.diffId } } : l,
      ),
    }));
    const out = path.join(dir, 'out-copied-from');
    const r = await writeSources(store, 't:copied-from', out, opts());
    expect(r.index.copied).toEqual([
      { createdBy, layer: expect.any(String), file: expect.any(String), fromStage: 'builder' },
    ]);
    expect(validateSourceIndex(r.index).ok).toBe(true);
    const file = r.index.copied[0]!.file;
    expect(fs.existsSync(path.join(out, file))).toBe(true);
    expect(fs.readFileSync(path.join(out, 'SOURCES.txt'), 'utf8')).toContain(
      `${file}  ${createdBy}  (made in stage builder, whose sources are not in this bundle)`,
    );
  });

  test("the index is the same under any tag and any apt sources file: a missing package's reason names neither", async () => {
    const recorded = (meta: TemplateMetadata) => ({
      ...meta,
      aptSources: [`deb ${uri} test main`],
    });
    await withMetadata('t:1', 'app:1', recorded);
    await withMetadata('t:1', '127.0.0.1:5733/acme/app:1', recorded);
    const local = await writeSources(store, 'app:1', path.join(dir, 'out-local'), {});
    const remote = await writeSources(
      store,
      '127.0.0.1:5733/acme/app:1',
      path.join(dir, 'out-remote'),
      {},
    );
    expect(local.index.missing).toEqual([
      expect.objectContaining({
        name: 'vanished',
        reason: 'not in any of the Sources indices read',
      }),
    ]);
    expect(remote.index).toEqual(local.index);
    const given = await writeSources(store, 'app:1', path.join(dir, 'out-given'), {
      aptSources: makeSources(`deb ${uri} test main\n`, '/somewhere/sources.list'),
    });
    expect(given.index).toEqual(local.index);
    for (const f of ['sources.json', 'SOURCES.txt'])
      expect(fs.readFileSync(path.join(dir, 'out-remote', f))).toEqual(
        fs.readFileSync(path.join(dir, 'out-local', f)),
      );
  });

  test('refuses a file whose bytes are not what its .dsc says, and writes nothing under its name', async () => {
    const tampered = Buffer.from(orig);
    tampered[10] = 0x58;
    served.set('pool/main/h/hello/hello_1.0.orig.tar.gz', tampered);
    try {
      const out = path.join(dir, 'out-tampered');
      await expect(writeSources(await freshCopy('t:2'), 't:2', out, opts())).rejects.toBeInstanceOf(
        DigestMismatchError,
      );
      expect(fs.existsSync(path.join(out, 'hello_1.0.orig.tar.gz'))).toBe(false);
    } finally {
      served.clear();
    }
  });

  test('refuses a .dsc that disagrees with the Sources index about a file', async () => {
    publish(Buffer.from(dscText('d'.repeat(64))));
    try {
      await expect(
        writeSources(await freshCopy('t:2'), 't:2', path.join(dir, 'out-dsc'), opts()),
      ).rejects.toBeInstanceOf(InvalidDocumentError);
    } finally {
      publish(dsc);
    }
  });

  test('the cached files are store blobs: gc frees them, unless an attached bundle holds them', async () => {
    const s = await freshCopy('t:2');
    const origBlob = parseDigest(`sha256:${sha(orig)}`);
    await writeSources(s, 't:2', path.join(dir, 'out-gc1'), opts());
    expect(await s.hasBlob(origBlob)).toBe(true);
    await s.gc();
    expect(await s.hasBlob(origBlob)).toBe(false);
    const r = await writeSources(s, 't:2', path.join(dir, 'out-gc2'), { ...opts(), attach: true });
    expect(r.stats.downloads).toBe(4);
    await s.gc();
    expect(await s.hasBlob(origBlob)).toBe(true);
    // The Sources index is not part of the bundle: gc took it, and only it is fetched again.
    requests.length = 0;
    const again = await writeSources(s, 't:2', path.join(dir, 'out-gc3'), opts());
    expect(again.stats.downloads).toBe(1);
    expect(requests).toEqual(['dists/test/InRelease', 'dists/test/main/source/Sources.gz']);
  });

  test('--attach replaces the bundle attached before: the image has one sources artifact, the newest', async () => {
    const s = await freshCopy('t:2');
    const img = await s.selectImage(await s.resolve('t:2'), { role: 'rootfs' }, 't:2');
    const lacking = 'pool/main/h/hello/hello_1.0-1.debian.tar.xz';
    const held = files.get(lacking) as Buffer;
    files.delete(lacking);
    let before;
    try {
      before = await writeSources(s, 't:2', path.join(dir, 'out-att1'), {
        ...opts(),
        attach: true,
      });
    } finally {
      files.set(lacking, held);
    }
    expect(before.index.missing.map((m) => m.name)).toEqual(['hello']);
    const after = await writeSources(s, 't:2', path.join(dir, 'out-att2'), {
      ...opts(),
      attach: true,
    });
    expect(after.index.missing).toEqual([]);
    expect(after.attached?.digest).not.toBe(before.attached?.digest);
    expect(
      (await s.referrers(img.descriptor.digest, ArtifactTypes.sources)).map((d) => d.digest),
    ).toEqual([after.attached?.digest]);
  });

  test('a store that got the bundle with the template downloads no file it holds, only the Sources index', async () => {
    const { saveArchive, loadArchive } = await import('@strata/store');
    const s1 = await freshCopy('t:1');
    await writeSources(s1, 't:1', path.join(dir, 'out-bundled1'), { ...opts(), attach: true });
    const file = path.join(dir, 'bundled.tar');
    await saveArchive(s1, 't:1', file);
    const s2 = await Store.open(path.join(dir, 'store-bundled'));
    await loadArchive(s2, file, 't:1');
    requests.length = 0;
    const r = await writeSources(s2, 't:1', path.join(dir, 'out-bundled2'), opts());
    expect(r.index.sources.map((x) => x.name)).toEqual(['hello']);
    expect(r.stats.fromCache).toBe(3); // the .dsc and its two files
    expect(requests).toEqual(['dists/test/InRelease', 'dists/test/main/source/Sources.gz']);
  });

  test('writes the DEBUILD source packages attached with the .debs, checked against their .dsc, and attaches them with --attach', async () => {
    const tarball = Buffer.from('acme source tarball\n');
    const acmeDsc = Buffer.from(
      `Format: 3.0 (native)\nSource: acme\nBinary: acme-tool\nVersion: 2.0\nChecksums-Sha256:\n ${sha(tarball)} ${tarball.length} acme_2.0.tar.xz\n`,
    );
    const attachTo = async (tag: string, tarBytes: Buffer): Promise<void> => {
      await template(
        tag,
        pkg('hello-bin', '1.0-1+b2', 'hello (1.0-1)') + pkg('acme-tool', '2.0', 'acme'),
      );
      const img = await store.selectImage(await store.resolve(tag), { role: 'rootfs' }, tag);
      const put = (name: string, bytes: Buffer) => {
        const f = path.join(dir, `${tag.replace(/\W/g, '-')}-${name}`);
        fs.writeFileSync(f, bytes);
        return f;
      };
      await store.attach(img.descriptor, ArtifactTypes.debs, [
        {
          path: put('deb', Buffer.from('not really a deb')),
          mediaType: MediaTypes.debianPackage,
          title: 'acme-tool_2.0_amd64.deb',
        },
        {
          path: put('dsc', acmeDsc),
          mediaType: MediaTypes.debianSourceFile,
          title: 'acme_2.0.dsc',
        },
        {
          path: put('tar', tarBytes),
          mediaType: MediaTypes.debianSourceFile,
          title: 'acme_2.0.tar.xz',
        },
      ]);
    };
    await attachTo('t:debuilt', tarball);
    const out = path.join(dir, 'out-debuilt');
    const r = await writeSources(store, 't:debuilt', out, { ...opts(), attach: true });
    // acme is not on the mirror, and not missing: the template carries it.
    expect(r.index.missing).toEqual([]);
    expect(r.index.sources.map((x) => x.name)).toEqual(['hello']);
    expect(r.index.debuilds).toEqual([
      {
        name: 'acme',
        version: '2.0',
        packages: ['acme-tool=2.0'],
        files: [
          { name: 'acme_2.0.dsc', sha256: sha(acmeDsc), size: acmeDsc.length },
          { name: 'acme_2.0.tar.xz', sha256: sha(tarball), size: tarball.length },
        ],
      },
    ]);
    expect(fs.readFileSync(path.join(out, 'acme_2.0.dsc'))).toEqual(acmeDsc);
    expect(fs.readFileSync(path.join(out, 'acme_2.0.tar.xz'))).toEqual(tarball);
    expect(validateSourceIndex(r.index).ok).toBe(true);
    expect(fs.readFileSync(path.join(out, 'SOURCES.txt'), 'utf8')).toMatch(
      /acme 2\.0 .*acme_2\.0\.dsc acme_2\.0\.tar\.xz/,
    );
    const bundle = JSON.parse(
      (await store.readBlob(r.attached!.digest, r.attached!.size)).toString('utf8'),
    ) as { layers: Array<{ digest: string; annotations: Record<string, string> }> };
    const titles = bundle.layers.map((l) => l.annotations['org.opencontainers.image.title']);
    expect(titles).toEqual(expect.arrayContaining(['acme_2.0.dsc', 'acme_2.0.tar.xz']));

    // A tarball that is not the one its .dsc lists is refused, and nothing is written.
    await attachTo('t:debuilt-bad', Buffer.from('another tarball\n'));
    const bad = path.join(dir, 'out-debuilt-bad');
    await expect(writeSources(store, 't:debuilt-bad', bad, opts())).rejects.toThrow(
      /acme_2\.0\.tar\.xz is attached with another checksum or size than acme_2\.0\.dsc gives/,
    );
    expect(fs.existsSync(path.join(bad, 'acme_2.0.tar.xz'))).toBe(false);
  });

  test('a package DEBUILD made whose source package the template does not carry is named as missing', async () => {
    await template(
      't:old-debuild',
      pkg('hello-bin', '1.0-1+b2', 'hello (1.0-1)') + pkg('acme-tool', '2.0', 'acme'),
    );
    const record = {
      source: './acme',
      cacheKey: `sha256:${'c'.repeat(64)}` as Digest,
      buildchroot: `sha256:${'e'.repeat(64)}` as Digest,
      inputs: [],
      packages: ['acme-tool=2.0'],
    };
    await withMetadata('t:old-debuild', 't:old-debuild', (meta) => ({
      ...meta,
      debuilds: [record],
    }));
    const r = await writeSources(store, 't:old-debuild', path.join(dir, 'out-old'), opts());
    expect(r.index.debuilds).toEqual([]);
    expect(r.index.missing).toEqual([
      {
        name: 'acme',
        version: '2.0',
        binaries: ['acme-tool:amd64=2.0'],
        reason: expect.stringMatching(
          /^built by DEBUILD, but the template does not carry its source package/,
        ),
      },
    ]);
  });

  let copies = 0;
  /** A new store holding only the template `tag` (through save and load), no cached sources. */
  async function freshCopy(tag: string): Promise<Store> {
    const { saveArchive, loadArchive } = await import('@strata/store');
    const file = path.join(dir, `copy-${++copies}.tar`);
    await saveArchive(store, tag, file);
    const s = await Store.open(path.join(dir, `store-copy-${copies}`));
    await loadArchive(s, file, tag);
    return s;
  }
});
