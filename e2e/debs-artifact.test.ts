/**
 * The .debs of a template as an OCI 1.1 artifact: attached in the store, carried by push and
 * pull through a real docker-registry 2.8 (no referrers API: the fallback tag), by save and
 * load, and exported by `strata debs` as a flat apt repository that plain apt installs from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArtifactTypes, Digest, MediaTypes } from '@strata/oci';
import { Store } from '@strata/store';
import { buildDeb, minbaseRootfs } from './helpers';
import {
  Registry,
  haveTool,
  sh,
  startRegistry,
  strata,
  strataOk,
  tmpDir,
} from './registry-fixtures';

jest.setTimeout(600_000);

test('the tools of this test are installed', () => {
  const tools = ['docker-registry', 'skopeo', 'umoci', 'dpkg-deb', 'chroot', 'unshare', 'tar'];
  expect(tools.filter((t) => !haveTool(t))).toEqual([]);
});

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function json<T>(r: { stdout: string }): T {
  return JSON.parse(r.stdout) as T;
}

interface InspectJson {
  digest: string;
  artifacts: Array<{
    digest: string;
    artifactType: string;
    subject: string;
    files: number;
    titles: string[];
  }>;
}
interface DebsJson {
  dir: string;
  digest: string;
  artifacts: string[];
  packages: Array<{ name: string; version: string; architecture: string; filename: string }>;
}

describe('debs attached to a template', () => {
  let reg: Registry;
  let work: string;
  let env: Record<string, string>;
  let minbaseTar: string;
  let fxTar: string;
  let storeA: string;
  let subject: Digest;
  let artifact: Digest;
  const debs: string[] = [];

  beforeAll(async () => {
    reg = await startRegistry();
    cleanups.push(() => reg.stop());
    work = tmpDir('debs-e2e');
    cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
    env = { HOME: work, DOCKER_CONFIG: path.join(work, 'docker') };
    const fx = await minbaseRootfs();
    minbaseTar = fx.minbaseTar;
    fxTar = fx.rootfsTarZst;
    storeA = path.join(work, 'storeA');
    await strataOk(
      [
        '--store',
        storeA,
        'template',
        'create',
        fx.rootfsTarZst,
        '-t',
        'acme/base:1',
        '--name',
        'acme-base',
      ],
      { env },
    );
    await strataOk(
      [
        '--store',
        storeA,
        'template',
        'create',
        fx.rootfsTarZst,
        '-t',
        'acme/plain:1',
        '--name',
        'plain',
      ],
      { env },
    );
    debs.push(
      await buildDeb(
        work,
        'strata-hello',
        {},
        {
          'usr/bin/strata-hello': {
            text: '#!/bin/sh\necho "hello from a strata deb"\n',
            mode: 0o755,
          },
        },
      ),
      await buildDeb(
        work,
        'strata-greeter',
        { Depends: 'strata-hello (>= 1.0)' },
        {
          'usr/share/strata-greeter/greeting': { text: 'greetings\n', mode: 0o644 },
        },
      ),
    );
    // DEBUILD attaches these in a build; here the store's API does, and the CLI does the rest.
    const store = await Store.open(storeA);
    const top = await store.resolve('acme/base:1');
    subject = top.digest;
    const a = await store.attach(
      top,
      ArtifactTypes.debs,
      debs.map((p) => ({ path: p, mediaType: MediaTypes.debianPackage, title: path.basename(p) })),
    );
    artifact = a.digest;
  });

  it('inspect lists the artifact; skopeo and umoci still read the store', async () => {
    const s = json<InspectJson>(
      await strataOk(['--store', storeA, '--json', 'inspect', 'acme/base:1'], { env }),
    );
    expect(s.artifacts).toEqual([
      {
        digest: artifact,
        artifactType: ArtifactTypes.debs,
        subject,
        files: 2,
        titles: ['strata-greeter_1.0_all.deb', 'strata-hello_1.0_all.deb'],
      },
    ]);
    const plain = await strataOk(['--store', storeA, 'inspect', 'acme/base:1'], { env });
    expect(plain.stdout).toMatch(
      new RegExp(`Artifacts: +1\\n.*${ArtifactTypes.debs.replace(/\./g, '\\.')} +2 files`),
    );
    const info = JSON.parse(sh('skopeo', ['inspect', `oci:${storeA}:acme/base:1`])) as {
      Digest: string;
    };
    expect(info.Digest).toBe(subject);
    const refs = sh('umoci', ['ls', '--layout', storeA]).split('\n').filter(Boolean).sort();
    expect(refs).toEqual(['acme/base:1', 'acme/plain:1']);
    const ls = json<Array<{ ref: string }>>(
      await strataOk(['--store', storeA, '--json', 'ls'], { env }),
    );
    expect(ls.map((e) => e.ref).sort()).toEqual(['acme/base:1', 'acme/plain:1']);
    await strataOk(['--store', storeA, 'fsck'], { env });
  });

  it('push carries them to docker-registry 2.8 under the fallback tag; pull brings them to a fresh store; strata debs makes an apt source', async () => {
    const remote = `${reg.host}/acme/base`;
    await strataOk(['--store', storeA, 'push', 'acme/base:1', `${remote}:1`], { env });
    const hex = subject.slice('sha256:'.length);
    const fallback = JSON.parse(
      sh('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${remote}:sha256-${hex}`]),
    ) as { manifests: Array<{ digest: string; artifactType?: string }> };
    expect(fallback.manifests).toEqual([
      expect.objectContaining({ digest: artifact, artifactType: ArtifactTypes.debs }),
    ]);

    const storeB = path.join(work, 'storeB');
    await strataOk(['--store', storeB, 'pull', `${remote}:1`, '-t', 'got/base:1'], { env });
    await strataOk(['--store', storeB, 'fsck'], { env });
    const repo = path.join(work, 'repo');
    const out = json<DebsJson>(
      await strataOk(['--store', storeB, '--json', 'debs', 'got/base:1', '-o', repo], { env }),
    );
    expect(out).toMatchObject({ dir: repo, digest: subject, artifacts: [artifact] });
    expect(out.packages.map((p) => `${p.name} ${p.version} ${p.architecture}`)).toEqual([
      'strata-greeter 1.0 all',
      'strata-hello 1.0 all',
    ]);
    expect(fs.readdirSync(repo).sort()).toEqual([
      'Packages',
      'Release',
      'strata-greeter_1.0_all.deb',
      'strata-hello_1.0_all.deb',
    ]);
    for (const p of debs)
      expect(fs.readFileSync(path.join(repo, path.basename(p)))).toEqual(fs.readFileSync(p));
    const release = fs.readFileSync(path.join(repo, 'Release'), 'utf8');
    expect(release).toMatch(/^SHA256:\n .* Packages$/m);

    // A plain chroot of the minbase, the repository bound in, installs a package by name with
    // its dependency. unshare gives the bind mount a namespace that ends with the command.
    const root = path.join(work, 'chroot');
    fs.mkdirSync(root);
    sh('tar', ['-xpf', minbaseTar, '-C', root, '--numeric-owner']);
    fs.mkdirSync(path.join(root, 'srv', 'debs'), { recursive: true });
    fs.writeFileSync(
      path.join(root, 'etc', 'apt', 'strata-debs.list'),
      'deb [trusted=yes] file:/srv/debs ./\n',
    );
    const apt = [
      '-o',
      'Dir::Etc::SourceList=/etc/apt/strata-debs.list',
      '-o',
      'Dir::Etc::SourceParts=/nonexistent',
      '-o',
      'APT::Sandbox::User=root',
    ].join(' ');
    const script = [
      'set -e',
      `mount --bind ${repo} ${root}/srv/debs`,
      `chroot ${root} apt-get ${apt} update`,
      `DEBIAN_FRONTEND=noninteractive chroot ${root} apt-get ${apt} install -y --no-install-recommends strata-greeter`,
      `chroot ${root} strata-hello`,
    ].join('\n');
    const said = sh('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script]);
    expect(said).toMatch(/hello from a strata deb\n$/);
    const status = fs.readFileSync(path.join(root, 'var', 'lib', 'dpkg', 'status'), 'utf8');
    expect(status).toMatch(/^Package: strata-hello\nStatus: install ok installed$/m);
    expect(status).toMatch(/^Package: strata-greeter\nStatus: install ok installed$/m);
  });

  it('save and load keep them', async () => {
    const file = path.join(work, 'base.tmpl.img');
    await strataOk(['--store', storeA, 'save', 'acme/base:1', '-o', file], { env });
    const archived = JSON.parse(sh('skopeo', ['inspect', `oci-archive:${file}`])) as {
      Digest: string;
    };
    expect(archived.Digest).toBe(subject);
    const storeC = path.join(work, 'storeC');
    await strataOk(['--store', storeC, 'load', file], { env });
    const repo = path.join(work, 'repo-loaded');
    const out = json<DebsJson>(
      await strataOk(['--store', storeC, '--json', 'debs', 'acme/base:1', '-o', repo], { env }),
    );
    expect(out.artifacts).toEqual([artifact]);
    // The same repository, byte for byte, as the store that saved them exports.
    const original = path.join(work, 'repo-original');
    await strataOk(['--store', storeA, 'debs', 'acme/base:1', '-o', original], { env });
    for (const f of fs.readdirSync(original)) {
      expect(fs.readFileSync(path.join(repo, f))).toEqual(fs.readFileSync(path.join(original, f)));
    }
    expect(fs.readdirSync(repo).sort()).toEqual(fs.readdirSync(original).sort());
    // gc keeps them while the tag is there, and takes them with it.
    await strataOk(['--store', storeC, 'gc'], { env });
    await strataOk(['--store', storeC, 'fsck'], { env });
    const store = await Store.open(storeC);
    expect((await store.referrers(subject)).map((d) => d.digest)).toEqual([artifact]);
    await strataOk(['--store', storeC, 'rm', 'acme/base:1'], { env });
    await strataOk(['--store', storeC, 'gc'], { env });
    expect(await store.referrers(subject)).toEqual([]);
    expect(await store.hasBlob(artifact)).toBe(false);
  });

  it('of a template index, the debs on the index and on its rootfs image, not on its buildchroot', async () => {
    await strataOk(
      ['--store', storeA, 'template', 'create', fxTar, '-t', 'acme/app:1', '--name', 'app'],
      { env },
    );
    // The buildchroot is acme/base:1, whose own artifact is not the template's.
    await strataOk(
      [
        '--store',
        storeA,
        'bundle',
        'acme/tmpl:1',
        '--rootfs',
        'acme/app:1',
        '--buildchroot',
        'acme/base:1',
      ],
      { env },
    );
    const store = await Store.open(storeA);
    const index = await store.resolve('acme/tmpl:1');
    const app = await store.resolve('acme/app:1');
    const file = (p: string) => ({
      path: p,
      mediaType: MediaTypes.debianPackage,
      title: path.basename(p),
    });
    const onIndex = await store.attach(index, ArtifactTypes.debs, [file(debs[1] as string)]);
    const onApp = await store.attach(app, ArtifactTypes.debs, [file(debs[0] as string)]);
    const expected = [onIndex.digest, onApp.digest];

    const s = json<InspectJson>(
      await strataOk(['--store', storeA, '--json', 'inspect', 'acme/tmpl:1'], { env }),
    );
    expect(s.artifacts.map((a) => a.digest).sort()).toEqual([...expected, artifact].sort());
    const out = json<DebsJson>(
      await strataOk(
        ['--store', storeA, '--json', 'debs', 'acme/tmpl:1', '-o', path.join(work, 'tmpl-a')],
        { env },
      ),
    );
    expect(out.artifacts).toEqual(expected);
    expect(out.packages.map((p) => p.name)).toEqual(['strata-greeter', 'strata-hello']);

    // The index goes through the registry with both, and with its buildchroot's.
    const remote = `${reg.host}/acme/tmpl`;
    await strataOk(['--store', storeA, 'push', 'acme/tmpl:1', `${remote}:1`], { env });
    const storeD = path.join(work, 'storeD');
    await strataOk(['--store', storeD, 'pull', `${remote}:1`, '-t', 'tmpl:1'], { env });
    await strataOk(['--store', storeD, 'fsck'], { env });
    const pulled = json<DebsJson>(
      await strataOk(
        ['--store', storeD, '--json', 'debs', 'tmpl:1', '-o', path.join(work, 'tmpl-d')],
        { env },
      ),
    );
    expect(pulled.artifacts).toEqual(expected);
    const d = await Store.open(storeD);
    expect((await d.referrers(subject)).map((x) => x.digest)).toEqual([artifact]);
  });

  it('a template with no debs is one clear error', async () => {
    const r = await strata(
      ['--store', storeA, 'debs', 'acme/plain:1', '-o', path.join(work, 'none')],
      { env },
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')[0]).toMatch(/acme\/plain:1 has no Debian packages attached/);
    expect(r.stdout).toBe('');
  });
});
