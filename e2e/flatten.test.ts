/**
 * `strata flatten` checked against umoci: a three-layer gzip image (a real minbase template plus
 * two hand-made layers with whiteouts, an opaque directory, replacements, hardlinks, xattrs and
 * owners) is flattened by Strata to a tar (extracted with GNU tar) and to a directory, and
 * unpacked by `umoci unpack`; the trees must be identical. Hostile layers are refused.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  cleanupTmp,
  diffTrees,
  isOneLineError,
  makeTar,
  minbaseRootfs,
  readIndex,
  readBlobJson,
  runOk,
  SLOW,
  startStrata,
  snapshotTree,
  strata,
  strataOk,
  tmpDir,
  type Descriptor,
  type Tree,
} from './helpers';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Manifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}

function putBlob(store: string, data: Buffer, mediaType: string): Descriptor {
  const digest = sha(data);
  fs.writeFileSync(path.join(store, 'blobs', 'sha256', digest.slice(7)), data);
  return { mediaType, digest, size: data.length };
}

/** Append gzip layers (given as tars) to the image `from` and tag the result `to`, by hand. */
function appendLayers(store: string, from: string, to: string, tars: Buffer[]): void {
  const index = readIndex(store) as { schemaVersion?: number; manifests: Descriptor[] };
  const d = index.manifests.find(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] === from,
  );
  if (!d) throw new Error(`no ${from} in ${store}`);
  const m = readBlobJson<Manifest>(store, d.digest);
  const cfg = readBlobJson<{ rootfs: { diff_ids: string[] }; history?: unknown[] }>(
    store,
    m.config.digest,
  );
  for (const tar of tars) {
    m.layers.push(putBlob(store, gzipSync(tar), 'application/vnd.oci.image.layer.v1.tar+gzip'));
    cfg.rootfs.diff_ids.push(sha(tar));
  }
  delete cfg.history;
  m.config = putBlob(
    store,
    Buffer.from(JSON.stringify(cfg)),
    'application/vnd.oci.image.config.v1+json',
  );
  const md = putBlob(store, Buffer.from(JSON.stringify(m)), m.mediaType);
  md.annotations = { 'org.opencontainers.image.ref.name': to };
  index.manifests.push(md);
  fs.writeFileSync(path.join(store, 'index.json'), JSON.stringify(index));
}

/** A layer made by GNU tar from a staging directory (which may hold .wh.* files). */
async function gnuLayer(dir: string): Promise<Buffer> {
  const out = `${dir}.tar`;
  await runOk('tar', [
    '--format=pax',
    '--numeric-owner',
    '--xattrs',
    '--xattrs-include=*',
    '--sort=name',
    '-C',
    dir,
    '-cf',
    out,
    '.',
  ]);
  return fs.readFileSync(out);
}

function write(root: string, rel: string, content: string, mode = 0o644): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), content);
  fs.chmodSync(path.join(root, rel), mode);
}

async function umociTree(store: string, tag: string, work: string): Promise<Tree> {
  const bundle = path.join(work, `umoci-${tag.replace(/[:/]/g, '_')}`);
  await runOk('umoci', ['unpack', '--image', `${store}:${tag}`, bundle]);
  const t = await snapshotTree(path.join(bundle, 'rootfs'));
  t.delete('');
  return t;
}

let work: string;
let store: string;

beforeAll(async () => {
  const fx = await minbaseRootfs();
  work = tmpDir('strata-flatten-e2e-');
  store = path.join(work, 'store');
  await strataOk(
    ['template', 'create', fx.rootfs, '-t', 'base:1', '--name', 'base', '--compression', 'gzip'],
    { store },
  );
  // Layer 2: deletions, an opaque dir, replacements, new files with owners, xattrs, hardlinks.
  const l2 = path.join(work, 'l2');
  fs.mkdirSync(l2);
  write(l2, 'etc/.wh.debian_version', '');
  write(l2, 'usr/share/doc/.wh..wh..opq', '');
  write(l2, 'usr/share/doc/only-this', 'the opaque dir keeps only me\n');
  write(l2, 'etc/os-release.d/x', 'a new dir under etc\n');
  write(l2, 'usr/bin/.wh.perl', '');
  write(l2, 'opt/app/bin/tool', '#!/bin/sh\necho tool\n', 0o4755);
  fs.linkSync(path.join(l2, 'opt/app/bin/tool'), path.join(l2, 'opt/app/bin/tool-alias'));
  write(l2, 'opt/app/data', 'owned by 1234:5678\n', 0o640);
  fs.chownSync(path.join(l2, 'opt/app/data'), 1234, 5678);
  await runOk('setfattr', ['-n', 'user.layer', '-v', 'two', path.join(l2, 'opt/app/data')]);
  fs.symlinkSync('bin/tool', path.join(l2, 'opt/app/run'));
  fs.mkdirSync(path.join(l2, 'var/lib/app'), { recursive: true });
  fs.chmodSync(path.join(l2, 'var/lib/app'), 0o1777);
  // Layer 3: replace a file from layer 2 with a directory, delete a dir from the base, re-add.
  const l3 = path.join(work, 'l3');
  fs.mkdirSync(l3);
  write(l3, 'opt/app/.wh.data', '');
  write(l3, 'opt/app/data/inside', 'data is a directory now\n');
  write(l3, 'var/.wh.cache', '');
  write(l3, 'etc/.wh.os-release.d', '');
  write(l3, 'etc/os-release.d', 'now a file\n');
  write(l3, 'usr/share/doc/only-this', 'changed in layer 3\n', 0o600);
  appendLayers(store, 'base:1', 'stack:1', [await gnuLayer(l2), await gnuLayer(l3)]);
}, SLOW);

afterAll(() => cleanupTmp());

describe('strata flatten', () => {
  it(
    'gives the same tree as umoci unpack, as a tar and as a directory',
    async () => {
      const expected = await umociTree(store, 'stack:1', work);
      expect(expected.get('opt/app/data/inside')?.type).toBe('file');
      expect(expected.has('etc/debian_version')).toBe(false);

      const out = path.join(work, 'flat.tar');
      const r = await strataOk(['flatten', 'stack:1', '--rootfs', out], { store });
      expect(r.stdout).toMatch(
        /^flattened stack:1 \(rootfs, 3 layers\) to .*flat\.tar: \d+ entries/,
      );
      const x = path.join(work, 'from-tar');
      fs.mkdirSync(x);
      await runOk('tar', [
        '--xattrs',
        '--xattrs-include=*',
        '--numeric-owner',
        '-xpf',
        out,
        '-C',
        x,
      ]);
      const fromTar = await snapshotTree(x);
      fromTar.delete('');
      expect(diffTrees(expected, fromTar)).toEqual([]);

      const d = path.join(work, 'from-dir');
      await strataOk(['flatten', 'stack:1', '--dir', d], { store });
      const fromDir = await snapshotTree(d);
      fromDir.delete('');
      expect(diffTrees(expected, fromDir)).toEqual([]);
    },
    SLOW,
  );

  it(
    'writes sorted entries and the same bytes every time, in every format',
    async () => {
      const a = path.join(work, 'a.tar');
      const b = path.join(work, 'b.tar');
      await strataOk(['flatten', 'stack:1', '--rootfs', a], { store });
      await strataOk(['flatten', 'stack:1', '--rootfs', b], { store });
      expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
      const list = (await runOk('tar', ['-tf', a])).stdout.trim().split('\n');
      const key = (s: string) => Buffer.from(s.replace(/\/$/, '').replace(/\//g, '\0'));
      const sorted = [...list].sort((p, q) => Buffer.compare(key(p), key(q)));
      expect(list).toEqual(sorted);
      for (const ext of ['tar.gz', 'tar.zst']) {
        const f1 = path.join(work, `c1.${ext}`);
        const f2 = path.join(work, `c2.${ext}`);
        await strataOk(['flatten', 'stack:1', '--rootfs', f1], { store });
        await strataOk(['flatten', 'stack:1', '--rootfs', f2], { store });
        expect(fs.readFileSync(f1).equals(fs.readFileSync(f2))).toBe(true);
        const plain = path.join(work, `c1-${ext}.tar`);
        await runOk('sh', ['-c', `${ext === 'tar.gz' ? 'gzip' : 'zstd'} -dc '${f1}' > '${plain}'`]);
        expect(fs.readFileSync(plain).equals(fs.readFileSync(a))).toBe(true);
      }
    },
    SLOW,
  );

  it.each([
    ['a .. component', [{ name: '../escape', type: 'file', content: 'x' }]],
    ['an absolute path', [{ name: '/abs', type: 'file', content: 'x' }]],
    [
      'a write through a symlink',
      [
        { name: 'evil', type: 'symlink', linkname: '/' },
        { name: 'evil/tmp/pwned', type: 'file', content: 'x' },
      ],
    ],
    ['a hardlink that climbs out', [{ name: 'h', type: 'hardlink', linkname: '../../etc/passwd' }]],
  ] as const)(
    'refuses a layer with %s, naming the entry, writing nothing',
    async (_what, entries) => {
      const tag = `hostile-${Math.random().toString(36).slice(2, 8)}:1`;
      appendLayers(store, 'base:1', tag, [makeTar(entries as never)]);
      const out = path.join(work, 'hostile.tar');
      const r = await strata(['flatten', tag, '--rootfs', out], { store });
      expect(r.code).toBe(1);
      expect(isOneLineError(r.stderr)).toBe(true);
      expect(r.stderr).toMatch(/refusing layer entry/);
      expect(fs.existsSync(out)).toBe(false);
      expect(fs.readdirSync(work).filter((n) => n.startsWith('.strata-flatten-'))).toEqual([]);
      const d = path.join(work, `hostile-dir-${tag.slice(8, 14)}`);
      const rd = await strata(['flatten', tag, '--dir', d], { store });
      expect(rd.code).toBe(1);
      expect(rd.stderr).toMatch(/refusing layer entry/);
      expect(fs.existsSync('/tmp/pwned')).toBe(false);
      // What it wrote before the refused entry (the base's tree, set-uid files, symlinks) goes:
      // a folder it made goes whole, a folder it found empty is left empty.
      expect(fs.existsSync(d)).toBe(false);
      fs.mkdirSync(d);
      const again = await strata(['flatten', tag, '--dir', d], { store });
      expect(again.code).toBe(1);
      expect(fs.readdirSync(d)).toEqual([]);
      const nested = path.join(work, `hostile-parent-${tag.slice(8, 14)}`);
      expect(
        (await strata(['flatten', tag, '--dir', path.join(nested, 'd')], { store })).code,
      ).toBe(1);
      expect(fs.existsSync(nested)).toBe(false);
    },
    SLOW,
  );

  it('checks --dir before it writes a tar: a --dir that is not empty leaves no --rootfs', async () => {
    const dir = tmpDir('strata-flatten-both-');
    const out = path.join(dir, 'out.tar');
    const d = path.join(dir, 'd');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'already-here'), 'x\n');
    const r = await strata(['flatten', 'stack:1', '--rootfs', out, '--dir', d], { store });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(isOneLineError(r.stderr)).toBe(true);
    expect(r.stderr).toContain(`--dir ${d} is not empty`);
    expect(fs.readdirSync(dir).sort()).toEqual(['d']);
    expect(fs.readdirSync(d)).toEqual(['already-here']);
  });

  /** Whether a flatten into `dir` has begun to spill its base layer (the largest) to scratch. */
  const spilling = (dir: string): boolean =>
    fs
      .readdirSync(dir)
      .filter((n) => n.startsWith('.strata-flatten-'))
      .some((n) => {
        const layer = path.join(dir, n, 'layer-0.tar');
        return fs.existsSync(layer) && fs.statSync(layer).size > 0;
      });
  /** The temp file of the flat tar, which the second pass writes. */
  const writing = (dir: string): boolean =>
    fs.readdirSync(dir).some((n) => /^\.flat\.tar\.zst\.\d+\.tmp$/.test(n));

  it.each([
    ['SIGINT', 'while it reads the layers', spilling],
    ['SIGTERM', 'while it writes the tar', writing],
  ] as const)(
    '%s %s: exit 130, one error line, no scratch dir or temp file left',
    async (signal, _when, ready) => {
      const dir = tmpDir('strata-flatten-intr-');
      const out = path.join(dir, 'flat.tar.zst');
      const run = startStrata(['--store', store, 'flatten', 'stack:1', '--rootfs', out]);
      while (run.running() && !ready(dir)) await new Promise((r) => setTimeout(r, 5));
      expect(run.running()).toBe(true); // the flatten was caught in the act
      run.child.kill(signal);
      expect(await run.exited).toEqual([130, null]);
      expect(run.output()).toEqual({ stdout: '', stderr: 'strata: error: flatten interrupted\n' });
      expect(fs.readdirSync(dir)).toEqual([]);
    },
    SLOW,
  );
});
