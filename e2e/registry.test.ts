/**
 * strata push/pull/login against a real CNCF distribution registry (Debian's docker-registry),
 * with skopeo and umoci as independent oracles.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CLI,
  Proxy,
  Registry,
  haveTool,
  makePki,
  makeTree,
  sh,
  startProxy,
  startRegistry,
  startTokenService,
  strata,
  strataOk,
  tmpDir,
  treeSummary,
  TokenService,
} from './registry-fixtures';
import { startStrata } from './helpers';

// These tests need real tools; a missing one is a failure, never a skip (scripts/setup.sh installs them).
const d = describe;
test('the registry test tools are installed', () => {
  const tools = ['docker-registry', 'skopeo', 'umoci', 'htpasswd', 'openssl'];
  expect(tools.filter((t) => !haveTool(t))).toEqual([]);
});

jest.setTimeout(180_000);

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function json<T>(r: { stdout: string }): T {
  return JSON.parse(r.stdout) as T;
}

interface PushJson {
  digest: string;
  uploaded: number;
  skipped: number;
  mounted: number;
  bytes: number;
}
interface PullJson {
  digest: string;
  tag: string;
  downloaded: number;
  present: number;
}

d('registry without auth (plain http on loopback)', () => {
  let reg: Registry;
  let proxy: Proxy;
  let work: string;
  let storeA: string;
  let env: Record<string, string>;
  let digest: string;

  beforeAll(async () => {
    reg = await startRegistry();
    cleanups.push(() => reg.stop());
    proxy = await startProxy(reg.host);
    cleanups.push(() => proxy.stop());
    work = tmpDir('reg-e2e');
    cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
    env = { HOME: work, DOCKER_CONFIG: path.join(work, 'docker') };
    storeA = path.join(work, 'storeA');
    makeTree(path.join(work, 'tree'));
    const r = await strataOk(
      [
        '--store',
        storeA,
        'template',
        'create',
        path.join(work, 'tree'),
        '-t',
        'x',
        '--name',
        'x',
        '--compression',
        'gzip',
      ],
      { env },
    );
    digest = /sha256:[a-f0-9]{64}/.exec(r.stdout)?.[0] ?? '';
  });

  /**
   * Upload sessions the registry still holds for a repository: its `_uploads/<id>` with a
   * `startedat` file. (docker-registry leaves an empty directory behind a cancelled session.)
   */
  const openUploads = (repo: string): string[] => {
    const v2 = path.join(reg.dir, 'data', 'docker', 'registry', 'v2');
    const dir = path.join(v2, 'repositories', repo, '_uploads');
    if (!fs.existsSync(dir)) return [];
    return fs.readdirSync(dir).filter((id) => fs.existsSync(path.join(dir, id, 'startedat')));
  };

  it('pushes, and a re-push of an unchanged template uploads 0 layer bytes', async () => {
    const first = json<PushJson>(
      await strataOk(['--store', storeA, '--json', 'push', 'x', `${proxy.host}/x:t`], { env }),
    );
    expect(first.digest).toBe(digest);
    expect(first.uploaded).toBe(2);
    const uploadedFirst = proxy.blobBytesUp();
    expect(uploadedFirst).toBeGreaterThan(200_000);

    const again = json<PushJson>(
      await strataOk(['--store', storeA, '--json', 'push', 'x', `${proxy.host}/x:t`], { env }),
    );
    expect(again).toMatchObject({ uploaded: 0, skipped: 2, bytes: 0 });
    expect(proxy.blobBytesUp()).toBe(uploadedFirst); // counted on the wire, not by strata
    // Every blob was found by its HEAD, so the re-push opened no upload session at all.
    const rePush = proxy.records.slice(proxy.records.map((p) => p.url).lastIndexOf('/v2/'));
    expect(rePush.filter((p) => p.method === 'POST')).toEqual([]);
    expect(openUploads('x')).toEqual([]);
  });

  it('mounts across repositories instead of uploading', async () => {
    const before = proxy.blobBytesUp();
    const r = json<PushJson>(
      await strataOk(['--store', storeA, '--json', 'push', 'x', `${proxy.host}/other/x:t`], {
        env,
      }),
    );
    expect(r).toMatchObject({ mounted: 2, uploaded: 0 });
    expect(proxy.blobBytesUp()).toBe(before);
    expect(
      proxy.records.some(
        (p) => p.method === 'POST' && p.url.includes('mount=') && p.status === 201,
      ),
    ).toBe(true);
    // Mounted blobs need no upload session: none was opened, so none was left to expire.
    const toOther = proxy.records.filter((p) => p.url.startsWith('/v2/other/x/blobs/uploads/'));
    expect(toOther.filter((p) => !p.url.includes('mount='))).toEqual([]);
    expect(openUploads('other/x')).toEqual([]);
  });

  it('skopeo copies what strata pushed, and umoci unpacks the same tree', async () => {
    const layout = path.join(work, 'skopeo-layout');
    sh('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/x:t`, `oci:${layout}:t`]);
    const idx = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
    expect(idx.manifests[0].digest).toBe(digest);
    const bundle = path.join(work, 'bundle');
    sh('umoci', ['unpack', '--image', `${layout}:t`, bundle]);
    expect(treeSummary(path.join(bundle, 'rootfs'))).toEqual(treeSummary(path.join(work, 'tree')));
  });

  it('pulls what skopeo pushed from an OCI archive, with identical digests', async () => {
    const archive = path.join(work, 'x.tmpl.img');
    await strataOk(['--store', storeA, 'save', 'x', '-o', archive], { env });
    sh('skopeo', [
      'copy',
      '--dest-tls-verify=false',
      `oci-archive:${archive}`,
      `docker://${reg.host}/from-skopeo:1`,
    ]);
    const storeB = path.join(work, 'storeB');
    const r = json<PullJson>(
      await strataOk(['--store', storeB, '--json', 'pull', `${reg.host}/from-skopeo:1`], { env }),
    );
    expect(r.digest).toBe(digest);
    expect(r.tag).toBe(`${reg.host}/from-skopeo:1`);
    const byDigest = json<PullJson>(
      await strataOk(
        ['--store', storeB, '--json', 'pull', `${reg.host}/from-skopeo@${digest}`, '-t', 'local:1'],
        { env },
      ),
    );
    expect(byDigest).toMatchObject({ digest, tag: 'local:1', downloaded: 0, present: 2 });
    // Without -t, a pull by digest gets a tag that is not the registry's referrers tag.
    const untagged = json<PullJson>(
      await strataOk(['--store', storeB, '--json', 'pull', `${reg.host}/from-skopeo@${digest}`], {
        env,
      }),
    );
    expect(untagged.tag).toBe(`${reg.host}/from-skopeo:digest-${digest.replace(':', '-')}`);
    // Pulling another image under a tag in use moves the tag, and says so.
    const tiny = path.join(work, 'tiny-rootfs');
    fs.mkdirSync(path.join(tiny, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(tiny, 'etc/tiny'), 'tiny\n');
    await strataOk(
      ['--store', storeB, 'template', 'create', tiny, '-t', 'tiny:1', '--name', 'tiny'],
      {
        env,
      },
    );
    await strataOk(['--store', storeB, 'push', 'tiny:1', `${reg.host}/tiny:1`], { env });
    const moved = await strataOk(
      ['--store', storeB, 'pull', `${reg.host}/tiny:1`, '-t', 'local:1'],
      {
        env,
      },
    );
    expect(moved.stderr).toMatch(/note: tag local:1 moved from \S+ to \S+/);
    await strataOk(['--store', storeB, 'fsck'], { env });
  });

  it('uploads in chunks when asked', async () => {
    const storeC = path.join(work, 'storeC');
    await strataOk(['--store', storeC, 'pull', `${reg.host}/x:t`, '-t', 'x'], { env });
    fs.rmSync(path.join(storeC, '.strata', 'registry-sources.json'), { force: true }); // no mount hints
    const r = json<PushJson>(
      await strataOk(
        [
          '--store',
          storeC,
          '--json',
          'push',
          'x',
          `${proxy.host}/chunked:1`,
          '--chunk-size',
          '65536',
        ],
        { env },
      ),
    );
    expect(r.uploaded).toBe(2);
    expect(proxy.records.filter((p) => p.method === 'PATCH').length).toBeGreaterThan(3);
    sh('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/chunked:1`]);
  });

  it('pushes and pulls an image index with everything it references', async () => {
    const { Store } = await import('@strata/store');
    const store = await Store.open(storeA);
    const m = await store.resolve('x');
    const index = await store.putJson(
      {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: m.mediaType,
            digest: m.digest,
            size: m.size,
            platform: { architecture: 'amd64', os: 'linux' },
          },
        ],
      },
      'application/vnd.oci.image.index.v1+json',
    );
    await store.tag('xi', index);
    const pushed = json<PushJson>(
      await strataOk(['--store', storeA, '--json', 'push', 'xi', `${reg.host}/idx:1`], { env }),
    );
    expect(pushed.digest).toBe(index.digest);
    const storeD = path.join(work, 'storeD');
    const pulled = json<PullJson & { manifests: number }>(
      await strataOk(['--store', storeD, '--json', 'pull', `${reg.host}/idx:1`], { env }),
    );
    expect(pulled).toMatchObject({ digest: index.digest, manifests: 2, downloaded: 2 });
    await strataOk(['--store', storeD, 'fsck'], { env });
  });

  it('a repeat pull of an index fetches its root and no child manifest again', async () => {
    const storeR = path.join(work, 'storeR');
    // The referrers fallback tags (`sha256-<hex>`) a pull looks up are no manifest fetch.
    const manifestGets = (from: number): string[] =>
      proxy.records
        .slice(from)
        .filter((p) => p.method === 'GET' && p.url.startsWith('/v2/idx/manifests/'))
        .map((p) => p.url.slice('/v2/idx/manifests/'.length))
        .filter((ref) => !ref.startsWith('sha256-'));
    const first = proxy.records.length;
    const pull = async () =>
      json<PullJson & { manifests: number }>(
        await strataOk(['--store', storeR, '--json', 'pull', `${proxy.host}/idx:1`], { env }),
      );
    const once = await pull();
    expect(once).toMatchObject({ manifests: 2, downloaded: 2, present: 0 });
    // The first pull fetched the index by tag and its image manifest by digest.
    const child = manifestGets(first).filter((u) => u.startsWith('sha256:'));
    expect([manifestGets(first).length, child.length]).toEqual([2, 1]);
    const second = proxy.records.length;
    const again = await pull();
    expect(again).toMatchObject({ digest: once.digest, downloaded: 0, present: 2 });
    expect(manifestGets(second)).toEqual(['1']);
    expect(
      proxy.records.slice(second).filter((p) => p.method === 'GET' && /\/blobs\//.test(p.url)),
    ).toEqual([]);
  });

  it('lists tags', async () => {
    const { RegistryClient } = await import('@strata/registry');
    const c = new RegistryClient({ registry: reg.host, repository: 'x' });
    try {
      await c.putManifest(
        't2',
        (await c.getManifest('t')).bytes,
        'application/vnd.oci.image.manifest.v1+json',
      );
      expect((await c.tagList(1)).sort()).toEqual(['t', 't2']);
    } finally {
      c.close();
    }
  });

  it('refuses a lying registry and stores nothing', async () => {
    proxy.mode.corrupt = true;
    try {
      const storeE = path.join(work, 'storeE');
      const r = await strata(['--store', storeE, 'pull', `${proxy.host}/x:t`], { env });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/digest mismatch/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      const blobs = fs.readdirSync(path.join(storeE, 'blobs', 'sha256'));
      expect(blobs).toEqual([]); // not even the manifest: it is only written after its blobs
      expect(
        JSON.parse(fs.readFileSync(path.join(storeE, 'index.json'), 'utf8')).manifests,
      ).toEqual([]);
    } finally {
      proxy.mode.corrupt = false;
    }
  });

  it('a pull killed midway resumes with a Range request and the store passes fsck', async () => {
    const big = path.join(work, 'bigtree');
    makeTree(big, 24 * 1024 * 1024);
    await strataOk(
      [
        '--store',
        storeA,
        'template',
        'create',
        big,
        '-t',
        'big',
        '--name',
        'big',
        '--compression',
        'gzip',
      ],
      { env },
    );
    const pushed = json<PushJson>(
      await strataOk(['--store', storeA, '--json', 'push', 'big', `${reg.host}/big:1`], { env }),
    );
    const storeF = path.join(work, 'storeF');
    proxy.mode.throttle = 4 * 1024 * 1024;
    const child = spawn(process.execPath, [CLI, '--store', storeF, 'pull', `${proxy.host}/big:1`], {
      env: { ...process.env, ...env, CI: '1' },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.once('exit', r));
    const start = proxy.blobBytesDown();
    const deadline = Date.now() + 60_000;
    while (proxy.blobBytesDown() - start < 6 * 1024 * 1024 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;
    proxy.mode.throttle = undefined;
    const partials = fs
      .readdirSync(path.join(storeF, '.strata', 'ingest'))
      .filter((n) => n.endsWith('.partial'));
    expect(partials.length).toBeGreaterThan(0);

    const r = json<PullJson>(
      await strataOk(['--store', storeF, '--json', 'pull', `${proxy.host}/big:1`], { env }),
    );
    expect(r.digest).toBe(pushed.digest);
    expect(
      proxy.records.some((p) => p.range !== undefined && /^bytes=[1-9]\d*-$/.test(p.range)),
    ).toBe(true);
    const fsck = await strata(['--store', storeF, 'fsck'], { env });
    expect(fsck.code).toBe(0);
    const ingest = path.join(storeF, '.strata', 'ingest');
    expect(fs.readdirSync(ingest).filter((n) => n.endsWith('.partial'))).toEqual([]);
    // The killed process's own temp file is the store's to clean: gc drops it (its pid is dead).
    await strataOk(['--store', storeF, 'gc'], { env });
    expect(fs.readdirSync(ingest)).toEqual([]);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)(
    'a pull interrupted by %s exits 130 with one error line, and the next pull completes',
    async (signal) => {
      const tree = path.join(work, `intr-tree-${signal}`);
      makeTree(tree, 8 * 1024 * 1024);
      const ref = `intr-${signal.toLowerCase()}`;
      await strataOk(
        [
          '--store',
          storeA,
          'template',
          'create',
          tree,
          '-t',
          ref,
          '--name',
          ref,
          '--compression',
          'gzip',
        ],
        { env },
      );
      await strataOk(['--store', storeA, 'push', ref, `${reg.host}/${ref}:1`], { env });
      const store = path.join(work, `store-${ref}`);
      proxy.mode.throttle = 2 * 1024 * 1024;
      const run = startStrata(['--store', store, 'pull', `${proxy.host}/${ref}:1`], {
        ...env,
        CI: '1',
      });
      const start = proxy.blobBytesDown();
      const deadline = Date.now() + 60_000;
      while (proxy.blobBytesDown() - start < 1024 * 1024 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      run.child.kill(signal);
      try {
        expect(await run.exited).toEqual([130, null]);
      } finally {
        proxy.mode.throttle = undefined;
      }
      expect(run.output()).toEqual({ stdout: '', stderr: 'strata: error: interrupted\n' });
      await strataOk(['--store', store, 'pull', `${proxy.host}/${ref}:1`], { env });
      expect((await strata(['--store', store, 'fsck'], { env })).code).toBe(0);
    },
  );

  it('two pulls of one image into one store at once both succeed and fetch each blob once', async () => {
    await strataOk(['--store', storeA, 'push', 'x', `${reg.host}/conc:1`], { env });
    const storeConc = path.join(work, 'storeConc');
    const before = proxy.records.filter(
      (p) => p.method === 'GET' && /\/blobs\//.test(p.url),
    ).length;
    const [a, b] = (await Promise.all(
      ['a', 'b'].map(async (t) =>
        json<PullJson>(
          await strataOk(
            ['--store', storeConc, '--json', 'pull', `${proxy.host}/conc:1`, '-t', `conc:${t}`],
            { env },
          ),
        ),
      ),
    )) as [PullJson, PullJson];
    expect(a.digest).toBe(digest);
    expect(b.digest).toBe(digest);
    expect(a.downloaded + b.downloaded).toBe(2); // config and layer, each by one of them
    const gets = proxy.records.filter((p) => p.method === 'GET' && /\/blobs\//.test(p.url));
    expect(gets.length - before).toBe(2);
    expect((await strata(['--store', storeConc, 'fsck'], { env })).code).toBe(0);
    expect(fs.readdirSync(path.join(storeConc, '.strata', 'ingest'))).toEqual([]);
  });
});

d('registry with htpasswd and TLS (self-signed CA)', () => {
  let reg: Registry;
  let work: string;
  let ca: string;
  let env: Record<string, string>;
  let store: string;

  beforeAll(async () => {
    work = tmpDir('reg-tls');
    cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
    const pki = makePki(work);
    ca = pki.caCert;
    reg = await startRegistry({ tls: pki, htpasswd: { alice: 'correct horse' } });
    cleanups.push(() => reg.stop());
    env = { HOME: work, DOCKER_CONFIG: path.join(work, 'docker') };
    store = path.join(work, 'store');
    makeTree(path.join(work, 'tree'));
    await strataOk(
      ['--store', store, 'template', 'create', path.join(work, 'tree'), '-t', 'x', '--name', 'x'],
      { env },
    );
  });

  it('a wrong password gives one clear line and a non-zero exit, and saves nothing', async () => {
    const r = await strata(
      ['login', reg.host, '-u', 'alice', '--password-stdin', '--ca-cert', ca],
      { env, input: 'wrong-pw-123\n' },
    );
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^strata: error: 127\.0\.0\.1:\d+: authentication failed/);
    expect(r.stderr + r.stdout).not.toMatch(/wrong-pw-123/);
    expect(fs.existsSync(path.join(work, 'docker', 'config.json'))).toBe(false);
  });

  it('refuses an untrusted certificate with a hint, and needs a login', async () => {
    const untrusted = await strata(['--store', store, 'push', 'x', `${reg.host}/x:1`], { env });
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toMatch(/--ca-cert/);
    const anon = await strata(['--store', store, 'push', 'x', `${reg.host}/x:1`, '--ca-cert', ca], {
      env,
    });
    expect(anon.code).toBe(1);
    expect(anon.stderr).toMatch(/requires a login|authentication required/);
  });

  it('logs in (docker config format, 0600), pushes, pulls and logs out', async () => {
    await strataOk(['login', reg.host, '-u', 'alice', '--password-stdin', '--ca-cert', ca], {
      env,
      input: 'correct horse\n',
    });
    const file = path.join(work, 'docker', 'config.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString()).toBe('alice:correct horse');

    const pushed = json<PushJson>(
      await strataOk(
        ['--store', store, '--json', 'push', 'x', `${reg.host}/x:1`, '--ca-cert', ca],
        { env },
      ),
    );
    expect(pushed.uploaded).toBe(2);
    const store2 = path.join(work, 'store2');
    const pulled = json<PullJson>(
      await strataOk(['--store', store2, '--json', 'pull', `${reg.host}/x:1`, '--ca-cert', ca], {
        env,
      }),
    );
    expect(pulled.digest).toBe(pushed.digest);
    // --insecure skips verification only when asked
    await strataOk(['--store', store2, 'pull', `${reg.host}/x:1`, '--insecure'], { env });
    // REGISTRY_AUTH_FILE is read too
    const authFile = path.join(work, 'auth.json');
    fs.writeFileSync(
      authFile,
      JSON.stringify({
        auths: { [reg.host]: { auth: Buffer.from('alice:correct horse').toString('base64') } },
      }),
    );
    await strataOk(['--store', store2, 'pull', `${reg.host}/x:1`, '--ca-cert', ca], {
      env: { ...env, DOCKER_CONFIG: path.join(work, 'empty'), REGISTRY_AUTH_FILE: authFile },
    });

    await strataOk(['logout', reg.host], { env });
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).auths).toEqual({});
    const after = await strata(['--store', store2, 'pull', `${reg.host}/x:1`, '--ca-cert', ca], {
      env,
    });
    expect(after.code).toBe(1);
  });

  it('trusts the CAs in NODE_EXTRA_CA_CERTS, alone and together with --ca-cert', async () => {
    const caEnv = { ...env, NODE_EXTRA_CA_CERTS: ca };
    // A CA that did not sign the registry's certificate.
    const otherDir = path.join(work, 'other-pki');
    fs.mkdirSync(otherDir);
    const otherCa = makePki(otherDir).caCert;
    await strataOk(['login', reg.host, '-u', 'alice', '--password-stdin'], {
      env: caEnv,
      input: 'correct horse\n',
    });
    try {
      const store3 = path.join(work, 'store3');
      const r = await strataOk(['--store', store3, '--json', 'pull', `${reg.host}/x:1`], {
        env: caEnv,
      });
      expect(JSON.parse(r.stdout).downloaded).toBe(2);
      // --ca-cert replaces Node's trust store in the TLS options: the variable's CA must be
      // added back in-process, or this registry would be untrusted.
      const store4 = path.join(work, 'store4');
      const both = await strataOk(
        ['--store', store4, '--json', 'pull', `${reg.host}/x:1`, '--ca-cert', otherCa],
        { env: caEnv },
      );
      expect(JSON.parse(both.stdout).downloaded).toBe(2);
      // Without the variable the same certificate is untrusted again.
      for (const extra of [[], ['--ca-cert', otherCa]]) {
        const bare = await strata(['--store', store3, 'pull', `${reg.host}/x:1`, ...extra], {
          env: { ...env, NODE_EXTRA_CA_CERTS: undefined },
        });
        expect(bare.code).toBe(1);
        expect(bare.stderr).toMatch(/--ca-cert/);
      }
    } finally {
      await strataOk(['logout', reg.host], { env });
    }
  });
});

d('registry with token auth', () => {
  let reg: Registry;
  let tokens: TokenService;
  let work: string;
  let env: Record<string, string>;
  let store: string;

  beforeAll(async () => {
    work = tmpDir('reg-token');
    cleanups.push(() => fs.rmSync(work, { recursive: true, force: true }));
    tokens = await startTokenService(work, { bob: 's3cret' });
    cleanups.push(() => tokens.stop());
    reg = await startRegistry({ token: tokens });
    cleanups.push(() => reg.stop());
    env = { HOME: work, DOCKER_CONFIG: path.join(work, 'docker') };
    store = path.join(work, 'store');
    makeTree(path.join(work, 'tree'));
    await strataOk(
      ['--store', store, 'template', 'create', path.join(work, 'tree'), '-t', 'x', '--name', 'x'],
      { env },
    );
  });

  it('anonymous push is refused; a wrong password is one clear line', async () => {
    const anon = await strata(['--store', store, 'push', 'x', `${reg.host}/team/x:1`], { env });
    expect(anon.code).toBe(1);
    expect(anon.stderr).toMatch(/authentication required/);
    const bad = await strata(['login', reg.host, '-u', 'bob', '--password-stdin'], {
      env,
      input: 'nope-nope',
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/authentication failed/);
    expect(bad.stderr).not.toMatch(/nope-nope/);
  });

  it('build --cache-to a repository these credentials cannot push to fails before any step', async () => {
    const ctx = path.join(work, 'ctx');
    fs.mkdirSync(ctx, { recursive: true });
    fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM x\nRUN echo one > /one\n');
    const cache = `${reg.host}/team/cache`;
    const r = await strata(
      ['--store', store, '--json', 'build', '-t', 'y', '--cache-to', cache, ctx],
      {
        env,
      },
    );
    expect(r.code).toBe(1);
    const { error } = JSON.parse(r.stdout) as { error: { message: string; hint?: string } };
    expect(error.message).toContain(`--cache-to ${cache}: cannot push there: `);
    expect(error.message).toMatch(/authentication required/);
    expect(r.stderr).not.toMatch(/\[1\/1\]/);
    // The upload session it opened to find out was for the cache repository, with push asked.
    expect(tokens.requests.some((q) => q.scope.includes('repository:team/cache:pull,push'))).toBe(
      true,
    );
  });

  it('follows the challenge to the token service with pull/push scopes, and mounts across repos', async () => {
    await strataOk(['login', reg.host, '-u', 'bob', '--password-stdin'], { env, input: 's3cret' });
    const pushed = json<PushJson>(
      await strataOk(['--store', store, '--json', 'push', 'x', `${reg.host}/team/x:1`], { env }),
    );
    expect(pushed.uploaded).toBe(2);
    expect(
      tokens.requests.some(
        (r) => r.user === 'bob' && r.scope.includes('repository:team/x:pull,push'),
      ),
    ).toBe(true);
    const mounted = json<PushJson>(
      await strataOk(['--store', store, '--json', 'push', 'x', `${reg.host}/team/y:1`], { env }),
    );
    expect(mounted.mounted).toBe(2);
    expect(
      tokens.requests.some(
        (r) =>
          r.scope.includes('repository:team/x:pull') &&
          r.scope.includes('repository:team/y:pull,push'),
      ),
    ).toBe(true);
    const store2 = path.join(work, 'store2');
    const pulled = json<PullJson>(
      await strataOk(['--store', store2, '--json', 'pull', `${reg.host}/team/y:1`], { env }),
    );
    expect(pulled.digest).toBe(pushed.digest);
  });

  it('takes credentials from a docker-credential helper, and login names the helper it saved them with', async () => {
    const bin = path.join(work, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    const helper = path.join(bin, 'docker-credential-strata-test');
    fs.writeFileSync(
      helper,
      '#!/bin/sh\n[ "$1" = store ] && { cat > "$0.stored"; exit 0; }\nread server\n[ "$1" = get ] || exit 1\nprintf \'{"ServerURL":"%s","Username":"bob","Secret":"s3cret"}\' "$server"\n',
      { mode: 0o755 },
    );
    const dockerDir = path.join(work, 'helper-docker');
    fs.mkdirSync(dockerDir, { recursive: true });
    fs.writeFileSync(
      path.join(dockerDir, 'config.json'),
      JSON.stringify({ credsStore: 'strata-test' }),
    );
    const store3 = path.join(work, 'store3');
    const r = await strataOk(['--store', store3, 'pull', `${reg.host}/team/x:1`], {
      env: { ...env, DOCKER_CONFIG: dockerDir, PATH: `${bin}:${process.env.PATH}` },
    });
    expect(r.stdout).toMatch(/pulled/);
    const login = await strataOk(['login', reg.host, '-u', 'bob', '--password-stdin'], {
      env: { ...env, DOCKER_CONFIG: dockerDir, PATH: `${bin}:${process.env.PATH}` },
      input: 's3cret',
    });
    const config = path.join(dockerDir, 'config.json');
    expect(login.stdout).toBe(
      `logged in to ${reg.host} (credentials saved by docker-credential-strata-test, which ${config} names)\n`,
    );
    expect(JSON.parse(fs.readFileSync(`${helper}.stored`, 'utf8'))).toMatchObject({
      Username: 'bob',
      Secret: 's3cret',
    });
    expect(fs.readFileSync(config, 'utf8')).not.toContain('s3cret');
  });
});
