/**
 * `strata diff` on real templates: the minbase base and a template built FROM it with three
 * small packages installed, compared from the store, from a registry on loopback and from a
 * `.tmpl.img` file. umoci, an independent OCI implementation, unpacks the derived image to check
 * what diff says of one file.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Descriptor, MediaTypes, sha256, validateDiffReport } from '@strata/oci';
import { encodeTarHeader, TAR_END, tarPadding } from '@strata/layer';
import { Store } from '@strata/store';
import { BASE_ARCHIVE, buildJson, storeWithBase, umociUnpack } from './fixtures/build/harness';
import { SLOW, isOneLineError, show, strata, strataOk, tmpDir } from './helpers';
import { Registry, startRegistry } from './registry-fixtures';

jest.setTimeout(SLOW);

const PACKAGES = ['runit-helper', 'sensible-utils', 'ucf'];

let work: string;
let store: string;
let registry: Registry | undefined;

beforeAll(async () => {
  const s = await storeWithBase();
  work = s.work;
  store = s.store;
  const ctx = path.join(work, 'ctx');
  fs.mkdirSync(ctx);
  fs.writeFileSync(path.join(ctx, 'Stratafile'), `FROM base:v1\nINSTALL ${PACKAGES.join(' ')}\n`);
  // gzip layers, so that umoci can read them.
  await buildJson(
    ['--compression', 'gzip', '--apt-sources', s.sources, '-t', 'derived:1', ctx],
    store,
  );
});

afterAll(async () => {
  await registry?.stop();
});

interface Report {
  identical: boolean;
  packages: { added: { name: string }[]; removed: unknown[]; changed: unknown[] };
  files: {
    added: { path: string; type: string; size: number; digest?: string }[];
    removed: unknown[];
  };
  sizes: { total: { delta: number }; dirs: { path: string; delta: number }[] };
  metadata: { baseChain?: { new: { ref: string }[] } };
}

test('base to derived: the three packages and their files are added, and the exit code is 1', async () => {
  const r = await strata(['diff', 'base:v1', 'derived:1'], { store });
  expect(r.code).toBe(1);
  const lines = r.stdout.split('\n');
  expect(lines).toContain('Packages: 3 added, 0 removed, 0 changed');
  for (const p of PACKAGES) expect(lines.some((l) => l.startsWith(`  + ${p} `))).toBe(true);
  expect(lines.some((l) => /^ {2}\+ usr\/bin\/sensible-editor {2}\d/.test(l))).toBe(true);
  expect(lines.some((l) => l.startsWith('  ~ var/lib/dpkg/status  content'))).toBe(true);
  expect(lines).toContain(`          -> base:v1@${lines[0]?.split(' ')[2]}`);
});

test('--json: schema-valid, and what it says of a file is what umoci unpacks', async () => {
  const r = await strata(['--json', 'diff', '--depth', '3', 'base:v1', 'derived:1'], { store });
  expect(r.code).toBe(1);
  const doc = JSON.parse(r.stdout) as Report;
  expect(validateDiffReport(doc).ok).toBe(true);
  expect(doc.packages.added.map((p) => p.name)).toEqual(PACKAGES);
  expect(doc.packages.removed).toEqual([]);
  const editor = doc.files.added.find((f) => f.path === 'usr/bin/sensible-editor');
  const rootfs = await umociUnpack(store, 'derived:1', path.join(work, 'umoci'));
  const data = fs.readFileSync(path.join(rootfs, 'usr/bin/sensible-editor'));
  expect(editor).toMatchObject({
    type: 'file',
    size: data.length,
    digest: `sha256:${createHash('sha256').update(data).digest('hex')}`,
  });
  expect(doc.sizes.total.delta).toBeGreaterThan(0);
  expect(doc.sizes.dirs.map((d) => d.path)).toEqual(
    expect.arrayContaining(['usr', 'usr/bin', 'usr/share/doc']),
  );
  expect(doc.metadata.baseChain?.new.map((b) => b.ref)).toEqual(['base:v1']);
});

test('identical images exit 0: one tag twice, and the store against the .tmpl.img it was loaded from', async () => {
  const same = await strata(['diff', 'derived:1', 'derived:1'], { store });
  expect(same.code).toBe(0);
  expect(same.stdout).toMatch(/^no differences$/m);
  const file = await strata(['--json', 'diff', BASE_ARCHIVE, 'base:v1'], { store });
  expect(file.code).toBe(0);
  expect((JSON.parse(file.stdout) as Report).identical).toBe(true);
});

test('a registry reference against a .tmpl.img, nothing stored or tagged', async () => {
  registry = await startRegistry();
  const remote = `127.0.0.1:${registry.port}/acme/base:v1`;
  await strataOk(['push', 'base:v1', remote], { store });
  const saved = path.join(work, 'derived.tmpl.img');
  await strataOk(['save', 'derived:1', '-o', saved], { store });
  const tags = (await strataOk(['ls'], { store })).stdout;
  const r = await strata(['--json', 'diff', remote, saved], { store });
  expect(r.code).toBe(1);
  const doc = JSON.parse(r.stdout) as Report;
  expect(validateDiffReport(doc).ok).toBe(true);
  expect(doc.packages.added.map((p) => p.name)).toEqual(PACKAGES);
  expect(doc.files.added.some((f) => f.path === 'usr/bin/sensible-editor')).toBe(true);
  expect((await strataOk(['ls'], { store })).stdout).toBe(tags);
});

test('what cannot be compared exits 2 with one line', async () => {
  const r = await strata(['diff', 'base:v1', 'no-such:1'], { store });
  expect(r.code).toBe(2);
  expect(isOneLineError(r.stderr)).toBe(true);
  expect(r.stdout).toBe('');
  const missing = await strata(['diff', 'base:v1', path.join(work, 'none.tmpl.img')], { store });
  expect({ code: missing.code, err: missing.stderr }).toMatchObject({ code: 2 });
  expect(show(missing)).toMatch(/does not exist/);
});

/** One image of one file, `etc/arch`, for `architecture`. */
async function archImage(st: Store, architecture: string, body: string): Promise<Descriptor> {
  const data = Buffer.from(body);
  const tar = Buffer.concat([
    encodeTarHeader({
      path: 'etc/arch',
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: data.length,
      mtime: 0,
      linkpath: '',
      devmajor: 0,
      devminor: 0,
      xattrs: {},
    }),
    data,
    Buffer.alloc(tarPadding(data.length)),
    TAR_END,
  ]);
  const blob = await st.putBytes(gzipSync(tar));
  const config = await st.putJson(
    { architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tar)] } },
    MediaTypes.imageConfig,
  );
  const m = await st.putJson(
    {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config,
      layers: [{ mediaType: MediaTypes.layerGzip, digest: blob.digest, size: blob.size }],
    },
    MediaTypes.imageManifest,
  );
  return { ...m, platform: { architecture, os: 'linux' } };
}

test('--platform picks the image of a multi-platform template on both sides', async () => {
  const multi = tmpDir('strata-diff-multi-');
  const st = await Store.open(multi);
  for (const [tag, arm] of [
    ['multi:1', 'arm64 v1'],
    ['multi:2', 'arm64 v2'],
  ] as const) {
    const manifests = [await archImage(st, 'amd64', 'amd64'), await archImage(st, 'arm64', arm)];
    const index = { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests };
    await st.tag(tag, await st.putJson(index, MediaTypes.imageIndex));
  }
  const none = await strata(['diff', 'multi:1', 'multi:2'], { store: multi });
  expect(none.code).toBe(2);
  expect(none.stderr).toMatch(/linux\/amd64/);
  const amd = await strata(['diff', '--platform', 'linux/amd64', 'multi:1', 'multi:2'], {
    store: multi,
  });
  expect({ code: amd.code, out: amd.stdout }).toMatchObject({ code: 0 });
  const arm = await strata(['diff', '--platform', 'linux/arm64', 'multi:1', 'multi:2'], {
    store: multi,
  });
  expect(arm.code).toBe(1);
  expect(arm.stdout).toMatch(/^ {2}~ etc\/arch {2}content$/m);
});

test('without --platform, a multi-platform side is compared on the platform of a single-platform other side', async () => {
  const multi = tmpDir('strata-diff-like-');
  const st = await Store.open(multi);
  const manifests = [await archImage(st, 'amd64', 'amd64'), await archImage(st, 'arm64', 'arm v1')];
  const index = { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests };
  await st.tag('release:1', await st.putJson(index, MediaTypes.imageIndex));
  await st.tag('runner:2', await archImage(st, 'arm64', 'arm v2'));
  for (const [a, b] of [
    ['release:1', 'runner:2'],
    ['runner:2', 'release:1'],
  ]) {
    const r = await strata(['diff', a as string, b as string], { store: multi });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^--- \S+ \S+ \(linux\/arm64\)$/m);
    expect(r.stdout).toMatch(/^\+\+\+ \S+ \S+ \(linux\/arm64\)$/m);
    expect(r.stdout).toMatch(/^ {2}~ etc\/arch {2}content$/m);
  }
});
