/**
 * Foreign architectures on this amd64 host: arm64 and armhf templates, built through qemu-user
 * (binfmt_misc), with real mmdebstrap and apt. The results are read back by hand (index.json,
 * the config blob) and by the host's `file`, which tells an ARM binary from an x86 one.
 *
 * Each architecture gets one small real BOOTSTRAP (--variant=essential); the derived steps run on
 * a template made from the cached arm64 minbase tarball, to keep CI time down.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  cleanupTmp,
  foreignMinbaseTar,
  minbaseRootfs,
  runOk,
  show,
  strata,
  strataJson,
  strataLinesAreOneError,
  strataOk,
  tmpDir,
  buildContext,
} from './helpers';
import { buildJson, readImage } from './fixtures/build/harness';

jest.setTimeout(SLOW);

/**
 * Debian's main suite only: the steps' apt-get update runs under emulation, and a suite fewer
 * is a download and an index parse fewer.
 */
const SOURCES = 'deb http://deb.debian.org/debian bookworm main\n';

const BINFMT = '/proc/sys/fs/binfmt_misc';

let work: string;
let store: string;
let sources: string;

beforeAll(() => {
  work = tmpDir('strata-foreign-');
  store = path.join(work, 'store');
  sources = path.join(work, 'sources.list');
  fs.writeFileSync(sources, SOURCES);
});

afterAll(() => cleanupTmp());

const context = (stratafile: string, files: Record<string, string> = {}) =>
  buildContext(work, stratafile, files);

const build = (ctx: string, tag: string) =>
  buildJson(['--apt-sources', sources, '-t', tag, ctx], store);

/** The descriptor the store's index.json holds for a tag. */
function indexEntry(ref: string): { platform?: Record<string, string> } {
  const index = JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8'));
  const d = index.manifests.find(
    (m: { annotations?: Record<string, string> }) =>
      m.annotations?.['org.opencontainers.image.ref.name'] === ref,
  );
  if (!d) throw new Error(`no ${ref} in ${store}`);
  return d;
}

/** Flatten a template and extract some of its files into `dir`, beside the tarball `tar`. */
async function flattenPaths(ref: string, paths: string[]): Promise<{ dir: string; tar: string }> {
  const dir = fs.mkdtempSync(path.join(work, 'flat-'));
  const tar = path.join(work, `${path.basename(dir)}.tar`);
  await strataOk(['flatten', ref, '--rootfs', tar], { store });
  await runOk('tar', ['-xf', tar, '-C', dir, '--no-same-owner', ...paths]);
  return { dir, tar };
}

/** What the host's `file` says of a file. */
async function fileType(p: string): Promise<string> {
  return (await runOk('file', ['-b', p])).stdout.trim();
}

/** The platform of a tagged image, as its config, its index entry and `strata inspect` say. */
async function platformOf(ref: string) {
  const { config } = readImage(store, ref);
  const inspect = await strataJson<{ architecture: string }>(['inspect', ref], { store });
  return {
    config: { architecture: config.architecture, variant: config.variant, os: config.os },
    index: indexEntry(ref).platform,
    debian: config.strata.architecture,
    inspect: inspect.architecture,
  };
}

describe('an arm64 BOOTSTRAP', () => {
  const STRATAFILE =
    'FROM scratch\nBOOTSTRAP --variant=essential --architecture=arm64 bookworm\nRUN uname -m > /arch && dpkg --print-architecture >> /arch\n';
  let ctx: string;
  let first: Awaited<ReturnType<typeof build>>;

  beforeAll(async () => {
    ctx = context(STRATAFILE);
    first = await build(ctx, 'boot-arm64:v1');
  }, SLOW);

  test('makes an arm64 tree, and its RUN step runs as aarch64', async () => {
    expect(first.stepsRun).toBe(2);
    const { dir } = await flattenPaths('boot-arm64:v1', ['arch', 'usr/bin/dpkg']);
    expect(fs.readFileSync(path.join(dir, 'arch'), 'utf8')).toBe('aarch64\narm64\n');
    expect(await fileType(path.join(dir, 'usr/bin/dpkg'))).toMatch(/ELF 64-bit.*ARM aarch64/);
  });

  test('the config, the index entry and inspect carry arm64/v8', async () => {
    expect(await platformOf('boot-arm64:v1')).toEqual({
      config: { architecture: 'arm64', variant: 'v8', os: 'linux' },
      index: { architecture: 'arm64', variant: 'v8', os: 'linux' },
      debian: 'arm64',
      inspect: 'arm64',
    });
  });

  test('a rebuild is all cached and gives the same image, still arm64', async () => {
    const again = await build(ctx, 'boot-arm64:v2');
    expect(again.stepsRun).toBe(0);
    expect(again.cacheHits).toBe(2);
    expect(again.digest).toBe(first.digest);
    expect(readImage(store, 'boot-arm64:v2').config.architecture).toBe('arm64');
  });
});

describe('an armhf BOOTSTRAP', () => {
  const STRATAFILE =
    'FROM scratch\nBOOTSTRAP --variant=essential --architecture=armhf bookworm\nRUN uname -m > /arch && dpkg --print-architecture >> /arch\n';
  let ctx: string;

  beforeAll(async () => {
    ctx = context(STRATAFILE);
    await build(ctx, 'boot-armhf:v1');
  }, SLOW);

  test('makes an armhf tree of ARM EABI5 binaries, and its RUN step runs as armv7l', async () => {
    const { dir } = await flattenPaths('boot-armhf:v1', ['arch', 'usr/bin/dpkg']);
    expect(fs.readFileSync(path.join(dir, 'arch'), 'utf8')).toBe('armv7l\narmhf\n');
    expect(await fileType(path.join(dir, 'usr/bin/dpkg'))).toMatch(/ELF 32-bit.*ARM, EABI5/);
  });

  test('the config, the index entry and inspect carry arm/v7', async () => {
    expect(await platformOf('boot-armhf:v1')).toEqual({
      config: { architecture: 'arm', variant: 'v7', os: 'linux' },
      index: { architecture: 'arm', variant: 'v7', os: 'linux' },
      debian: 'armhf',
      inspect: 'armhf',
    });
  });

  describe('with the qemu-arm handler of binfmt_misc disabled', () => {
    const handler = path.join(BINFMT, 'qemu-arm');

    /** Run `fn` with the handler switched off; it is on again however `fn` ends. */
    async function withoutHandler<T>(fn: () => Promise<T>): Promise<T> {
      expect(fs.readFileSync(handler, 'utf8').split('\n')[0]).toBe('enabled');
      fs.writeFileSync(handler, '0');
      try {
        return await fn();
      } finally {
        fs.writeFileSync(handler, '1');
      }
    }

    afterAll(() => {
      // However the tests ended, other builds on this machine need the handler.
      if (fs.existsSync(handler)) fs.writeFileSync(handler, '1');
    });

    test('a step that must run is a clear error on its line, before it starts', async () => {
      const derived = context('FROM boot-armhf:v1\nRUN echo never\n');
      const boot = context('FROM scratch\nBOOTSTRAP --architecture=armhf bookworm\n');
      const [r, b] = await withoutHandler(async () => [
        await strata(['build', '--apt-sources', sources, derived], { store }),
        await strata(['build', '--apt-sources', sources, boot], { store }),
      ]);
      expect(r.code).toBe(1);
      expect(strataLinesAreOneError(r.stderr)).toBe(true);
      expect(r.stderr).toContain(`${path.join(derived, 'Stratafile')}:2:1: RUN:`);
      expect(r.stderr).toMatch(
        /cannot run armhf programs: the binfmt_misc handler qemu-arm is disabled/,
      );
      expect(r.stderr).toMatch(/hint: enable it \(echo 1 > \/proc\/sys\/fs\/binfmt_misc\/qemu-arm/);
      expect(r.stderr).toMatch(/qemu-user-static and binfmt-support/);
      expect(r.stdout + r.stderr).not.toMatch(/Exec format error/);

      expect(b.code).toBe(1);
      expect(b.stderr).toContain(`${path.join(boot, 'Stratafile')}:2:1: BOOTSTRAP:`);
      expect(b.stderr).toMatch(/cannot run armhf programs/);
      expect(b.stdout + b.stderr).not.toMatch(/mmdebstrap|Exec format error/);
      expect(fs.readFileSync(handler, 'utf8').split('\n')[0]).toBe('enabled');
    });

    test('a fully cached rebuild needs no emulator', async () => {
      const r = await withoutHandler(() =>
        strata(['build', '-q', '--json', '--apt-sources', sources, '-t', 'boot-armhf:v2', ctx], {
          store,
        }),
      );
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ stepsRun: 0, cacheHits: 2 });
    });
  });
});

describe('derived steps FROM an arm64 template', () => {
  let built: Awaited<ReturnType<typeof build>>;
  let ctx: string;

  beforeAll(async () => {
    const tar = await foreignMinbaseTar('arm64');
    await strataOk(['template', 'create', tar, '-t', 'arm64-base:v1', '--name', 'arm64-base'], {
      store,
    });
    // No flag anywhere: the platform comes from the FROM template.
    ctx = context(
      [
        'FROM arm64-base:v1',
        'INSTALL curl libmagic-mgc',
        'RUN uname -m > /arch && dpkg --print-architecture >> /arch',
        'COPY --chown=1234:5678 hello.txt /opt/hello.txt',
        'REMOVE libmagic-mgc',
        'UPGRADE',
        '',
      ].join('\n'),
      { 'hello.txt': 'hello\n' },
    );
    built = await build(ctx, 'arm64-app:v1');
  }, SLOW);

  test('INSTALL, RUN, COPY --chown, REMOVE and UPGRADE all run, as arm64', async () => {
    expect(built.stepsRun).toBe(5);
    const { config } = readImage(store, 'arm64-app:v1');
    const layers = config.strata.layers as Array<{ createdBy: string; packagesAdded?: string[] }>;
    const install = layers.find((l) => l.createdBy.startsWith('INSTALL'));
    expect(install?.packagesAdded?.some((p) => p.startsWith('curl='))).toBe(true);
    const pkgs = config.strata.packages as Array<{ name: string; architecture: string }>;
    expect(pkgs.find((p) => p.name === 'curl')?.architecture).toBe('arm64');
    expect(pkgs.find((p) => p.name === 'libcurl4')?.architecture).toBe('arm64');
    expect(pkgs.find((p) => p.name === 'libmagic-mgc')).toBeUndefined();
  });

  test('in the flattened rootfs, curl is ARM aarch64 and the RUN step saw aarch64', async () => {
    const { dir, tar } = await flattenPaths('arm64-app:v1', ['arch', 'usr/bin/curl']);
    expect(await fileType(path.join(dir, 'usr/bin/curl'))).toMatch(/ELF 64-bit.*ARM aarch64/);
    expect(fs.readFileSync(path.join(dir, 'arch'), 'utf8')).toBe('aarch64\narm64\n');
    // COPY --chown ran chown under emulation.
    const listing = await runOk('tar', ['-tvf', tar, 'opt/hello.txt']);
    expect(listing.stdout).toMatch(/^-rw-r--r-- 1234\/5678 /);
  });

  test("INSTALL unpacks with the host's dpkg, read-only, and gives the layer dpkg under emulation gives", async () => {
    // A package whose preinst (run under emulation, as every maintainer script is) fails the
    // step if it can write to the host's dpkg that unpacks it.
    const dir = context('FROM arm64-base:v1\nINSTALL file ./probe.deb\n');
    const tree = path.join(work, 'probe-tree');
    fs.mkdirSync(path.join(tree, 'DEBIAN'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'usr/share/probe'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'usr/share/probe/README'), 'probe\n');
    fs.writeFileSync(
      path.join(tree, 'DEBIAN/control'),
      'Package: strata-probe\nVersion: 1.0\nArchitecture: all\nMaintainer: Strata <strata@example.org>\nDescription: probe\n',
    );
    fs.writeFileSync(
      path.join(tree, 'DEBIAN/preinst'),
      '#!/bin/sh\nif touch /run/strata/native/probe 2>/dev/null; then echo "the host dpkg is writable"; exit 1; fi\nexit 0\n',
      { mode: 0o755 },
    );
    await runOk('dpkg-deb', ['--root-owner-group', '--build', tree, path.join(dir, 'probe.deb')]);

    // One date for both builds, whatever the mirror does between them; one name (the tag's).
    const env = { SOURCE_DATE_EPOCH: '1765000000' };
    const args = ['build', '--apt-sources', sources];
    const native = await strata([...args, '-t', 'arm64-probe:native', dir], { store, env });
    expect(show(native)).toMatch(/^exit 0/);
    expect(native.stdout + native.stderr).toMatch(
      /strata: unpacking with the host's dpkg \S+ \(native\); configuring with this root's dpkg/,
    );
    const emulated = await strata(
      [...args, '--no-cache', '--no-native-dpkg', '-t', 'arm64-probe:emulated', dir],
      { store, env },
    );
    expect(show(emulated)).toMatch(/^exit 0/);
    expect(emulated.stdout + emulated.stderr).not.toMatch(/host's dpkg/);
    // Bit for bit: the same layers, so the same image.
    expect(readImage(store, 'arm64-probe:emulated').digest).toBe(
      readImage(store, 'arm64-probe:native').digest,
    );
  });

  test('the result is arm64/v8 without any flag', async () => {
    expect(await platformOf('arm64-app:v1')).toEqual({
      config: { architecture: 'arm64', variant: 'v8', os: 'linux' },
      index: { architecture: 'arm64', variant: 'v8', os: 'linux' },
      debian: 'arm64',
      inspect: 'arm64',
    });
  });

  test('a rebuild is all cached', async () => {
    const again = await build(ctx, 'arm64-app:v2');
    expect({ stepsRun: again.stepsRun, digest: again.digest }).toEqual({
      stepsRun: 0,
      digest: built.digest,
    });
  });

  test('strata check recomputes the arm64 keys: the template is up to date', async () => {
    const r = await strata(
      [
        'check',
        'arm64-app:v1',
        '-f',
        path.join(ctx, 'Stratafile'),
        '--apt-sources',
        sources,
        '--no-packages',
      ],
      { store },
    );
    expect(show(r)).toMatch(/^exit 0/);
  });

  test('the same Stratafile FROM an amd64 and an arm64 template shares no step key', async () => {
    // One text, `FROM plat:v1`; the tag names the amd64 minbase first, then the arm64 one.
    const text = 'FROM plat:v1\nRUN uname -m > /arch\n';
    const amd = context(text);
    const arm = context(text);
    await strataOk(
      ['template', 'create', (await minbaseRootfs()).minbaseTar, '-t', 'plat:v1', '--name', 'plat'],
      { store },
    );
    const onAmd64 = await build(amd, 'plat-run:amd64');
    const archive = path.join(work, 'arm64-base.tmpl.img');
    await strataOk(['save', 'arm64-base:v1', '-o', archive], { store });
    await strataOk(['load', archive, '-t', 'plat:v1'], { store });
    // The platform travels through the archive's index.json and back into the store's.
    expect(indexEntry('plat:v1').platform).toEqual({
      architecture: 'arm64',
      variant: 'v8',
      os: 'linux',
    });
    const onArm64 = await build(arm, 'plat-run:arm64');
    expect(onArm64.stepsRun).toBe(1);
    const keyOf = (ref: string) =>
      (readImage(store, ref).config.strata.layers as Array<{ cacheKey?: string }>).at(-1)?.cacheKey;
    expect(keyOf('plat-run:arm64')).toMatch(/^sha256:/);
    expect(keyOf('plat-run:arm64')).not.toBe(keyOf('plat-run:amd64'));
    expect(onArm64.digest).not.toBe(onAmd64.digest);
    expect(readImage(store, 'plat-run:amd64').config.architecture).toBe('amd64');
    expect(readImage(store, 'plat-run:arm64').config.architecture).toBe('arm64');
  });

  test("the host's dpkg the steps used is in df's apt caches, and gc --apt-cache frees it", async () => {
    // Last in this block: it drops the apt caches the builds above filled.
    const kits = path.join(store, '.strata/apt/native');
    const kit = fs.readdirSync(kits).filter((n) => n.startsWith('dpkg-'));
    expect(kit).toHaveLength(1);
    // The kit's files: the host's dpkg, dpkg-deb, loader and libraries (some MB).
    const filesOf = (d: string): string[] =>
      fs
        .readdirSync(d, { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? filesOf(path.join(d, e.name)) : [path.join(d, e.name)]));
    const kitBytes = filesOf(path.join(kits, kit[0] as string)).reduce(
      (n, f) => n + fs.lstatSync(f).size,
      0,
    );
    expect(kitBytes).toBeGreaterThan(1_000_000);
    type Df = { rows: Array<{ kind: string; bytes: number; reclaimable: number }> };
    const aptRow = (df: Df) => df.rows.find((r) => r.kind === 'apt-cache');
    const before = aptRow(await strataJson<Df>(['df'], { store }));
    expect(before?.bytes).toBeGreaterThanOrEqual(kitBytes);
    expect(before?.reclaimable).toBe(before?.bytes);
    const gc = await strataJson<{ freed: { aptCache: { bytes: number } } }>(['gc', '--apt-cache'], {
      store,
    });
    expect(gc.freed.aptCache.bytes).toBe(before?.bytes);
    expect(fs.existsSync(kits)).toBe(false);
    expect(aptRow(await strataJson<Df>(['df'], { store }))?.bytes).toBe(0);
  });
});
