/**
 * `strata sources`: the Debian source packages of a template's binaries, from the deb-src of
 * the mirror the tests use, reached through a counting proxy on 127.0.0.1 (so the test counts
 * what was downloaded on its own, not by strata's word); the COPY layer of its build; the
 * source package the mirror does not have, named; a second run served from the store; and the
 * bundle attached, pushed to docker-registry 2.8 and pulled into a fresh store.
 *
 * The template is the minbase fixture with a dpkg status cut down to three packages (one a
 * binNMU, one with an epoch) and one that no mirror has: downloading the ~67 source packages of
 * all of minbase (about 250 MB) is the long run (STRATA_LONG=1) and `node bench/run.js sources`.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArtifactTypes, validateSourceIndex } from '@strata/oci';
import { minbaseRootfs } from './helpers';
import { DEBIAN_SOURCES } from './fixtures/build/harness';
import { MIRROR, startMirrorProxy } from './support/mirror-proxy';
import {
  Registry,
  haveTool,
  sh,
  startRegistry,
  strata,
  strataOk,
  tmpDir,
} from './registry-fixtures';

jest.setTimeout(900_000);

const KEEP = ['base-files', 'libcap-ng0', 'libcap2'];

interface SourcesJson {
  dir: string;
  digest: string;
  sources: Array<{
    name: string;
    version: string;
    binaries: string[];
    files: Array<{ name: string; sha256: string; size: number }>;
  }>;
  missing: Array<{ name: string; version: string; reason: string }>;
  copied: Array<{ createdBy: string; layer: string; file: string }>;
  stats: { releaseRequests: number; downloads: number; fromCache: number };
  attached?: string;
}

/** A proxy on 127.0.0.1 in front of the mirror that records every path asked for. */
interface CountingProxy {
  base: string;
  paths: string[];
  /** The paths the mirror answered 404. */
  missed: string[];
  stop(): Promise<void>;
}

async function countingProxy(): Promise<CountingProxy> {
  const paths: string[] = [];
  const missed: string[] = [];
  const proxy = await startMirrorProxy({
    gate: (req) => {
      paths.push(req.url ?? '');
      return false;
    },
    answered: (p, status) => {
      if (status === 404) missed.push(p);
    },
  });
  return { base: proxy.url, paths, missed, stop: proxy.close };
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** The files and checksums a .dsc lists, read here without strata's parser. */
function dscFiles(file: string): Array<{ sha: string; size: number; name: string }> {
  const text = fs.readFileSync(file, 'utf8');
  const block = /^Checksums-Sha256:\n((?: .+\n)+)/m.exec(text)?.[1] ?? '';
  return block
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .map(([sha, size, name]) => ({ sha: sha as string, size: Number(size), name: name as string }));
}

test('the tools of this test are installed', () => {
  const tools = ['docker-registry', 'skopeo', 'dpkg-source', 'zstd', 'tar'];
  expect(tools.filter((t) => !haveTool(t))).toEqual([]);
});

describe('strata sources', () => {
  let work: string;
  let store: string;
  let env: Record<string, string>;
  let proxy: CountingProxy;
  let reg: Registry;
  let aptSources: string;

  /** `strata sources --json … --allow-missing` of `ref` in `store` into `out`, parsed. */
  async function sourcesJson(
    store: string,
    ref: string,
    out: string,
    ...extra: string[]
  ): Promise<SourcesJson> {
    const args = ['--store', store, '--json', 'sources', ref, '-o', out];
    const r = await strataOk([...args, '--apt-sources', aptSources, '--allow-missing', ...extra], {
      env,
    });
    // What is missing is a warning on stderr, as without --json; stdout is only the JSON.
    expect(r.stderr).toMatch(/^strata: warning: strata-vanished 0\.1-1 is missing: /m);
    return JSON.parse(r.stdout) as SourcesJson;
  }
  /** `source=version` of each kept package, as the fixture's dpkg status says. */
  const expected = new Map<string, string[]>();
  let first: SourcesJson;
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    const fx = await minbaseRootfs();
    work = tmpDir('sources-e2e');
    cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
    env = { HOME: work, DOCKER_CONFIG: path.join(work, 'docker') };
    store = path.join(work, 'store');
    // Linked, not copied; the status is replaced by unlinking it, so the fixture stays as it is.
    const root = path.join(work, 'root');
    if (spawnSync('cp', ['-al', fx.rootfs, root]).status !== 0) sh('cp', ['-a', fx.rootfs, root]);
    const statusFile = path.join(root, 'var/lib/dpkg/status');
    const paras = fs.readFileSync(statusFile, 'utf8').split(/\n\n+/);
    const kept = paras.filter((p) => KEEP.includes(/^Package: (\S+)/m.exec(p)?.[1] ?? ''));
    expect(kept).toHaveLength(KEEP.length);
    for (const p of kept) {
      const name = /^Package: (\S+)/m.exec(p)?.[1] as string;
      const version = /^Version: (\S+)/m.exec(p)?.[1] as string;
      const arch = /^Architecture: (\S+)/m.exec(p)?.[1] as string;
      const src = /^Source: (\S+)(?: \((\S+)\))?/m.exec(p);
      const key = `${src?.[1] ?? name}=${src?.[2] ?? version}`;
      expected.set(key, [...(expected.get(key) ?? []), `${name}:${arch}=${version}`]);
    }
    fs.rmSync(statusFile);
    fs.writeFileSync(
      statusFile,
      `${kept.join('\n\n')}\n\nPackage: strata-vanished\nStatus: install ok installed\nArchitecture: all\nVersion: 0.1-1\n\n`,
    );
    await strataOk(
      ['--store', store, '-q', 'template', 'create', root, '-t', 'acme/small:1', '--name', 'small'],
      { env },
    );
    const ctx = path.join(work, 'ctx');
    fs.mkdirSync(ctx);
    fs.writeFileSync(path.join(ctx, 'NOTICE'), 'acme firmware notice\n');
    fs.writeFileSync(
      path.join(ctx, 'Stratafile'),
      'FROM acme/small:1\nCOPY NOTICE /usr/share/doc/acme/NOTICE\n',
    );
    proxy = await countingProxy();
    cleanups.push(() => proxy.stop());
    aptSources = path.join(work, 'sources.list');
    fs.writeFileSync(aptSources, DEBIAN_SOURCES.split(MIRROR).join(proxy.base));
    await strataOk(
      ['--store', store, '-q', 'build', '--apt-sources', aptSources, '-t', 'acme/app:1', ctx],
      { env },
    );
    reg = await startRegistry();
    cleanups.push(() => reg.stop());
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('downloads the source of every binary, verified against its .dsc, keeps the COPY layer, and names what the mirror lacks', async () => {
    const out = path.join(work, 'out1');
    proxy.paths.length = 0;
    const r = await strata(
      ['--store', store, '--json', 'sources', 'acme/app:1', '-o', out, '--apt-sources', aptSources],
      { env },
    );
    // The missing package is a warning, and fails the command in one line that names it; the
    // rest is written.
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      'strata: warning: strata-vanished 0.1-1 is missing: not in any of the Sources indices read',
      expect.stringMatching(
        /^strata: error: 1 source package is not on the mirror: strata-vanished 0\.1-1 /,
      ),
    ]);
    // Its stdout is still one object: the report, with the error in it.
    first = JSON.parse(r.stdout) as SourcesJson;
    expect((first as SourcesJson & { error?: unknown }).error).toEqual({
      code: 'NOT_FOUND',
      message: expect.stringMatching(
        /^1 source package is not on the mirror: strata-vanished 0\.1-1/,
      ),
      hint: expect.any(String),
      exitCode: 1,
    });
    expect(first.missing.map((m) => `${m.name}=${m.version}`)).toEqual(['strata-vanished=0.1-1']);
    expect(
      Object.fromEntries(first.sources.map((s) => [`${s.name}=${s.version}`, s.binaries])),
    ).toEqual(Object.fromEntries(expected));
    // libcap-ng0 is a binNMU (0.8.3-1+b3 of libcap-ng 0.8.3-1): the source is the plain version.
    expect(first.sources.find((s) => s.name === 'libcap-ng')?.binaries[0]).toMatch(/\+b\d+$/);

    // Every file its .dsc lists is there with that checksum, and dpkg-source unpacks each.
    fs.mkdirSync(path.join(work, 'unpacked'));
    const dscs = fs.readdirSync(out).filter((f) => f.endsWith('.dsc'));
    expect(dscs).toHaveLength(expected.size);
    for (const dsc of dscs) {
      for (const f of dscFiles(path.join(out, dsc))) {
        expect(sha256(path.join(out, f.name))).toBe(f.sha);
      }
      const into = path.join(work, 'unpacked', dsc);
      const x = spawnSync('dpkg-source', ['--no-check', '-x', dsc, into], {
        cwd: out,
        encoding: 'utf8',
      });
      expect(x.stderr).not.toMatch(/dpkg-source: (error|warning)/);
      expect(x.status).toBe(0);
      expect(fs.existsSync(path.join(into, 'debian', 'changelog'))).toBe(true);
    }
    // Each file was downloaded once, from the pool.
    const pool = proxy.paths.filter((p) => p.includes('/pool/'));
    expect(pool.length).toBe(new Set(pool).size);
    expect(pool.map((p) => path.basename(p)).sort()).toEqual(
      first.sources.flatMap((s) => s.files.map((f) => f.name)).sort(),
    );

    // The COPY step's layer, as it is in the store, and the index in the folder.
    expect(first.copied).toEqual([
      expect.objectContaining({ createdBy: 'COPY NOTICE /usr/share/doc/acme/NOTICE' }),
    ]);
    const layer = path.join(out, first.copied[0]?.file as string);
    expect(`sha256:${sha256(layer)}`).toBe(first.copied[0]?.layer);
    expect(sh('tar', ['-I', 'zstd', '-tf', layer])).toMatch(/usr\/share\/doc\/acme\/NOTICE/);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'sources.json'), 'utf8')) as object;
    expect(index).toMatchObject({ sources: first.sources, missing: first.missing });
    expect(validateSourceIndex(index)).toEqual({ ok: true, value: index });
    expect(fs.readFileSync(path.join(out, 'SOURCES.txt'), 'utf8')).toMatch(
      /strata-vanished 0\.1-1/,
    );
  });

  it('a second run is served from the store: it fetches only the Release files', async () => {
    const out = path.join(work, 'out2');
    proxy.paths.length = 0;
    const again = await sourcesJson(store, 'acme/app:1', out);
    expect(proxy.paths.map((p) => path.basename(p))).toEqual([
      'InRelease',
      'InRelease',
      'InRelease',
    ]);
    expect(again.stats.downloads).toBe(0);
    expect(again.sources).toEqual(first.sources);
    for (const f of fs.readdirSync(path.join(work, 'out1'))) {
      expect(sha256(path.join(out, f))).toBe(sha256(path.join(work, 'out1', f)));
    }
    // Into the same template's bundle again: the same files. Into anything else: refused, so a
    // compliance bundle never mixes in what it does not list.
    expect((await sourcesJson(store, 'acme/app:1', out)).sources).toEqual(first.sources);
    const other = path.join(work, 'out-other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'notes.txt'), 'mine\n');
    const refused = await strata(
      ['--store', store, 'sources', 'acme/app:1', '-o', other, '--apt-sources', aptSources],
      { env },
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`strata: error: ${other} is not empty`);
    expect(fs.readdirSync(other)).toEqual(['notes.txt']);
  });

  it('--attach stores the bundle as an artifact of the template; push carries it; a pulled store downloads none of its source files', async () => {
    const out = path.join(work, 'out3');
    const r = await sourcesJson(store, 'acme/app:1', out, '--attach');
    expect(r.attached).toMatch(/^sha256:/);
    const inspect = JSON.parse(
      (await strataOk(['--store', store, '--json', 'inspect', 'acme/app:1'], { env })).stdout,
    ) as {
      artifacts: Array<{ digest: string; artifactType: string; subject: string; titles: string[] }>;
    };
    const art = inspect.artifacts.find((a) => a.artifactType === ArtifactTypes.sources);
    expect(art).toMatchObject({ digest: r.attached, subject: r.digest });
    expect(art?.titles).toEqual(
      expect.arrayContaining([
        'sources.json',
        first.copied[0]?.file,
        ...fs.readdirSync(out).filter((f) => f.endsWith('.dsc')),
      ]),
    );

    const remote = `${reg.host}/acme/app`;
    await strataOk(['--store', store, '-q', 'push', 'acme/app:1', `${remote}:1`], { env });
    const fallback = JSON.parse(
      sh('skopeo', [
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${remote}:sha256-${r.digest.slice(7)}`,
      ]),
    ) as { manifests: Array<{ digest: string; artifactType?: string }> };
    expect(fallback.manifests).toContainEqual(
      expect.objectContaining({ digest: r.attached, artifactType: ArtifactTypes.sources }),
    );

    const storeB = path.join(work, 'storeB');
    await strataOk(['--store', storeB, '-q', 'pull', `${remote}:1`, '-t', 'got/app:1'], { env });
    proxy.paths.length = 0;
    const pulled = await sourcesJson(storeB, 'got/app:1', path.join(work, 'out4'));
    expect(pulled.sources).toEqual(first.sources);
    // The source files came with the pull; only the indices and Release files were fetched.
    expect(proxy.paths.filter((p) => p.includes('/pool/'))).toEqual([]);
  });
});

/** The whole minbase: every binary accounted for, each file fetched once, then from the store. */
// Only the long run has it (not a skipped test in CI: CI runs the small template above).
if (process.env.STRATA_LONG === '1') {
  describe('strata sources of all of minbase (STRATA_LONG)', () => {
    it('lists a source or a missing entry for every binary; the second run fetches no source file', async () => {
      const fx = await minbaseRootfs();
      const work = tmpDir('sources-long');
      const proxy = await countingProxy();
      try {
        const store = path.join(work, 'store');
        const env = { HOME: work };
        await strataOk(
          [
            '--store',
            store,
            '-q',
            'template',
            'create',
            fx.rootfsTarZst,
            '-t',
            'mb:1',
            '--name',
            'mb',
          ],
          { env },
        );
        const aptSources = path.join(work, 'sources.list');
        fs.writeFileSync(aptSources, DEBIAN_SOURCES.split(MIRROR).join(proxy.base));
        const meta = JSON.parse(
          (await strataOk(['--store', store, '--json', 'inspect', 'mb:1'], { env })).stdout,
        ) as { packages: Array<{ name: string; architecture: string; version: string }> };
        const once = async (n: number) =>
          JSON.parse(
            (
              await strataOk(
                [
                  '--store',
                  store,
                  '--json',
                  'sources',
                  'mb:1',
                  '-o',
                  path.join(work, `out${n}`),
                  '--apt-sources',
                  aptSources,
                  '--allow-missing',
                ],
                { env },
              )
            ).stdout,
          ) as SourcesJson & { missing: Array<{ binaries: string[] }> };
        const first = await once(1);
        const listed = [...first.sources, ...first.missing].flatMap(
          (s) => (s as { binaries: string[] }).binaries,
        );
        expect(listed.sort()).toEqual(
          meta.packages.map((p) => `${p.name}:${p.architecture}=${p.version}`).sort(),
        );
        const pool = proxy.paths.filter((p) => p.includes('/pool/'));
        expect(pool.length).toBe(new Set(pool).size);
        // What the mirror lacked is asked for again (it may have it now); nothing else is.
        const lacked = proxy.missed.filter((p) => p.includes('/pool/')).sort();
        proxy.paths.length = 0;
        const second = await once(2);
        expect(proxy.paths.filter((p) => p.includes('/pool/')).sort()).toEqual(lacked);
        expect(second.stats.downloads).toBe(0);
        expect(second.sources).toEqual(first.sources);
      } finally {
        await proxy.stop();
        fs.rmSync(work, { recursive: true, force: true });
      }
    });
  });
}
