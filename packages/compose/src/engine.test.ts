import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Annotations,
  Digest,
  ImageConfig,
  ImageManifest,
  MediaTypes,
  PlatformSelector,
  formatPlatform,
  parsePlatform,
  sha256,
} from '@strata/oci';
import { Store } from '@strata/store';
import { createTemplate } from '@strata/template';
import { TarSpec, tarOf } from '@strata/layer/testing';
import { gzipSync } from 'node:zlib';
import { BuildEvent, build, failureReason } from './engine';
import { hostPlatform } from './platform';
import { debianArchitectureOf, ociPlatform } from '@strata/debian';

/**
 * FROM, as recorded in the base chain and compared with Stratafile.lock. The Stratafiles add
 * only FEATUREs, so nothing runs in a chroot.
 */
let dir: string;
let store: Store;
const PULLED = '127.0.0.1:5000/acme/platform:1.0';

async function template(tag: string, marker: string): Promise<void> {
  const root = path.join(dir, `root-${marker}`);
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\nVERSION_CODENAME=bookworm\n');
  fs.writeFileSync(path.join(root, 'etc/marker'), `${marker}\n`);
  await createTemplate(store, { source: { kind: 'dir', path: root }, tag, name: 'acme-platform' });
}

/** Tag `tag` as a pull from PULLED would have: the digest of `from`, and where it came from. */
async function tagAsPulled(tag: string, from: string): Promise<void> {
  const d = await store.resolve(from);
  await store.tag(tag, {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    annotations: { [Annotations.pulledFrom]: PULLED },
  });
}

function stratafile(name: string, lines: string[]): string {
  const file = path.join(dir, name, 'Stratafile');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function baseChainOf(tag: string) {
  const m = JSON.parse(
    (await store.readBlob((await store.resolve(tag)).digest)).toString('utf8'),
  ) as ImageManifest;
  const config = JSON.parse(
    (await store.readBlob(m.config.digest)).toString('utf8'),
  ) as ImageConfig;
  return config.strata?.baseChain;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-engine-from-'));
  store = await Store.open(path.join(dir, 'store'));
  await template('platform-one:1', 'one');
  await template('platform-two:1', 'two');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a base pulled under a local tag is recorded by the registry reference it came from', async () => {
  await tagAsPulled('acme/platform:1.0', 'platform-one:1');
  const file = stratafile('pulled', ['FROM acme/platform:1.0', 'FEATURE middleware']);
  await build(store, { file, tag: 'middleware:1', writeLock: false });
  expect(await baseChainOf('middleware:1')).toEqual([
    {
      name: 'acme-platform',
      ref: PULLED,
      digest: (await store.resolve('platform-one:1')).digest,
    },
  ]);
  // A tag made here, not by a pull, is recorded as FROM named it.
  const own = stratafile('own', ['FROM platform-one:1', 'FEATURE middleware']);
  await build(store, { file: own, tag: 'middleware:2', writeLock: false });
  expect((await baseChainOf('middleware:2'))?.map((b) => b.ref)).toEqual(['platform-one:1']);
});

test('a rebuild on a moved base says so, from the digest in Stratafile.lock to the new one', async () => {
  await store.tag('moving:1', await store.resolve('platform-one:1'));
  const file = stratafile('moving', ['FROM moving:1', 'FEATURE x']);
  const events: BuildEvent[] = [];
  const onEvent = (e: BuildEvent) => events.push(e);
  await build(store, { file, tag: 'x:1', onEvent });
  await build(store, { file, tag: 'x:1', onEvent });
  expect(events.filter((e) => e.type === 'base-moved')).toEqual([]);

  await store.tag('moving:1', await store.resolve('platform-two:1'));
  await build(store, { file, tag: 'x:1', onEvent });
  expect(events.filter((e) => e.type === 'base-moved')).toEqual([
    {
      type: 'base-moved',
      ref: 'moving:1',
      from: (await store.resolve('platform-one:1')).digest,
      to: (await store.resolve('platform-two:1')).digest,
      loc: expect.objectContaining({ line: 1, column: 1 }) as unknown,
    },
  ]);
  // The lock now has the new digest: the next build is quiet again.
  events.length = 0;
  await build(store, { file, tag: 'x:1', onEvent });
  expect(events.filter((e) => e.type === 'base-moved')).toEqual([]);
});

test("failureReason takes apt's first E: line, not the consequences after it", () => {
  const out = [
    'Reading package lists...',
    'E: Unable to locate package mosquito',
    'E: Sub-process /usr/bin/dpkg returned an error code (1)',
    '',
  ].join('\n');
  expect(failureReason(out)).toBe('E: Unable to locate package mosquito');
});

test('failureReason falls back to the last line a step printed', () => {
  expect(failureReason("chown: invalid user: 'appuser'\n\n")).toBe(
    "chown: invalid user: 'appuser'",
  );
  expect(failureReason('')).toBeUndefined();
});

test('a build attaches one SPDX and one CycloneDX SBOM to its image, and a rebuild keeps them', async () => {
  const file = stratafile('sboms', ['FROM platform-one:1', 'FEATURE sbom']);
  await build(store, { file, tag: 'sbom:1', writeLock: false });
  const image = await store.resolve('sbom:1');
  const types = async () => (await store.referrers(image.digest)).map((d) => d.artifactType).sort();
  expect(await types()).toEqual(['application/spdx+json', 'application/vnd.cyclonedx+json']);
  const [spdx] = await store.referrers(image.digest, 'application/spdx+json');
  const m = JSON.parse(
    (await store.readBlob((spdx as { digest: Digest }).digest)).toString('utf8'),
  ) as ImageManifest;
  const doc = JSON.parse(
    (await store.readBlob(m.layers[0]?.digest as Digest)).toString('utf8'),
  ) as {
    spdxVersion: string;
    packages: Array<{ name: string; versionInfo?: string }>;
    relationships: Array<{ relationshipType: string }>;
  };
  expect(doc.spdxVersion).toBe('SPDX-2.3');
  expect(doc.packages[0]).toMatchObject({ name: 'sbom', versionInfo: image.digest });
  // Its base, platform-one:1, is the one ancestor.
  expect(doc.relationships.filter((r) => r.relationshipType === 'DESCENDANT_OF')).toHaveLength(1);
  await build(store, { file, tag: 'sbom:1', writeLock: false });
  expect(await types()).toEqual(['application/spdx+json', 'application/vnd.cyclonedx+json']);
});

test('a --target build keeps the Stratafile.lock entries of the stages it did not build', async () => {
  await store.tag('second-base:1', await store.resolve('platform-two:1'));
  const file = stratafile('targeted', [
    'FROM platform-one:1 AS first',
    'FEATURE one',
    'FROM second-base:1 AS second',
    'FEATURE two',
  ]);
  await build(store, { file, tag: 'targeted:1' });
  const lockFile = `${file}.lock`;
  type Lock = { stages: Array<{ from: { digest?: string } }> };
  const full = JSON.parse(fs.readFileSync(lockFile, 'utf8')) as Lock;
  expect(full.stages).toHaveLength(2);
  // The last stage does not need the first, which is not built: its entry has no base yet.
  expect(full.stages[0]).toEqual({ name: 'first', from: { ref: 'platform-one:1' }, steps: [] });
  await build(store, { file, tag: 'targeted-first:1', target: 'first' });
  const after = JSON.parse(fs.readFileSync(lockFile, 'utf8')) as Lock;
  expect(after.stages[1]).toEqual(full.stages[1]);
  expect(after.stages[0]?.from.digest).toMatch(/^sha256:/);
  // So a --frozen build of the whole file still holds the second stage to its base.
  await store.tag('second-base:1', await store.resolve('platform-one:1'));
  await expect(build(store, { file, tag: 'targeted:1', frozen: true })).rejects.toThrow(
    /--frozen: FROM second-base:1 now resolves to/,
  );
});

test('a Stratafile.lock that cannot be read is rewritten with a warning naming it, not silently', async () => {
  const file = stratafile('corrupt-lock', ['FROM platform-one:1', 'FEATURE x']);
  const lockFile = `${file}.lock`;
  await build(store, { file });
  const good = fs.readFileSync(lockFile, 'utf8');
  for (const [bad, why] of [
    [good.slice(0, 40), 'Unexpected end of JSON input'],
    [
      `<<<<<<< HEAD
${good}=======
${good}>>>>>>> theirs
`,
      'it has git merge-conflict markers',
    ],
  ]) {
    fs.writeFileSync(lockFile, bad as string);
    const warnings: BuildEvent[] = [];
    await build(store, { file, onEvent: (e) => e.type === 'warning' && warnings.push(e) });
    expect(warnings).toEqual([
      {
        type: 'warning',
        message: expect.stringMatching(
          new RegExp(`^invalid ${lockFile}: .*${why}.*; this build rewrites it$`),
        ),
      },
    ]);
    expect(fs.readFileSync(lockFile, 'utf8')).toBe(good);
  }
});

test('a --build-arg that no ARG declares is reported once as a warning', async () => {
  const file = stratafile('unused-arg', ['FROM platform-one:1', 'ARG USED', 'FEATURE x']);
  const events: BuildEvent[] = [];
  await build(store, {
    file,
    writeLock: false,
    buildArgs: { USED: '1', TYPO: '2' },
    onEvent: (e) => events.push(e),
  });
  expect(events.filter((e) => e.type === 'warning')).toEqual([
    {
      type: 'warning',
      message: 'build arg TYPO is not used: no ARG in Stratafile declares it',
    },
  ]);
});

test("declared TARGET* ARGs are the host's platform without --platform, as docker sets them", async () => {
  const arch = hostPlatform().architecture;
  await store.tag(`per-arch:${arch}`, await store.resolve('platform-two:1'));
  const file = stratafile('target-arch', [
    'ARG TARGETARCH',
    'FROM per-arch:${TARGETARCH}',
    'ARG TARGETPLATFORM',
    'ARG BUILDARCH',
    'LABEL built.for=${TARGETPLATFORM} built.on=${BUILDARCH}',
  ]);
  const r = await build(store, { file, writeLock: false });
  expect(r.config.config?.Labels).toMatchObject({
    'built.for': formatPlatform(hostPlatform()),
    'built.on': arch,
  });
  expect((await baseChainOf(r.descriptor.digest))?.[0]?.ref).toBe(`per-arch:${arch}`);
  // Not declared before FROM: the empty substitution is named, with what to do.
  const bare = stratafile('target-arch-undeclared', ['FROM per-arch:${TARGETARCH}', 'FEATURE x']);
  await expect(build(store, { file: bare, writeLock: false })).rejects.toThrow(
    'invalid image reference "per-arch:": invalid tag "": ${TARGETARCH} is empty (declare ARG TARGETARCH before the first FROM)',
  );
});

test("a build for one --platform keeps that platform's lock, so a job per platform can be --frozen", async () => {
  const host = hostPlatform();
  const arch = debianArchitectureOf(host);
  await store.tag(`job:${host.architecture}`, await store.resolve('platform-one:1'));
  await store.tag('job:other', await store.resolve('platform-two:1'));
  const file = stratafile('per-platform-lock', [
    'ARG TARGETARCH',
    'FROM job:${TARGETARCH}',
    'FEATURE x',
  ]);
  const one = await build(store, { file, platforms: [host] });
  expect(one.lockFile).toBe(`${file}.${arch}.lock`);
  expect(fs.existsSync(`${file}.lock`)).toBe(false);
  // Another job's build (here: another TARGETARCH, without --platform) writes Stratafile.lock.
  const other = await build(store, { file, buildArgs: { TARGETARCH: 'other' } });
  expect(other.lockFile).toBe(`${file}.lock`);
  // This platform's job is held to its own lock, not to the other's.
  const frozen = await build(store, { file, platforms: [host], frozen: true });
  expect([frozen.lockFile, frozen.descriptor.digest]).toEqual([
    `${file}.${arch}.lock`,
    one.descriptor.digest,
  ]);
});

test('a multi-platform build names each platform as its image does, with its own lock', async () => {
  const host = hostPlatform();
  const other = parsePlatform(host.architecture === 'arm64' ? 'linux/amd64' : 'linux/arm64');
  const root = path.join(dir, 'root-mp');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\n');
  for (const p of [host, other])
    await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag: `mp-base:${p.architecture}`,
      name: 'mp-base',
      platform: p,
    });
  const file = stratafile('multi-json', [
    'ARG TARGETARCH',
    'FROM mp-base:${TARGETARCH}',
    'FEATURE x',
  ]);
  const r = await build(store, { file, platforms: [host, other] });
  const image = (p: PlatformSelector) =>
    formatPlatform({ os: 'linux', ...ociPlatform(debianArchitectureOf(p)) });
  expect(r.platforms?.map((p) => [formatPlatform(p.platform), p.lockFile, p.lockWritten])).toEqual([
    [image(host), `${file}.${debianArchitectureOf(host)}.lock`, true],
    [image(other), `${file}.${debianArchitectureOf(other)}.lock`, true],
  ]);
  expect(new Set(r.steps.map((s) => s.platform))).toEqual(new Set([image(host), image(other)]));
  // inspect's spelling: the index's entries.
  const index = await store.readImageIndex(r.descriptor);
  expect(
    new Set(index.manifests.map((m) => formatPlatform(m.platform as PlatformSelector))),
  ).toEqual(new Set(r.platforms?.map((p) => formatPlatform(p.platform))));
});

test('the result lists each step where it stands, and writing the image comes after the last', async () => {
  const file = stratafile('steps', ['FROM platform-one:1 AS top', 'ENV A=1', 'FEATURE x']);
  const events: BuildEvent['type'][] = [];
  const r = await build(store, {
    file,
    writeLock: false,
    onEvent: (e) => events.push(e.type),
  });
  const step = {
    stage: 'top',
    file,
    column: 1,
    status: 'none',
    packagesAdded: [],
    packagesRemoved: [],
  };
  expect(r.steps).toEqual([
    { ...step, step: 1, instruction: 'ENV A=1', line: 2, seconds: expect.any(Number) },
    { ...step, step: 2, instruction: 'FEATURE x', line: 3, seconds: expect.any(Number) },
  ]);
  // The write is its own phase: no step is charged for it.
  expect(events.filter((t) => t === 'step' || t === 'write')).toEqual(['step', 'step', 'write']);
});

async function configOf(tag: string): Promise<ImageConfig> {
  const m = JSON.parse(
    (await store.readBlob((await store.resolve(tag)).digest)).toString('utf8'),
  ) as ImageManifest;
  return JSON.parse((await store.readBlob(m.config.digest)).toString('utf8')) as ImageConfig;
}

test("ENV and LABEL substitute the FROM template's ENV, and an earlier stage's", async () => {
  const path0 = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  expect((await configOf('platform-one:1')).config?.Env).toEqual([`PATH=${path0}`]);
  const parent = stratafile('env-parent', [
    'FROM platform-one:1',
    'ENV PATH=/opt/bin:$PATH PRODUCT="Acme Gateway"',
    'FEATURE p',
  ]);
  await build(store, { file: parent, tag: 'env-parent:1', writeLock: false });
  expect((await configOf('env-parent:1')).config?.Env).toEqual([
    `PATH=/opt/bin:${path0}`,
    'PRODUCT=Acme Gateway',
  ]);
  const child = stratafile('env-child', [
    'FROM env-parent:1 AS one',
    'LABEL x=${PRODUCT:-unset}',
    'FROM one',
    'LABEL y=$PRODUCT',
  ]);
  await build(store, { file: child, tag: 'env-child:1', writeLock: false });
  expect((await configOf('env-child:1')).strata?.labels).toMatchObject({
    x: 'Acme Gateway',
    y: 'Acme Gateway',
  });
});

test('a build interrupted after its last step, while its image is written, tags nothing', async () => {
  const file = stratafile('interrupted', ['FROM platform-one:1', 'FEATURE x']);
  const controller = new AbortController();
  await expect(
    build(store, {
      file,
      tag: 'interrupted:1',
      writeLock: false,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'write') controller.abort();
      },
    }),
  ).rejects.toMatchObject({ code: 'INTERRUPTED' });
  await expect(store.resolve('interrupted:1')).rejects.toThrow();
});

test('a multi-platform build interrupted after its last platform tags nothing', async () => {
  const host = hostPlatform();
  const other = parsePlatform(host.architecture === 'arm64' ? 'linux/amd64' : 'linux/arm64');
  const root = path.join(dir, 'root-interrupted');
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\n');
  for (const p of [host, other])
    await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag: `interrupted-base:${p.architecture}`,
      name: 'interrupted-base',
      platform: p,
    });
  const file = stratafile('interrupted-index', [
    'ARG TARGETARCH',
    'FROM interrupted-base:${TARGETARCH}',
    'FEATURE x',
  ]);
  const controller = new AbortController();
  let written = 0;
  await expect(
    build(store, {
      file,
      tag: 'interrupted-index:1',
      writeLock: false,
      platforms: [host, other],
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'write' && ++written === 2) controller.abort();
      },
    }),
  ).rejects.toMatchObject({ code: 'INTERRUPTED' });
  await expect(store.resolve('interrupted-index:1')).rejects.toThrow();
});

test('a build sweeps the step scratch and leases of builds killed before they cleaned up', async () => {
  const dead = Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
  const snapshots = path.join(store.root, '.strata', 'snapshots');
  const leases = path.join(store.root, '.strata', 'leases');
  const deadStep = path.join(snapshots, `.tmp-step-${dead}-0a1b2c3d`);
  fs.mkdirSync(path.join(deadStep, 'upper', 'opt'), { recursive: true });
  fs.writeFileSync(path.join(deadStep, 'upper', 'opt', 'r'), 'x'.repeat(4096));
  const deadLease = path.join(leases, `.lease.tmp-${dead}-0-mxbkp501`);
  fs.writeFileSync(deadLease, JSON.stringify({ pid: dead, since: Date.now() }));
  // A live build's are its own.
  const liveStep = path.join(snapshots, `.tmp-step-${process.pid}-0a1b2c3d`);
  fs.mkdirSync(liveStep);
  const file = stratafile('sweep', ['FROM platform-one:1', 'FEATURE x']);
  await build(store, { file, writeLock: false });
  expect(fs.existsSync(deadStep)).toBe(false);
  expect(fs.existsSync(deadLease)).toBe(false);
  expect(fs.existsSync(liveStep)).toBe(true);
  fs.rmdirSync(liveStep);
});

/** A template of `layers` as they are: what a registry or a .tmpl.img could hand the build. */
async function rawTemplate(tag: string, layers: TarSpec[][]): Promise<ImageManifest> {
  const tars = layers.map((l) => tarOf(l));
  const descs = [];
  for (const tar of tars) {
    const info = await store.putBytes(gzipSync(tar));
    descs.push({ mediaType: MediaTypes.layerGzip, digest: info.digest, size: info.size });
  }
  const config: ImageConfig = {
    architecture: ociPlatform(debianArchitectureOf(hostPlatform())).architecture,
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: tars.map((t) => sha256(t)) },
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config: await store.putJson(config, MediaTypes.imageConfig),
    layers: descs,
  };
  await store.tag(tag, await store.putJson(manifest, MediaTypes.imageManifest));
  return manifest;
}

const ROOT: TarSpec[] = [
  { path: 'etc/' },
  { path: 'etc/os-release', body: 'ID=debian\nVERSION_CODENAME=bookworm\n' },
];

test.each([
  [
    'a layer entry that escapes through a symlink of a lower layer',
    'hostile-base:1',
    async () => {
      await rawTemplate('hostile-base:1', [
        [...ROOT, { path: 'lnk', link: '/tmp' }],
        [{ path: 'lnk/ESCAPE_layer', body: 'pwned' }],
      ]);
    },
    /refusing layer entry "lnk\/ESCAPE_layer"/,
  ],
  [
    'a damaged layer blob',
    'damaged-base:1',
    async () => {
      const m = await rawTemplate('damaged-base:1', [ROOT]);
      const hex = (m.layers[0] as { digest: string }).digest.slice('sha256:'.length);
      fs.writeFileSync(path.join(store.root, 'blobs', 'sha256', hex), 'not the layer');
    },
    /./,
  ],
])('a FROM template with %s fails at its FROM line, naming it', async (_what, ref, make, why) => {
  await make();
  const file = stratafile(`bad-base-${ref.split(':')[0]}`, ['ARG X=1', `FROM ${ref}`, 'RUN true']);
  const err = (await build(store, { file, writeLock: false, sourceDateEpoch: 0 }).then(
    () => undefined,
    (e: unknown) => e,
  )) as { message: string; loc?: { line: number; column: number } };
  expect(err.message).toMatch(new RegExp(`^${file}:2:1: FROM ${ref}: `));
  expect(err.message).toMatch(why);
  expect(err.loc).toMatchObject({ line: 2, column: 1 });
});

test("an untagged build of an unnamed stage is named after its context directory, never '#N'", async () => {
  const file = stratafile('unnamed-app', ['FROM platform-one:1 AS base', 'FROM base', 'FEATURE x']);
  const r = await build(store, { file, writeLock: false });
  expect(r.ref).toBeUndefined();
  expect(r.config.config?.Labels?.[Annotations.title]).toBe('unnamed-app');
  expect(r.config.strata?.name).toBe('unnamed-app');
  // A named stage keeps its name.
  const named = stratafile('named-app', ['FROM platform-one:1 AS web', 'FEATURE x']);
  expect((await build(store, { file: named, writeLock: false })).config.strata?.name).toBe('web');
});

test('a build with several tags applies each; the first names the template', async () => {
  const file = stratafile('several-tags', ['FROM platform-one:1', 'FEATURE x']);
  const r = await build(store, {
    file,
    tag: 'acme/several:1',
    moreTags: ['acme/several:latest', 'other:2'],
    writeLock: false,
  });
  expect(r.ref).toBe('acme/several:1');
  expect(r.refs).toEqual(['acme/several:1', 'acme/several:latest', 'other:2']);
  for (const t of r.refs ?? []) expect((await store.resolve(t)).digest).toBe(r.descriptor.digest);
  expect(r.config.strata?.name).toBe('acme/several');
  // Every tag is checked before any step runs.
  await expect(
    build(store, { file, tag: 'acme/several:2', moreTags: ['not valid'], writeLock: false }),
  ).rejects.toThrow(/not valid/);
  await expect(store.resolve('acme/several:2')).rejects.toThrow();
});
