/**
 * `strata build` against the real Debian mirror: a three-level chain built from examples/
 * (base → middleware → app), checked with umoci, GNU tar and the tree's own dpkg status.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SLOW, cleanupTmp, runOk, strata, strataOk, show } from './helpers';
import {
  EXAMPLES,
  buildJson,
  readImage,
  saveDebs,
  storeWithBase,
  umociUnpack,
} from './fixtures/build/harness';

let work: string;
let store: string;
let sources: string;
let appDir: string;
let baseTree: string;
let appTree: string;
let first: { digest: string; layers: Array<{ digest: string }> };

const gz = ['--compression', 'gzip'];

function statusPackages(tree: string): Map<string, string> {
  const text = fs.readFileSync(path.join(tree, 'var/lib/dpkg/status'), 'utf8');
  const out = new Map<string, string>();
  for (const para of text.split(/\n\n+/)) {
    const name = /^Package: (.+)$/m.exec(para)?.[1];
    const version = /^Version: (.+)$/m.exec(para)?.[1];
    const st = /^Status: (.+)$/m.exec(para)?.[1];
    if (name && version && st === 'install ok installed') out.set(name, version);
  }
  return out;
}

/** Entry names of a gzip layer blob, by GNU tar. */
async function layerEntries(digest: string): Promise<string[]> {
  const blob = path.join(store, 'blobs', 'sha256', digest.slice(7));
  const r = await runOk('tar', ['-tzf', blob]);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((e) => e.replace(/^\.\//, ''));
}

beforeAll(async () => {
  ({ work, store, sources } = await storeWithBase());
  for (const d of ['middleware', 'app'])
    fs.cpSync(path.join(EXAMPLES, d), path.join(work, d), { recursive: true });
  appDir = path.join(work, 'app');
  await buildJson(
    [...gz, '--apt-sources', sources, '-t', 'middleware:v1', path.join(work, 'middleware')],
    store,
  );
  first = await buildJson(
    [...gz, '--apt-sources', sources, '--build-arg', 'RELEASE=3.1', '-t', 'app:v1', appDir],
    store,
  );
  saveDebs(store);
  baseTree = await umociUnpack(store, 'base:v1', path.join(work, 'u-base'));
  appTree = await umociUnpack(store, 'app:v1', path.join(work, 'u-app'));
}, SLOW);

afterAll(() => cleanupTmp());

/** The version of tzdata that the base installed and the app removes. */
function tzdataOfBase(): string {
  const base = readImage(store, 'base:v1').config.strata;
  return base.packages.find((p: { name: string }) => p.name === 'tzdata').version;
}

describe('a three-level chain: base → middleware → app', () => {
  test('the result records both ancestors, merged features, labels and ENV', async () => {
    const base = readImage(store, 'base:v1');
    const mw = readImage(store, 'middleware:v1');
    const app = readImage(store, 'app:v1');
    expect(app.digest).toBe(first.digest);
    const meta = app.config.strata;
    expect(meta.baseChain.map((b: { ref: string; digest: string }) => [b.ref, b.digest])).toEqual([
      ['base:v1', base.digest],
      ['middleware:v1', mw.digest],
    ]);
    expect(meta.features).toEqual(['gateway', 'middleware', 'minbase', 'ssh']);
    expect(meta.labels['org.opencontainers.image.title']).toBe('acme-gateway');
    expect(meta.labels['org.opencontainers.image.version']).toBe('3.1');
    expect(meta.labels['org.opencontainers.image.vendor']).toBe('Acme Platform');
    expect(app.config.config.Env).toEqual(
      expect.arrayContaining(['ACME_MIDDLEWARE=1', 'ACME_HOME=/opt/acme']),
    );
    // base layer + middleware (INSTALL, COPY) + app (INSTALL, REMOVE, COPY, RUN)
    expect(app.manifest.layers).toHaveLength(1 + 2 + 4);
    expect(app.manifest.layers.slice(0, 3)).toEqual(mw.manifest.layers);
    const history = app.config.history.map((h: { created_by: string }) => h.created_by);
    expect(history.slice(3)).toEqual([
      'INSTALL curl openssh-server',
      'REMOVE tzdata',
      'COPY --chmod=0640 --chown=1000:1000 conf/app.conf /etc/acme/app.conf',
      'RUN mkdir -p "$ACME_HOME" && echo "release=$RELEASE" > "$ACME_HOME/release"',
    ]);
    for (const l of meta.layers.slice(1)) expect(l.cacheKey).toMatch(/^sha256:/);
    // The apt sources the BOOTSTRAP and INSTALL steps used, for `strata sources`: all three
    // levels used one file.
    const debLines = fs
      .readFileSync(sources, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('deb '));
    expect(meta.aptSources).toEqual(debLines);
    expect(mw.config.strata.aptSources).toEqual(debLines);
    const inspected = JSON.parse(
      (await strataOk(['inspect', '--json', 'app:v1'], { store })).stdout,
    ) as { aptSources: string[] };
    expect(inspected.aptSources).toEqual(debLines);
  });

  test('inspect shows ENV, labels and what each layer did to the packages', async () => {
    const text = (await strataOk(['inspect', 'app:v1'], { store })).stdout;
    expect(text).toMatch(/\nEnv: +(.*\n {15})*ACME_HOME=\/opt\/acme\n/);
    expect(text).toMatch(/\nLabels: +(.*\n {15})*org\.opencontainers\.image\.version=3\.1\n/);
    expect(text).toMatch(/ REMOVE tzdata\n {28}- tzdata=\S+\n/);
    const meta = readImage(store, 'app:v1').config.strata;
    const added: string[] = meta.layers[3].packagesAdded;
    expect(text).toContain(
      ` INSTALL curl openssh-server\n${' '.repeat(28)}+ ${added.length > 8 ? `${added.length} packages` : added.join(', ')}\n`,
    );
    const json = JSON.parse((await strataOk(['inspect', '--json', 'app:v1'], { store })).stdout);
    expect(json.layers[3].packagesAdded).toEqual(added);
    expect(json.layers[4].packagesRemoved).toEqual([`tzdata=${tzdataOfBase()}`]);
    expect(text).toMatch(/\nShadowed: +1 package removed or replaced, still in lower layers/);
    expect(json.shadowedPackages.map((p: { name: string }) => p.name)).toEqual(['tzdata']);
    expect(json.env).toEqual(readImage(store, 'app:v1').config.config.Env);
    expect(json.labels['org.opencontainers.image.title']).toBe('acme-gateway');
  });

  test("the added packages' files are there, and dpkg status agrees with the metadata", () => {
    for (const f of [
      'usr/bin/curl',
      'usr/sbin/sshd',
      'usr/lib/openssh/sftp-server',
      'etc/ssl/certs/ca-certificates.crt',
    ])
      expect(fs.existsSync(path.join(appTree, f))).toBe(true);
    const status = statusPackages(appTree);
    expect(status.has('curl')).toBe(true);
    expect(status.has('openssh-server')).toBe(true);
    expect(status.has('tzdata')).toBe(false);
    const meta = readImage(store, 'app:v1').config.strata;
    const fromMeta = new Map<string, string>(
      meta.packages.map((p: { name: string; version: string }) => [p.name, p.version]),
    );
    expect(fromMeta).toEqual(status);
    const install = meta.layers[3];
    expect(install.packagesAdded).toEqual(
      expect.arrayContaining([
        `curl=${status.get('curl')}`,
        `openssh-server=${status.get('openssh-server')}`,
      ]),
    );
    expect(meta.layers[4].packagesRemoved).toEqual([`tzdata=${tzdataOfBase()}`]);
  });

  test('the removed package is recorded as shadowed, and sbom --all-layers lists it', async () => {
    const meta = readImage(store, 'app:v1').config.strata;
    const tzdata = { name: 'tzdata', version: tzdataOfBase() };
    // The base layer's blob still holds it: a push distributes it.
    expect(meta.shadowedPackages).toEqual([
      expect.objectContaining({ ...tzdata, layer: meta.layers[0].diffId }),
    ]);
    type Spdx = {
      packages: Array<{
        name: string;
        versionInfo: string;
        comment?: string;
        licenseDeclared: string;
      }>;
    };
    const squashed = JSON.parse(
      (await strataOk(['sbom', '--compute', 'app:v1'], { store })).stdout,
    ) as Spdx;
    expect(squashed.packages.filter((p) => p.name === 'tzdata')).toEqual([]);
    const all = JSON.parse(
      (await strataOk(['sbom', '--all-layers', 'app:v1'], { store })).stdout,
    ) as Spdx;
    const listed = all.packages.filter((p) => p.name === 'tzdata');
    expect(listed).toEqual([
      expect.objectContaining({
        versionInfo: tzdata.version,
        comment: expect.stringMatching(/removed or replaced by a later layer/),
      }),
    ]);
    // Its copyright file is hidden in the rootfs but read from the base layer.
    expect(listed[0]?.licenseDeclared).not.toBe('NOASSERTION');
    const cdx = JSON.parse(
      (await strataOk(['sbom', '--all-layers', '--format', 'cyclonedx', 'app:v1'], { store }))
        .stdout,
    ) as {
      components: Array<{ name: string; properties?: Array<{ name: string; value: string }> }>;
    };
    const c = cdx.components.find((x) => x.name === 'tzdata');
    expect(c?.properties).toEqual(
      expect.arrayContaining([{ name: 'strata:shadowed', value: 'true' }]),
    );
  });

  test("none of the removed package's files survive", () => {
    const owned = fs
      .readFileSync(path.join(baseTree, 'var/lib/dpkg/info/tzdata.list'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((p) => p.replace(/^\//, ''))
      .filter((p) => !fs.lstatSync(path.join(baseTree, p)).isDirectory());
    expect(owned.length).toBeGreaterThan(100);
    const survivors = owned.filter((p) => {
      try {
        fs.lstatSync(path.join(appTree, p));
        return true;
      } catch {
        return false;
      }
    });
    expect(survivors).toEqual([]);
    expect(fs.existsSync(path.join(appTree, 'var/lib/dpkg/info/tzdata.list'))).toBe(false);
  });

  test('nothing from the build host: apt sources, resolv.conf, ssh host keys', () => {
    const host = fs.readFileSync('/etc/resolv.conf', 'utf8');
    const resolv = path.join(appTree, 'etc/resolv.conf');
    if (fs.existsSync(resolv)) expect(fs.readFileSync(resolv, 'utf8')).not.toBe(host);
    expect(
      fs.readdirSync(path.join(appTree, 'etc/ssh')).filter((f) => f.startsWith('ssh_host_')),
    ).toEqual([]);
    expect(fs.existsSync(path.join(appTree, 'etc/apt/sources.list'))).toBe(false);
    const parts = path.join(appTree, 'etc/apt/sources.list.d');
    expect(fs.existsSync(parts) ? fs.readdirSync(parts) : []).toEqual([]);
    expect(fs.existsSync(path.join(appTree, 'usr/sbin/policy-rc.d'))).toBe(false);
  });

  test('the delta layers hold no apt lists, caches, logs or .debs, and EXCLUDE holds', async () => {
    const app = readImage(store, 'app:v1');
    for (const [i, l] of app.manifest.layers.slice(1).entries()) {
      const entries = await layerEntries(l.digest);
      const bad = entries.filter(
        (e) =>
          /^var\/lib\/apt\/lists\/./.test(e) ||
          /^var\/cache\/apt\/.*\.(bin|deb)$/.test(e) ||
          /^var\/log\/.+[^/]$/.test(e) ||
          /\.deb$/.test(e) ||
          /-old$/.test(e) ||
          /^etc\/ssh\/ssh_host_/.test(e) ||
          /^etc\/resolv\.conf$/.test(e) ||
          /^etc\/apt\/sources\.list/.test(e),
      );
      expect([i, bad]).toEqual([i, []]);
      // Whiteouts there are deletions (REMOVE tzdata), which EXCLUDE must keep.
      if (i >= 2)
        expect(
          entries.filter((e) => /^usr\/share\/(doc|man)\/./.test(e) && !/(^|\/)\.wh\./.test(e)),
        ).toEqual([]);
    }
    // The base keeps its docs: EXCLUDE applies to what the stage's steps add.
    expect(fs.existsSync(path.join(baseTree, 'usr/share/doc/bash'))).toBe(true);
    expect(fs.existsSync(path.join(appTree, 'usr/share/doc/openssh-server'))).toBe(false);
  });

  test("apt's source package cache never leaves the step; the lists stay in the store", () => {
    // apt trusts a srcpkgcache.bin it finds, which a step's code could forge: none is shared.
    const apt = path.join(store, '.strata', 'apt');
    expect(fs.existsSync(path.join(apt, 'cache'))).toBe(false);
    const lists = fs.readdirSync(path.join(apt, 'lists'));
    expect(lists.length).toBeGreaterThan(0);
    for (const d of lists)
      expect(fs.readdirSync(path.join(apt, 'lists', d)).some((f) => /_Packages$/.test(f))).toBe(
        true,
      );
    expect(fs.existsSync(path.join(appTree, 'run/strata'))).toBe(false);
  });

  test('COPY --chown/--chmod, ENV and --build-arg reach the tree', () => {
    const conf = path.join(appTree, 'etc/acme/app.conf');
    const st = fs.statSync(conf);
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1000, 1000, 0o640]);
    expect(fs.readFileSync(conf, 'utf8')).toBe(
      fs.readFileSync(path.join(EXAMPLES, 'app/conf/app.conf'), 'utf8'),
    );
    expect(fs.statSync(path.join(appTree, 'etc/acme/middleware.conf')).mode & 0o7777).toBe(0o644);
    expect(fs.readFileSync(path.join(appTree, 'opt/acme/release'), 'utf8')).toBe('release=3.1\n');
  });
});

describe('the step cache', () => {
  const appArgs = () => [
    ...gz,
    '--apt-sources',
    sources,
    '--build-arg',
    'RELEASE=3.1',
    '-t',
    'app:v1',
    appDir,
  ];

  test(
    'an unchanged rebuild is all cache hits and gives the same manifest',
    async () => {
      const r = await buildJson(appArgs(), store);
      expect([r.stepsRun, r.cacheHits]).toEqual([0, 4]);
      expect(r.digest).toBe(first.digest);
    },
    SLOW,
  );

  test(
    'a different --build-arg rebuilds only the RUN that reads it',
    async () => {
      const r = await buildJson(
        [...gz, '--apt-sources', sources, '--build-arg=RELEASE=3.2', appDir],
        store,
      );
      expect([r.cacheHits, r.stepsRun]).toEqual([3, 1]);
      expect(r.layers.slice(0, 6)).toEqual(first.layers.slice(0, 6));
      expect(r.layers[6]!.digest).not.toBe(first.layers[6]!.digest);
    },
    SLOW,
  );

  test(
    'changing step N rebuilds from step N on',
    async () => {
      const changed = path.join(work, 'app-changed');
      fs.cpSync(appDir, changed, { recursive: true });
      fs.appendFileSync(path.join(changed, 'conf/app.conf'), 'debug=1\n');
      const r = await buildJson(
        [...gz, '--apt-sources', sources, '--build-arg=RELEASE=3.1', changed],
        store,
      );
      // INSTALL and REMOVE cached; COPY (its source changed) and RUN (its parent changed) run.
      expect([r.cacheHits, r.stepsRun]).toEqual([2, 2]);
      expect(r.layers.slice(0, 5)).toEqual(first.layers.slice(0, 5));
      expect(r.layers[5]!.digest).not.toBe(first.layers[5]!.digest);
      // RUN made the same change on a different parent: the same layer.
      expect(r.layers[6]!.digest).toBe(first.layers[6]!.digest);
    },
    SLOW,
  );

  test(
    '--no-cache runs every step and gives the same layers (deterministic)',
    async () => {
      const r = await buildJson(['--no-cache', ...appArgs()], store);
      expect([r.cacheHits, r.stepsRun]).toEqual([0, 4]);
      expect(r.layers.map((l) => l.digest)).toEqual(first.layers.map((l) => l.digest));
      expect(r.digest).toBe(first.digest);
    },
    SLOW,
  );

  test(
    'with SOURCE_DATE_EPOCH set, --no-cache rebuilds give the same layers too',
    async () => {
      const env = { SOURCE_DATE_EPOCH: '1700000000' };
      const a = await buildJson(['--no-cache', ...appArgs()], store, env);
      const b = await buildJson(['--no-cache', ...appArgs()], store, env);
      expect(b.layers.map((l) => l.digest)).toEqual(a.layers.map((l) => l.digest));
      expect(b.digest).toBe(a.digest);
      const { config } = readImage(store, 'app:v1');
      expect(config.created).toBe('2023-11-14T22:13:20Z');
    },
    SLOW,
  );

  test(
    "the template's name is --name, else its tag's repository without the registry: one build, one digest",
    async () => {
      const ctx = path.join(work, 'named');
      fs.mkdirSync(ctx);
      fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nRUN echo named > /etc/named\n');
      const env = { SOURCE_DATE_EPOCH: '1700000000' };
      const args = ['--apt-sources', sources, ctx];
      const local = await buildJson(['-t', 'acme/product:dev', ...args], store, env);
      const remote = await buildJson(['-t', '127.0.0.1:5000/acme/product:1', ...args], store, env);
      const named = await buildJson(
        ['-t', 'candidate:x', '--name', 'acme/product', ...args],
        store,
        env,
      );
      expect(remote.digest).toBe(local.digest);
      expect(named.digest).toBe(local.digest);
      expect(readImage(store, 'candidate:x').config.strata.name).toBe('acme/product');
      const other = await buildJson(['-t', 'candidate:y', ...args], store, env);
      expect(readImage(store, 'candidate:y').config.strata.name).toBe('candidate');
      expect(other.digest).not.toBe(local.digest);
    },
    SLOW,
  );

  test(
    'the store passes fsck afterwards',
    async () => {
      const r = await strata(['fsck'], { store });
      expect(r.code).toBe(0);
      await strataOk(['ls'], { store });
      expect(show(r)).not.toMatch(/corrupt|missing/i);
    },
    SLOW,
  );
});
