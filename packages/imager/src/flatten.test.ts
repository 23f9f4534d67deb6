import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  Descriptor,
  ImageConfig,
  ImageManifest,
  MediaTypes,
  sha256,
  UnsafeEntryError,
} from '@strata/oci';
import { readTar, TarHeader } from '@strata/layer';
import { Store } from '@strata/store';
import { comparePaths } from './merge';
import { checkFlattenDir, flattenToTar } from './flatten';
import { createBundle, describeBundle } from './bundle';
import { TarSpec, tarOf } from '@strata/layer/testing';

async function putImage(store: Store, tag: string, layers: Buffer[]): Promise<Descriptor> {
  const descs: Descriptor[] = [];
  for (const tar of layers) {
    const blob = gzipSync(tar);
    const info = await store.putBytes(blob);
    descs.push({ mediaType: MediaTypes.layerGzip, digest: info.digest, size: info.size });
  }
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: layers.map((t) => sha256(t)) },
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config: await store.putJson(config, MediaTypes.imageConfig),
    layers: descs,
  };
  const d = await store.putJson(manifest, MediaTypes.imageManifest);
  await store.tag(tag, d);
  return d;
}

async function listTar(file: string): Promise<{ h: TarHeader; body: string }[]> {
  const out: { h: TarHeader; body: string }[] = [];
  for await (const e of readTar(fs.createReadStream(file))) {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(Buffer.from(c));
    out.push({ h: e.header, body: Buffer.concat(chunks).toString() });
  }
  return out;
}

let tmp: string;
let store: Store;
beforeEach(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-flatten-'));
  store = await Store.open(path.join(tmp, 'store'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const base: TarSpec[] = [
  { path: 'bin/' },
  { path: 'bin/sh', body: 'shell' },
  { path: 'etc/' },
  { path: 'etc/gone', body: 'old' },
  { path: 'etc/hosts', body: 'lower hosts' },
  { path: 'opt/' },
  { path: 'opt/a/' },
  { path: 'opt/a/x', body: 'x' },
  { path: 'opt/a/y', body: 'y' },
  { path: 'usr/' },
  { path: 'usr/lib/' },
  { path: 'usr/lib/big', body: 'B'.repeat(5000) },
  { path: 'var/' },
  { path: 'var/lib/' },
  { path: 'var/lib/d/' },
  { path: 'var/lib/d/file', body: 'in d' },
];

describe('comparePaths', () => {
  it('orders a directory before its subtree and the subtree before siblings', () => {
    const names = ['a-b', 'a/x', 'a', 'a/x/y', 'b', 'a.c'];
    expect(names.sort(comparePaths)).toEqual(['a', 'a/x', 'a/x/y', 'a-b', 'a.c', 'b']);
  });
});

describe('flattenToTar', () => {
  it('names its scratch by its pid, and removes what a killed flatten left next to the output', async () => {
    await putImage(store, 'img:1', [tarOf(base)]);
    const dead = Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
    const out = path.join(tmp, 'out.tar');
    // What a flatten killed with SIGKILL leaves: its scratch of uncompressed layers and its output.
    const deadScratch = path.join(tmp, `.strata-flatten-${dead}-AbC123`);
    fs.mkdirSync(deadScratch);
    fs.writeFileSync(path.join(deadScratch, 'layer-0.tar'), 'x'.repeat(4096));
    const deadOutput = path.join(tmp, `.out.tar.${dead}.tmp`);
    fs.writeFileSync(deadOutput, 'partial');
    // A running flatten's, and what only looks like one, stay.
    const liveScratch = path.join(tmp, `.strata-flatten-${process.ppid}-XyZ789`);
    fs.mkdirSync(liveScratch);
    const other = path.join(tmp, `.other.tar.${dead}.tmp`);
    fs.writeFileSync(other, 'not ours to judge');
    let during: string[] = [];
    await flattenToTar(store, 'img:1', out, {
      onProgress: () => {
        if (during.length === 0)
          during = fs.readdirSync(tmp).filter((n) => n.startsWith('.strata-flatten-'));
      },
    });
    expect(during.filter((n) => n !== path.basename(liveScratch))).toEqual([
      expect.stringMatching(new RegExp(`^\\.strata-flatten-${process.pid}-\\w{6}$`)),
    ]);
    expect(fs.existsSync(deadScratch)).toBe(false);
    expect(fs.existsSync(deadOutput)).toBe(false);
    expect(fs.existsSync(liveScratch)).toBe(true);
    expect(fs.existsSync(other)).toBe(true);
  });

  it('applies whiteouts, opaque dirs and replacements top-down, sorted and deterministic', async () => {
    await putImage(store, 'img:1', [
      tarOf(base),
      tarOf([
        { path: 'etc/', mode: 0o750 },
        { path: 'etc/.wh.gone' },
        { path: 'etc/hosts', body: 'upper hosts' },
        { path: 'opt/a/' },
        { path: 'opt/a/.wh..wh..opq' },
        { path: 'opt/a/z', body: 'z' },
        { path: 'var/lib/d', body: 'now a file' },
      ]),
      tarOf([
        { path: 'bin/', uid: 5 },
        { path: 'bin/new', body: 'n', xattrs: { 'user.k': 'v' } },
      ]),
    ]);
    const out = path.join(tmp, 'out.tar');
    const r = await flattenToTar(store, 'img:1', out);
    const entries = await listTar(out);
    expect(entries.map((e) => e.h.path)).toEqual([
      'bin/',
      'bin/new',
      'bin/sh',
      'etc/',
      'etc/hosts',
      'opt/',
      'opt/a/',
      'opt/a/z',
      'usr/',
      'usr/lib/',
      'usr/lib/big',
      'var/',
      'var/lib/',
      'var/lib/d',
    ]);
    const by = new Map(entries.map((e) => [e.h.path, e]));
    expect(by.get('etc/hosts')?.body).toBe('upper hosts');
    expect(by.get('etc/')?.h.mode).toBe(0o750);
    expect(by.get('bin/')?.h.uid).toBe(5);
    expect(by.get('bin/new')?.h.xattrs['user.k']?.toString()).toBe('v');
    expect(by.get('usr/lib/big')?.body).toBe('B'.repeat(5000));
    expect(by.get('var/lib/d')?.body).toBe('now a file');
    const again = path.join(tmp, 'again.tar');
    const scratch = fs.mkdtempSync(path.join(tmp, 'scratch-'));
    const r2 = await flattenToTar(store, 'img:1', again, { tmpDir: scratch });
    expect(fs.readdirSync(scratch)).toEqual([]); // removed at the end
    // ...and it is where the scratch goes: a tmpDir that does not exist fails the flatten.
    await expect(
      flattenToTar(store, 'img:1', path.join(tmp, 'x.tar'), { tmpDir: path.join(tmp, 'none') }),
    ).rejects.toThrow(/ENOENT/);
    expect(fs.readFileSync(again).equals(fs.readFileSync(out))).toBe(true);
    expect(r2.diffId).toBe(r.diffId);
    expect(sha256(fs.readFileSync(out))).toBe(r.diffId);
  });

  it('gives the same bytes for layers whose entries are not in path order', async () => {
    const upper: TarSpec[] = [
      { path: 'etc/hosts', body: 'upper' },
      { path: 'bin/zz', body: 'zz' },
    ];
    await putImage(store, 'sorted:1', [tarOf(base), tarOf(upper)]);
    await putImage(store, 'shuffled:1', [tarOf([...base].reverse()), tarOf([...upper].reverse())]);
    const a = path.join(tmp, 'a.tar');
    const b = path.join(tmp, 'b.tar');
    await flattenToTar(store, 'sorted:1', a);
    await flattenToTar(store, 'shuffled:1', b);
    expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
  });

  it('reports write progress against the exact size of the tar, never past it', async () => {
    // Bodies that need padding, a path too long for ustar and an xattr (PAX headers), and a
    // hardlink: the parts of a tar that a count of bodies and one block per entry misses.
    const long = `opt/${'deep/'.repeat(30)}name`;
    await putImage(store, 'progress:1', [
      tarOf([
        ...base,
        { path: long, body: 'z'.repeat(700) },
        { path: 'srv/', xattrs: { 'user.k': 'v'.repeat(300) } },
      ]),
    ]);
    const out = path.join(tmp, 'p.tar');
    const seen: { bytes: number; total?: number }[] = [];
    const r = await flattenToTar(store, 'progress:1', out, {
      onProgress: (p) => {
        if (p.phase === 'write') seen.push({ bytes: p.bytes, total: p.total });
      },
    });
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) {
      expect(s.total).toBe(r.tarBytes);
      expect(s.bytes).toBeLessThanOrEqual(r.tarBytes);
    }
    expect(seen[seen.length - 1]!.bytes).toBe(r.tarBytes);
    expect(fs.statSync(out).size).toBe(r.tarBytes);
  });

  it('writes gzip and zstd', async () => {
    await putImage(store, 'img:1', [tarOf(base)]);
    const plain = path.join(tmp, 'o.tar');
    const r = await flattenToTar(store, 'img:1', plain);
    for (const name of ['o.tar.gz', 'o.tar.zst']) {
      const f = path.join(tmp, name);
      const rz = await flattenToTar(store, 'img:1', f);
      expect(rz.diffId).toBe(r.diffId);
      expect(fs.statSync(f).size).toBeLessThan(fs.statSync(plain).size);
    }
  });

  it('keeps hardlinks, and turns a link into the file when its target is whited out', async () => {
    await putImage(store, 'img:1', [
      tarOf([
        { path: 'a/' },
        { path: 'a/one', body: 'shared' },
        { path: 'a/two', type: 'link', link: 'a/one' },
        { path: 'a/zz', type: 'link', link: 'a/one' },
      ]),
      tarOf([{ path: 'a/.wh.one' }]),
    ]);
    const out = path.join(tmp, 'o.tar');
    await flattenToTar(store, 'img:1', out);
    const e = await listTar(out);
    expect(e.map((x) => [x.h.path, x.h.type, x.h.linkpath, x.body])).toEqual([
      ['a/', 'dir', '', ''],
      ['a/two', 'file', '', 'shared'],
      ['a/zz', 'link', 'a/two', ''],
    ]);
  });

  it.each([
    [[{ path: '../evil', body: 'x' }], /'\.\.' component/],
    [[{ path: '/abs', body: 'x' }], /absolute/],
    [[{ path: 'l', type: 'link', link: '../../etc/passwd' }] as TarSpec[], /hardlink target/],
    [[{ path: 'l', type: 'link', link: 'missing' }] as TarSpec[], /does not exist/],
    [
      [
        { path: 'opt', link: '/etc' },
        { path: 'opt/passwd', body: 'x' },
      ],
      /symlink/,
    ],
    [[{ path: 'bin/sh/x', body: 'x' }], /not a directory/],
  ])('refuses a hostile layer %#', async (upper, re) => {
    await putImage(store, 'img:1', [tarOf(base), tarOf(upper as TarSpec[])]);
    const out = path.join(tmp, 'o.tar');
    const p = flattenToTar(store, 'img:1', out);
    await expect(p).rejects.toBeInstanceOf(UnsafeEntryError);
    await expect(flattenToTar(store, 'img:1', out)).rejects.toThrow(re);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('.'))).toEqual([]); // no scratch left
  });

  it('refuses a write through a symlink planted by a lower layer', async () => {
    await putImage(store, 'img:1', [
      tarOf([...base, { path: 'link', link: '/etc' }]),
      tarOf([{ path: 'link/passwd', body: 'pwned' }]),
    ]);
    await expect(flattenToTar(store, 'img:1', path.join(tmp, 'o.tar'))).rejects.toThrow(
      /parent "link" is a symlink/,
    );
  });

  it('fails on a layer whose diffID does not match', async () => {
    const d = await putImage(store, 'img:1', [tarOf(base)]);
    const m = await store.readManifest(d);
    const cfg = await store.readConfig(m.config);
    cfg.rootfs.diff_ids = [sha256('something else')];
    const bad: ImageManifest = { ...m, config: await store.putJson(cfg, MediaTypes.imageConfig) };
    await store.tag('bad:1', await store.putJson(bad, MediaTypes.imageManifest));
    await expect(flattenToTar(store, 'bad:1', path.join(tmp, 'o.tar'))).rejects.toThrow(
      /digest mismatch/,
    );
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('.'))).toEqual([]); // no scratch left
  });
});

describe('bundles', () => {
  it('resolves the rootfs and buildchroot of a bundle and reports shared layers', async () => {
    const baseTar = tarOf(base);
    await putImage(store, 'rootfs:1', [baseTar, tarOf([{ path: 'etc/app', body: 'app' }])]);
    await putImage(store, 'chroot:1', [
      baseTar,
      tarOf([
        { path: 'usr/bin/', type: 'dir' },
        { path: 'usr/bin/gcc', body: 'cc' },
      ]),
    ]);
    await createBundle(store, 'bundle:1', { rootfs: 'rootfs:1', buildchroot: 'chroot:1' });
    const info = await describeBundle(store, 'bundle:1');
    expect(info.images.map((i) => i.role)).toEqual(['rootfs', 'buildchroot']);
    expect(info.shared).toHaveLength(1);
    const a = path.join(tmp, 'r.tar');
    const b = path.join(tmp, 'b.tar');
    await flattenToTar(store, 'bundle:1', a);
    await flattenToTar(store, 'bundle:1', b, { role: 'buildchroot' });
    expect((await listTar(a)).some((e) => e.h.path === 'etc/app')).toBe(true);
    expect((await listTar(b)).some((e) => e.h.path === 'usr/bin/gcc')).toBe(true);
  });
});

describe('checkFlattenDir', () => {
  it('refuses a --dir that is not empty or not a directory, writing nothing', async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-flatdir-'));
    try {
      if (process.geteuid?.() !== 0) {
        await expect(checkFlattenDir(base)).rejects.toThrow('needs root');
        return;
      }
      const missing = path.join(base, 'new', 'dir');
      await checkFlattenDir(missing);
      expect(fs.existsSync(path.join(base, 'new'))).toBe(false);
      await checkFlattenDir(base);
      fs.writeFileSync(path.join(base, 'f'), 'x');
      await expect(checkFlattenDir(base, `--dir ${base}`)).rejects.toMatchObject({
        code: 'ALREADY_EXISTS',
        message: `--dir ${base} is not empty`,
      });
      await expect(checkFlattenDir(path.join(base, 'f'), '--dir f')).rejects.toThrow(
        '--dir f is not a directory',
      );
    } finally {
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
