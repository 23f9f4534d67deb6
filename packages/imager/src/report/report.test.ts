import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import {
  DebianPackage,
  Descriptor,
  Digest,
  ImageConfig,
  ImageManifest,
  MediaTypes,
  sha256,
  TemplateMetadata,
} from '@strata/oci';
import { Store } from '@strata/store';
import { FileTree } from '../tree';
import { TarSpec, tarOf } from '@strata/layer/testing';
import { packageRows, reportData, ReportData, sizeTree } from './model';
import { renderReport, scriptJson } from './html';

async function treeOf(...layers: TarSpec[][]): Promise<FileTree> {
  const t = new FileTree();
  t.hashData = false;
  t.capture = new Set(['var/lib/dpkg/status']);
  for (const l of layers) {
    const tar = tarOf(l);
    // Small chunks, so that a captured file straddles several.
    const chunks: Buffer[] = [];
    for (let i = 0; i < tar.length; i += 300) chunks.push(tar.subarray(i, i + 300));
    await t.apply({ openTar: async () => Readable.from(chunks) });
  }
  return t;
}

const body = (n: number) => 'x'.repeat(n);

test('sizeTree sums file data per directory, counts a hardlink once, and lumps small entries', async () => {
  const small = Array.from({ length: 30 }, (_, i) => ({ path: `usr/share/s${i}`, body: body(1) }));
  const t = await treeOf([
    { path: 'usr/bin/big', body: body(5000) },
    { path: 'usr/bin/hard', type: 'link', link: 'usr/bin/big' },
    { path: 'usr/lib/mid', body: body(3000) },
    ...small,
    { path: 'etc/motd', body: body(1000) },
    { path: 'etc/link', link: 'motd' },
    { path: 'empty/' },
  ]);
  const root = sizeTree(t, 'img:1', { minShare: 0.001, maxChildren: 10 });
  expect(root.n).toBe('img:1');
  expect(root.s).toBe(5000 + 3000 + 30 + 1000);
  expect(root.c?.map((c) => [c.n, c.s])).toEqual([
    ['usr', 8030],
    ['etc', 1000],
  ]);
  const usr = root.c?.[0];
  const share = usr?.c?.find((c) => c.n === 'share');
  // 30 files of one byte, each under 0.1% of the whole: one node that says how many it holds.
  expect(share).toEqual({ n: 'share', s: 30, c: [{ n: '(30 more)', s: 30, more: 30 }] });
  expect(usr?.c?.find((c) => c.n === 'bin')).toEqual({
    n: 'bin',
    s: 5000,
    c: [{ n: 'big', s: 5000 }],
  });
  const capped = sizeTree(t, 'img:1', { minShare: 0, maxChildren: 4 });
  const cshare = capped.c?.[0]?.c?.find((c) => c.n === 'share');
  expect(cshare?.c).toHaveLength(5);
  expect(cshare?.c?.[4]).toEqual({ n: '(26 more)', s: 26, more: 26 });
  // Every directory's children add up to it, lumps included.
  const check = (n: NonNullable<typeof root>): void => {
    if (n.c === undefined) return;
    expect(n.c.reduce((s, c) => s + c.s, 0)).toBe(n.s);
    n.c.forEach(check);
  };
  check(root);
  check(capped);
});

test('a captured file keeps the data of the top layer that holds it, and goes with a whiteout', async () => {
  const t = await treeOf(
    [{ path: 'var/lib/dpkg/status', body: `old ${body(700)}` }],
    [{ path: 'var/lib/dpkg/status', body: `new ${body(900)}` }],
  );
  expect(t.content('var/lib/dpkg/status')?.toString()).toBe(`new ${body(900)}`);
  expect(t.content('var/lib/dpkg/other')).toBeUndefined();
  const gone = await treeOf(
    [{ path: 'var/lib/dpkg/status', body: 'x' }],
    [{ path: 'var/lib/dpkg/.wh.status' }],
  );
  expect(gone.content('var/lib/dpkg/status')).toBeUndefined();
});

test('packageRows: Installed-Size in bytes, and the last layer that added the version installed', () => {
  const pkgs: DebianPackage[] = [
    { name: 'curl', version: '7.88', architecture: 'amd64', source: 'curl' },
    {
      name: 'libc6',
      version: '2.36-9',
      architecture: 'amd64',
      source: 'glibc',
      sourceVersion: '2.36-9+b1',
    },
    { name: 'tzdata', version: '2024a', architecture: 'all', source: 'tzdata' },
  ];
  const status = [
    'Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88\nInstalled-Size: 500\n',
    'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\nInstalled-Size: 12000\n',
    'Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a\n',
  ].join('\n');
  // Records of layers 0 and 2 (layer 1 has none); curl was added at 7.80 by 0, then upgraded by 2.
  const rows = packageRows(
    pkgs,
    [0, 2],
    [['curl=7.80', 'libc6=2.36-9', 'tzdata=2024a'], ['curl=7.88']],
    status,
    // An older curl's licence is not the installed one's.
    new Map([
      ['curl:amd64=7.88', 'curl'],
      ['curl:amd64=7.80', 'MIT'],
    ]),
  );
  expect(rows).toEqual([
    {
      name: 'curl',
      version: '7.88',
      architecture: 'amd64',
      source: 'curl',
      licence: 'curl',
      size: 512000,
      layer: 2,
    },
    {
      name: 'libc6',
      version: '2.36-9',
      architecture: 'amd64',
      source: 'glibc (2.36-9+b1)',
      size: 12000 * 1024,
      layer: 0,
    },
    { name: 'tzdata', version: '2024a', architecture: 'all', source: 'tzdata', layer: 0 },
  ]);
  expect(rows.filter((r) => r.licence === undefined).map((r) => r.name)).toEqual([
    'libc6',
    'tzdata',
  ]);
});

const HOSTILE = [
  '</script><script>alert(1)</script>',
  '<!-- <script>',
  '</SCRIPT >',
  '<img src=x onerror=alert(2)>',
  'a&b "q" \'s\'',
  'line\u2028sep\u2029para',
];

test('scriptJson: no character that HTML reads inside a script element, and JSON.parse gives it back', () => {
  const value = { names: HOSTILE, nested: { [HOSTILE[0] as string]: HOSTILE } };
  const s = scriptJson(value);
  expect(s).not.toMatch(/[<>&\u2028\u2029]/);
  expect(JSON.parse(s)).toEqual(value);
});

function hostileReport(): ReportData {
  const name = HOSTILE[0] as string;
  return {
    generated: '2024-01-01T00:00:00.000Z',
    image: {
      ref: name,
      digest: `sha256:${'a'.repeat(64)}` as Digest,
      platform: 'linux/amd64',
      name,
      features: HOSTILE,
      baseChain: [],
      exclusions: [],
      labels: { [name]: name },
    },
    layers: [
      {
        index: 0,
        digest: `sha256:${'b'.repeat(64)}` as Digest,
        size: 10,
        mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
        createdBy: name,
        packagesAdded: 0,
        packagesRemoved: 0,
      },
    ],
    tree: { n: name, s: 10, c: HOSTILE.map((n) => ({ n, s: 1 })) },
    packages: [],
  };
}

test('renderReport: hostile names stay data: the JSON element holds them all, and nothing else is opened', () => {
  const data = hostileReport();
  const html = renderReport(data);
  const open = '<script type="application/json" id="report-data">';
  const start = html.indexOf(open) + open.length;
  const end = html.indexOf('</script>', start);
  expect(JSON.parse(html.slice(start, end))).toEqual(data);
  // The title is the only place the page writes a name itself, escaped.
  expect(html).toContain(
    '<title>Strata report: &#60;/script&#62;&#60;script&#62;alert(1)&#60;/script&#62;</title>',
  );
  // Three script elements (data, ECharts, the page) and no others.
  expect(html.match(/<script\b/gi)).toHaveLength(3);
  expect(html.match(/<\/script/gi)).toHaveLength(3);
  expect(html).not.toMatch(/\bsrc=["']?https?:/i);
  expect(html).toContain("default-src 'none'");
});

describe('reportData of images in a store', () => {
  let tmp: string;
  let store: Store;
  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-report-'));
    store = await Store.open(path.join(tmp, 'store'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  async function put(tars: Buffer[], strata: TemplateMetadata): Promise<Descriptor> {
    const layers: Descriptor[] = [];
    for (const tar of tars) {
      const info = await store.putBytes(gzipSync(tar));
      layers.push({ mediaType: MediaTypes.layerGzip, digest: info.digest, size: info.size });
    }
    const config: ImageConfig = {
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) },
      strata,
    };
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config: await store.putJson(config, MediaTypes.imageConfig),
      layers,
    };
    return store.putJson(manifest, MediaTypes.imageManifest);
  }

  const status = (pkgs: [string, number][]) =>
    pkgs
      .map(
        ([p, kib]) =>
          `Package: ${p}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\nInstalled-Size: ${kib}\n`,
      )
      .join('\n');
  const pkg = (name: string) => ({ name, version: '1', architecture: 'amd64', source: name });
  const meta = (
    name: string,
    packages: string[],
    layers: TemplateMetadata['layers'],
    baseChain?: TemplateMetadata['baseChain'],
  ): TemplateMetadata => ({
    schemaVersion: 1,
    name,
    created: '2024-01-01T00:00:00Z',
    features: ['minbase'],
    architecture: 'amd64',
    distribution: { prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    packages: packages.map(pkg),
    exclusions: [],
    layers,
    ...(baseChain ? { baseChain } : {}),
  });

  test('layers by what made them, the tree, packages with size and layer, and the diff', async () => {
    const base = tarOf([
      { path: 'usr/bin/sh', body: body(4000) },
      { path: 'var/lib/dpkg/status', body: status([['dash', 100]]) },
    ]);
    const top = tarOf([
      { path: 'usr/bin/curl', body: body(2000) },
      {
        path: 'var/lib/dpkg/status',
        body: status([
          ['dash', 100],
          ['curl', 500],
        ]),
      },
    ]);
    const layer0 = { diffId: sha256(base), createdBy: 'BOOTSTRAP', packagesAdded: ['dash=1'] };
    const a = await put([base], meta('base', ['dash'], [layer0]));
    const b = await put(
      [base, top],
      meta(
        'derived',
        ['curl', 'dash'],
        [layer0, { diffId: sha256(top), createdBy: 'INSTALL curl', packagesAdded: ['curl=1'] }],
        [{ name: 'base', ref: 'base:v1', digest: a.digest }],
      ),
    );
    const side = (ref: string, d: Descriptor) => ({ ref, image: store.image(d) });
    const r = await reportData(side('derived:1', b), {
      against: side('base:v1', a),
      now: new Date('2024-02-02T00:00:00Z'),
    });
    expect(r.generated).toBe('2024-02-02T00:00:00.000Z');
    expect(r.image).toMatchObject({
      ref: 'derived:1',
      digest: b.digest,
      platform: 'linux/amd64',
      name: 'derived',
      distribution: 'Debian GNU/Linux 12 (bookworm)',
      baseChain: [{ ref: 'base:v1', digest: a.digest }],
    });
    expect(r.layers.map((l) => [l.index, l.createdBy, l.packagesAdded])).toEqual([
      [0, 'BOOTSTRAP', 1],
      [1, 'INSTALL curl', 1],
    ]);
    expect(r.packages.map((p) => [p.name, p.size, p.layer])).toEqual([
      ['curl', 500 * 1024, 1],
      ['dash', 100 * 1024, 0],
    ]);
    const usr = r.tree.c?.find((c) => c.n === 'usr');
    expect(usr?.c?.[0]?.c?.map((c) => [c.n, c.s])).toEqual([
      ['sh', 4000],
      ['curl', 2000],
    ]);
    expect(r.diff?.packages.added.map((p) => p.name)).toEqual(['curl']);
    expect(r.diff?.files.added.map((f) => f.path)).toEqual(['usr/bin/curl']);
    expect(r.diff?.sizes.depth).toBe(2);
    // Without --against, the same image reads to the same tree and table, and no diff.
    const alone = await reportData(side('derived:1', b));
    expect(alone.tree).toEqual(r.tree);
    expect(alone.packages).toEqual(r.packages);
    expect(alone.diff).toBeUndefined();
  });
});
