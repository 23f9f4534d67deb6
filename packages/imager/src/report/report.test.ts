import { Readable } from 'node:stream';
import type { DebianPackage, Digest } from '@strata/oci';
import { FileTree } from '../tree';
import { TarSpec, tarOf } from '../testing';
import { packageRows, ReportData, sizeTree } from './model';
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
  );
  expect(rows).toEqual([
    {
      name: 'curl',
      version: '7.88',
      architecture: 'amd64',
      source: 'curl',
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
  expect(rows.every((r) => r.licence === undefined)).toBe(true);
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
