/**
 * `strata template create` on a real Debian minbase rootfs (plus the harness's extras), checked
 * with tools that are not Strata: skopeo, umoci, GNU tar, dpkg-query and jq.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  applyExclusions,
  blobPath,
  cleanupTmp,
  DEFAULT_EXCLUSIONS,
  diffTrees,
  FIXTURE_EXTRAS,
  type Fixture,
  manifestOf,
  minbaseRootfs,
  isOneLineError,
  runOk,
  SLOW,
  snapshotTree,
  strata,
  strataJson,
  strataOk,
  tmpDir,
  type Tree,
} from './helpers';

interface InspectJson {
  ref: string;
  digest: string;
  name: string;
  created: string;
  features: string[];
  architecture: string;
  distribution: unknown;
  packages: { name: string; version: string; architecture: string; source: string }[];
  exclusions: { pattern: string; reason: string; action: string; matched: unknown }[];
  layers: { digest: string; size: number; mediaType: string; diffId: string; createdBy: string }[];
}

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';
const EPOCH = '1700000000';

let fx: Fixture;
let store: string;
let input: Tree;
let expected: Tree;

beforeAll(async () => {
  fx = await minbaseRootfs();
  store = tmpDir('strata-e2e-store-');
  input = await snapshotTree(fx.rootfs);
  expected = applyExclusions(input, DEFAULT_EXCLUSIONS);
}, SLOW);
afterAll(cleanupTmp);

const opts = () => ({ store });

/** umoci-unpack `ref` from the test store and snapshot the rootfs it made. */
async function umociTree(ref: string): Promise<Tree> {
  const bundle = path.join(tmpDir('strata-e2e-bundle-'), 'bundle');
  await runOk('umoci', ['unpack', '--image', `${store}:${ref}`, bundle]);
  return snapshotTree(path.join(bundle, 'rootfs'));
}

/** Unpack a layer blob with GNU tar (independently of umoci) and snapshot it. */
async function gnuTarTree(blob: string, mediaType: string): Promise<Tree> {
  const out = tmpDir('strata-e2e-layer-');
  fs.chmodSync(out, 0o755); // as umoci makes it, for a layer without a './' entry
  const z = mediaType === ZSTD ? '--zstd' : mediaType === GZIP ? '--gzip' : '--no-auto-compress';
  await runOk('tar', [
    '-xpf',
    blob,
    z,
    '--xattrs',
    '--xattrs-include=*',
    '--numeric-owner',
    '-C',
    out,
  ]);
  return snapshotTree(out);
}

/** sha256 of a layer blob's uncompressed stream, by the system tools. */
async function diffIdOf(blob: string, mediaType: string): Promise<string> {
  const dec = mediaType === ZSTD ? 'zstd -dc' : 'gzip -dc';
  const r = await runOk('sh', ['-c', `${dec} "$1" | sha256sum`, 'sh', blob]);
  return `sha256:${r.stdout.split(' ')[0]}`;
}

describe('template create from a rootfs directory', () => {
  let created: { ref: string; digest: string };

  beforeAll(async () => {
    const r = await strataOk(
      [
        'template',
        'create',
        fx.rootfs,
        '-t',
        'base',
        '--name',
        'base',
        '--feature',
        'ssh',
        '--feature',
        'net',
        '--compression',
        'gzip',
      ],
      opts(),
    );
    const m = manifestOf(store, 'base:latest');
    created = { ref: 'base:latest', digest: m.digest };
    expect(r.stdout).toContain(m.digest);
  }, SLOW);

  it('tags it as name:tag in index.json, and --json prints ref and digest', async () => {
    const j = await strataJson<{ ref: string; digest: string }>(
      [
        'template',
        'create',
        fx.rootfs,
        '-t',
        'base:json',
        '--name',
        'base',
        '--compression',
        'gzip',
      ],
      opts(),
    );
    expect(j.ref).toBe('base:json');
    expect(j.digest).toBe(manifestOf(store, 'base:json').digest);
  });

  it('is readable by skopeo, with title and created annotations', async () => {
    const info = JSON.parse(
      (await runOk('skopeo', ['inspect', `oci:${store}:base:latest`])).stdout,
    ) as {
      Digest: string;
      Created: string;
      Architecture: string;
      Layers: string[];
    };
    expect(info.Digest).toBe(created.digest);
    const raw = JSON.parse(
      (await runOk('skopeo', ['inspect', '--raw', `oci:${store}:base:latest`])).stdout,
    ) as {
      annotations?: Record<string, string>;
      layers: { digest: string; mediaType: string }[];
    };
    expect(raw.annotations?.['org.opencontainers.image.title']).toBe('base');
    const createdAnn = raw.annotations?.['org.opencontainers.image.created'];
    expect(createdAnn).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(new Date(info.Created).getTime()).toBe(new Date(createdAnn!).getTime());
    expect(info.Layers).toEqual(raw.layers.map((l) => l.digest));
    expect(raw.layers.map((l) => l.mediaType)).toEqual([GZIP]);
  });

  it(
    'unpacks with umoci to the input minus the exclusions (owners, modes, xattrs, hardlinks, devices)',
    async () => {
      const got = await umociTree('base:latest');
      expect(diffTrees(expected, got)).toEqual([]);
      // The properties above, spelled out, so a regression reads plainly:
      const x = FIXTURE_EXTRAS;
      expect(got.get('usr/local/bin/strata-ping')?.xattrs?.['security.capability']).toBe(
        input.get('usr/local/bin/strata-ping')?.xattrs?.['security.capability'],
      );
      expect(got.get(`${x}/hardlink-a`)?.links).toEqual([`${x}/hardlink-b`, `${x}/hardlink-c`]);
      expect(got.get('etc/machine-id')).toMatchObject({ type: 'file', size: 0 });
      for (const d of ['var/log', 'tmp', 'run']) {
        expect([d, got.get(d)?.type]).toEqual([d, 'dir']);
        // Only folders stay under them (apt owns /var/log/apt).
        expect(
          [...got.entries()].filter(([p, e]) => p.startsWith(`${d}/`) && e.type !== 'dir'),
        ).toEqual([]);
      }
      expect(got.has('etc/ssh/sshd_config')).toBe(true);
      expect(got.has('etc/ssh/ssh_host_ed25519_key')).toBe(false);
    },
    SLOW,
  );

  it('records its layer diffID as the sha256 of the uncompressed layer', async () => {
    const { manifest } = manifestOf(store, 'base:latest');
    const cfg = JSON.parse(fs.readFileSync(blobPath(store, manifest.config.digest), 'utf8')) as {
      rootfs: { diff_ids: string[] };
    };
    const layer = manifest.layers[0]!;
    expect(cfg.rootfs.diff_ids).toEqual([
      await diffIdOf(blobPath(store, layer.digest), layer.mediaType),
    ]);
  });

  it('writes numeric owners without user or group names', async () => {
    const { manifest } = manifestOf(store, 'base:latest');
    const r = await runOk('tar', ['-tvzf', blobPath(store, manifest.layers[0]!.digest)]);
    const owners = new Set(
      r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.split(/\s+/)[1]),
    );
    expect([...owners].filter((o) => !/^\d+\/\d+$/.test(o!))).toEqual([]);
    expect(owners.has('1234/5678')).toBe(true);
  });

  it('records the installed packages exactly as dpkg-query reads them', async () => {
    const r = await runOk('dpkg-query', [
      `--admindir=${fx.rootfs}/var/lib/dpkg`,
      '-W',
      '-f',
      '${db:Status-Status}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\n',
    ]);
    const want = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('installed\t'))
      .map((l) => {
        const [, name, version, architecture, source] = l.split('\t');
        return { name, version, architecture, source };
      })
      .sort((a, b) => (a.name! < b.name! ? -1 : 1));
    expect(want.length).toBeGreaterThan(50);
    const meta = await strataJson<InspectJson>(['inspect', 'base'], opts());
    const got = meta.packages
      .map(({ name, version, architecture, source }) => ({ name, version, architecture, source }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    expect(got).toEqual(want);
  });

  it('inspect --json carries name, created, features, distribution, architecture, exclusions, layers', async () => {
    const meta = await strataJson<InspectJson>(['inspect', 'base:latest'], opts());
    const { manifest } = manifestOf(store, 'base:latest');
    const arch = (await runOk('dpkg', ['--print-architecture'])).stdout.trim();
    // The feature list is a set: any stable order will do.
    expect([...meta.features].sort()).toEqual(['net', 'ssh']);
    expect(meta).toMatchObject({
      name: 'base',
      architecture: arch,
      digest: created.digest,
    });
    expect(Number.isNaN(Date.parse(meta.created))).toBe(false);
    expect(JSON.stringify(meta.distribution)).toMatch(/bookworm/);
    expect(meta.layers).toEqual([
      expect.objectContaining({
        digest: manifest.layers[0]!.digest,
        size: manifest.layers[0]!.size,
        mediaType: GZIP,
        diffId: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        createdBy: expect.stringMatching(/\S/),
      }),
    ]);
    for (const want of DEFAULT_EXCLUSIONS) {
      const ex = meta.exclusions.find((e) => e.pattern === want.pattern);
      expect([want.pattern, ex === undefined]).toEqual([want.pattern, false]);
      const allowed =
        want.action === 'empty'
          ? ['empty']
          : want.action === 'contents'
            ? ['contents', 'drop']
            : ['drop'];
      expect([want.pattern, allowed.includes(ex!.action)]).toEqual([want.pattern, true]);
      expect(typeof ex!.reason).toBe('string');
      // The fixture gives every default exclusion something to match.
      const n =
        typeof ex!.matched === 'number'
          ? ex!.matched
          : Array.isArray(ex!.matched)
            ? ex!.matched.length
            : 0;
      expect([want.pattern, n > 0]).toEqual([want.pattern, true]);
    }
  });

  it('`strata inspect <ref> --json | jq .features` works', async () => {
    const { CLI } = await import('./helpers');
    const r = await runOk('sh', [
      '-c',
      `"${process.execPath}" "${CLI}" --store "$1" inspect base:latest --json | jq -c .features`,
      'sh',
      store,
    ]);
    expect((JSON.parse(r.stdout) as string[]).sort()).toEqual(['net', 'ssh']);
  });

  it('inspect prints a readable summary', async () => {
    const r = await strataOk(['inspect', 'base'], opts());
    for (const s of ['base', 'ssh', 'net', created.digest.slice(7, 19)])
      expect(r.stdout).toContain(s);
    expect(r.stdout).toMatch(/96|\d+ packages|Packages:\s+\d+/);
  });
});

describe('template create, other inputs and options', () => {
  it(
    'makes zstd layers by default, which GNU tar + zstd unpack to the expected tree',
    async () => {
      await strataOk(['template', 'create', fx.rootfs, '-t', 'zst', '--name', 'zst'], opts());
      const { manifest } = manifestOf(store, 'zst:latest');
      const layer = manifest.layers[0]!;
      expect(layer.mediaType).toBe(ZSTD);
      const blob = blobPath(store, layer.digest);
      expect(diffTrees(expected, await gnuTarTree(blob, ZSTD))).toEqual([]);
    },
    SLOW,
  );

  it(
    'from rootfs.tar, .tar.gz, .tar.zst and stdin gives one layer, equal to the input minus exclusions',
    async () => {
      const env = { SOURCE_DATE_EPOCH: EPOCH };
      const mk = (src: string, tag: string, stdinFile?: string) =>
        strataOk(
          ['template', 'create', src, '-t', tag, '--name', 'fromtar', '--compression', 'gzip'],
          {
            store,
            env,
            stdinFile,
          },
        );
      await mk(fx.rootfsTar, 'fromtar:plain');
      const plain = manifestOf(store, 'fromtar:plain').manifest.layers[0]!;
      expect(diffTrees(expected, await umociTree('fromtar:plain'))).toEqual([]);

      await mk(fx.rootfsTarGz, 'fromtar:gz');
      await mk(fx.rootfsTarZst, 'fromtar:zst');
      await mk('-', 'fromtar:stdin', fx.rootfsTar);
      for (const tag of ['gz', 'zst', 'stdin']) {
        const l = manifestOf(store, `fromtar:${tag}`).manifest.layers[0]!;
        expect([tag, l.digest]).toEqual([tag, plain.digest]);
      }
    },
    SLOW,
  );

  it(
    '--exclude adds a rule, --keep switches one default off, --no-default-excludes all of them',
    async () => {
      await strataOk(
        [
          'template',
          'create',
          fx.rootfs,
          '-t',
          'opts:a',
          '--name',
          'opts',
          '--exclude',
          'usr/share/doc/*',
          '--keep',
          'etc/hostname',
          '--keep',
          'etc/machine-id',
        ],
        opts(),
      );
      const a = await gnuTarTree(
        blobPath(store, manifestOf(store, 'opts:a').manifest.layers[0]!.digest),
        ZSTD,
      );
      expect(a.get('usr/share/doc')?.type).toBe('dir');
      expect([...a.keys()].filter((p) => p.startsWith('usr/share/doc/'))).toEqual([]);
      expect(
        diffTrees(
          new Map([
            ['etc/hostname', input.get('etc/hostname')!],
            ['etc/machine-id', input.get('etc/machine-id')!],
          ]),
          new Map([
            ['etc/hostname', a.get('etc/hostname')!],
            ['etc/machine-id', a.get('etc/machine-id')!],
          ]),
        ),
      ).toEqual([]);
      expect(a.has('etc/hosts')).toBe(false);
      const metaA = await strataJson<InspectJson>(['inspect', 'opts:a'], opts());
      expect(metaA.exclusions.map((e) => e.pattern)).toContain('usr/share/doc/*');
      expect(metaA.exclusions.map((e) => e.pattern)).not.toContain('etc/hostname');

      await strataOk(
        [
          'template',
          'create',
          fx.rootfs,
          '-t',
          'opts:none',
          '--name',
          'opts',
          '--no-default-excludes',
        ],
        opts(),
      );
      const b = await gnuTarTree(
        blobPath(store, manifestOf(store, 'opts:none').manifest.layers[0]!.digest),
        ZSTD,
      );
      expect(diffTrees(input, b)).toEqual([]);
      const metaB = await strataJson<InspectJson>(['inspect', 'opts:none'], opts());
      expect(metaB.exclusions).toEqual([]);
    },
    SLOW,
  );

  it('rejects an unknown --keep pattern and a missing rootfs with a one-line error', async () => {
    for (const args of [
      ['template', 'create', fx.rootfs, '-t', 'k', '--name', 'k', '--keep', 'etc/not-a-default'],
      ['template', 'create', path.join(store, 'no-such-rootfs'), '-t', 'k', '--name', 'k'],
    ]) {
      const r = await strata(args, opts());
      expect([args.join(' '), r.code !== 0, isOneLineError(r.stderr)]).toEqual([
        args.join(' '),
        true,
        true,
      ]);
    }
    expect(fs.existsSync(path.join(store, 'index.json'))).toBe(true);
    expect((await strata(['ls', '--json'], opts())).stdout).not.toContain('"k:latest"');
  });
});
