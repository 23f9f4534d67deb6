/**
 * Templates whose bases come from a registry (Debian's docker-registry on 127.0.0.1): `strata
 * check` resolves them as `strata build` does and says stale when a registry tag moved, a rebuild
 * says which base moved, registry errors are sentences with the hints push and pull give, and
 * the base chain records the registry reference a base was pulled from.
 *
 * The templates are tiny (a few files, made by `template create`) and the Stratafiles add only
 * FEATUREs, so nothing runs in a chroot and no apt mirror is needed: what is tested is where the
 * bases come from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTinyRootfs } from './helpers';
import {
  Registry,
  freePort,
  makePki,
  startRegistry,
  strata,
  strataOk,
  tmpDir,
} from './registry-fixtures';

jest.setTimeout(180_000);

const work = tmpDir('check-reg');
/** No credentials from the machine's own docker config. */
const env = { HOME: work, DOCKER_CONFIG: path.join(work, 'docker'), REGISTRY_AUTH_FILE: undefined };
const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  fs.rmSync(work, { recursive: true, force: true });
});

let reg: Registry;
beforeAll(async () => {
  reg = await startRegistry();
  cleanups.push(() => reg.stop());
});

let n = 0;
function newStore(): string {
  return path.join(work, `store-${++n}`);
}

/** A tiny template tagged `tag` in `store`; `marker` makes its digest differ. */
async function tinyTemplate(store: string, tag: string, marker: string): Promise<void> {
  const root = makeTinyRootfs(path.join(work, `rootfs-${++n}`), marker);
  await strataOk(
    ['--store', store, 'template', 'create', root, '-t', tag, '--name', 'acme-platform'],
    { env },
  );
}

/** Publish a new platform image under `ref` (a tag that moves when it is pushed again). */
async function publishPlatform(
  ref: string,
  marker: string,
  extra: string[] = [],
  withEnv: Record<string, string | undefined> = env,
): Promise<void> {
  const store = newStore();
  await tinyTemplate(store, 'platform:x', marker);
  await strataOk(['--store', store, 'push', ...extra, 'platform:x', ref], { env: withEnv });
}

/** A build context whose Stratafile is `lines`. */
function context(lines: string[]): string {
  const dir = path.join(work, `ctx-${++n}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'Stratafile'), `${lines.join('\n')}\n`);
  return dir;
}

interface CheckJson {
  upToDate: boolean;
  reasons: Array<{ kind: string; message: string }>;
  notes: string[];
}

function check(store: string, ctx: string, tag: string, extra: string[] = []) {
  return strata(
    ['--store', store, 'check', '--no-packages', '-f', path.join(ctx, 'Stratafile'), ...extra, tag],
    { env },
  );
}

interface BaseChainJson {
  config: { strata: { baseChain: Array<{ name: string; ref: string; digest: string }> } };
}

function digestOf(store: string, tag: string): string {
  const index = JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  const hit = index.manifests.find(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag,
  );
  if (!hit) throw new Error(`no ${tag} in ${store}`);
  return hit.digest;
}

function baseChainOf(store: string, tag: string) {
  const blob = (d: string) =>
    JSON.parse(fs.readFileSync(path.join(store, 'blobs', 'sha256', d.slice(7)), 'utf8')) as {
      config: { digest: string };
    };
  const manifest = blob(digestOf(store, tag));
  return (blob(manifest.config.digest) as unknown as BaseChainJson['config']).strata.baseChain;
}

describe('a base chain that comes from a registry', () => {
  let platform: string;
  let middleware: string;
  let mwStore: string;
  let mwCtx: string;
  let appStore: string;
  let appCtx: string;

  beforeAll(async () => {
    platform = `${reg.host}/acme/platform:1.0`;
    middleware = `${reg.host}/acme/middleware:2.0`;
    await publishPlatform(platform, 'platform-1');
    mwStore = newStore();
    mwCtx = context([`FROM ${platform}`, 'FEATURE middleware']);
    await strataOk(['--store', mwStore, 'build', '-q', '-t', 'acme/middleware:2.0', mwCtx], {
      env,
    });
    await strataOk(['--store', mwStore, 'push', 'acme/middleware:2.0', middleware], { env });
    appStore = newStore();
    appCtx = context([`FROM ${middleware}`, 'FEATURE app']);
    await strataOk(['--store', appStore, 'build', '-q', '-t', 'acme/app:1', appCtx], { env });
  });

  test('check says up to date while the registry tags stay', async () => {
    const mw = await check(mwStore, mwCtx, 'acme/middleware:2.0');
    expect([mw.code, mw.stdout.trim(), mw.stderr]).toEqual([
      0,
      'acme/middleware:2.0 is up to date',
      '',
    ]);
    const app = await check(appStore, appCtx, 'acme/app:1');
    expect([app.code, app.stdout.trim(), app.stderr]).toEqual([0, 'acme/app:1 is up to date', '']);
  });

  describe('after the platform tag moved to a new digest', () => {
    let before: string;
    beforeAll(async () => {
      before = baseChainOf(mwStore, 'acme/middleware:2.0')[0]?.digest as string;
      await publishPlatform(platform, 'platform-2');
    });

    test('check of a template built FROM it says stale and exits 1', async () => {
      const r = await check(mwStore, mwCtx, 'acme/middleware:2.0');
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^acme\/middleware:2\.0 is stale:$/m);
      expect(r.stdout).toMatch(
        new RegExp(
          `Stratafile:1:1: FROM ${platform.replace(/\./g, '\\.')} moved: the template was built on ${before}, it now resolves to sha256:`,
        ),
      );
      expect(r.stderr).not.toMatch(/registry client|not checked/);
    });

    test('check of an application two steps down names the moved ancestor', async () => {
      const r = await check(appStore, appCtx, 'acme/app:1', ['--json']);
      expect(r.code).toBe(1);
      const doc = JSON.parse(r.stdout) as CheckJson;
      expect(doc.upToDate).toBe(false);
      expect(doc.notes).toEqual([]);
      expect(doc.reasons).toEqual([
        {
          kind: 'base',
          message: expect.stringMatching(
            new RegExp(`^ancestor ${platform.replace(/\./g, '\\.')} moved: .*${before}`),
          ) as string,
        },
      ]);
    });

    test('a rebuild without --frozen says the base moved, from which digest to which', async () => {
      const frozen = await strata(
        ['--store', mwStore, 'build', '-q', '--frozen', '-t', 'acme/middleware:2.0', mwCtx],
        { env },
      );
      expect(frozen.code).not.toBe(0);
      expect(frozen.stderr).toMatch(/--frozen: FROM .* now resolves to/);
      // Not quiet: the note is what this test looks at, and --quiet leaves notes out.
      const r = await strataOk(['--store', mwStore, 'build', '-t', 'acme/middleware:2.0', mwCtx], {
        env,
      });
      const now = baseChainOf(mwStore, 'acme/middleware:2.0')[0]?.digest as string;
      expect(now).not.toBe(before);
      expect(r.stderr).toContain(`base ${platform} moved from ${before} to ${now}`);
      const again = await check(mwStore, mwCtx, 'acme/middleware:2.0');
      expect([again.code, again.stdout.trim()]).toEqual([0, 'acme/middleware:2.0 is up to date']);
      // A second rebuild finds the lock up to date: nothing moved.
      const quiet = await strataOk(
        ['--store', mwStore, 'build', '-q', '-t', 'acme/middleware:2.0', mwCtx],
        { env },
      );
      expect(quiet.stderr).not.toMatch(/moved/);
    });
  });
});

describe('a registry that cannot be reached', () => {
  test('check exits 2 with the reason and the hint, never "up to date"', async () => {
    const gone = await startRegistry();
    const ref = `${gone.host}/acme/platform:1.0`;
    await publishPlatform(ref, 'gone');
    const store = newStore();
    const ctx = context([`FROM ${ref}`, 'FEATURE x']);
    await strataOk(['--store', store, 'build', '-q', '-t', 'x:1', ctx], { env });
    await gone.stop();
    const r = await check(store, ctx, 'x:1');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^strata: error: .*ECONNREFUSED/);
    expect(r.stderr).toContain('(hint: is the registry running, and is the host:port right?)');
    // Any check that cannot finish is 2, so that 1 always means stale.
    const missing = await check(store, ctx, 'nosuch:1');
    expect([missing.code, missing.stdout]).toEqual([2, '']);
    expect(missing.stderr).toMatch(/^strata: error: no image nosuch:1 in the store/);
  });

  test("build's FROM on a wrong port gives the hint that push and pull give", async () => {
    const port = await freePort();
    const ctx = context([`FROM 127.0.0.1:${port}/acme/platform:1.0`, 'FEATURE x']);
    const r = await strata(['--store', newStore(), 'build', '-q', ctx], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/Stratafile:1:1: FROM .*ECONNREFUSED/);
    expect(r.stderr).toContain('(hint: is the registry running, and is the host:port right?)');
    const pull = await strata(
      ['--store', newStore(), 'pull', `127.0.0.1:${port}/acme/platform:1.0`],
      { env },
    );
    expect(pull.stderr).toContain('(hint: is the registry running, and is the host:port right?)');
  });
});

describe('registry errors', () => {
  let base: string;
  beforeAll(async () => {
    base = `${reg.host}/acme/errors-base`;
    await publishPlatform(`${base}:1.0`, 'errors-1');
    await publishPlatform(`${base}:2.0`, 'errors-2');
  });

  test('FROM a repository with a typo says the repository was not found', async () => {
    const ctx = context([`FROM ${reg.host}/acme/errors-bsae:2.0`, 'FEATURE x']);
    const r = await strata(['--store', newStore(), 'build', '-q', ctx], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(
      `Stratafile:1:1: FROM ${reg.host}/acme/errors-bsae:2.0: ${reg.host} has no repository acme/errors-bsae`,
    );
    expect(r.stderr).not.toMatch(/HTTP 404|MANIFEST_UNKNOWN|NAME_UNKNOWN/);
  });

  test('FROM a tag that does not exist lists the tags there are', async () => {
    const ctx = context([`FROM ${base}:2.1`, 'FEATURE x']);
    const r = await strata(['--store', newStore(), 'build', '-q', ctx], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${base} has no tag 2.1 (its tags: 1.0, 2.0)`);
    expect(r.stderr).not.toMatch(/HTTP 404|MANIFEST_UNKNOWN/);
    // pull says the same
    const pull = await strata(['--store', newStore(), 'pull', `${base}:2.1`], { env });
    expect(pull.stderr.trim()).toBe(`strata: error: ${base} has no tag 2.1 (its tags: 1.0, 2.0)`);
  });

  test('a digest that is not there says so', async () => {
    const digest = `sha256:${'0'.repeat(64)}`;
    const pull = await strata(['--store', newStore(), 'pull', `${base}@${digest}`], { env });
    expect(pull.code).toBe(1);
    expect(pull.stderr.trim()).toBe(`strata: error: ${base} has no manifest ${digest}`);
  });
});

describe('the base chain', () => {
  test('records the registry reference a base was pulled from, not the local tag', async () => {
    const platform = `${reg.host}/acme/chain-platform:1.0`;
    await publishPlatform(platform, 'chain-1');
    const pushed = await strataOk(['--store', newStore(), 'pull', '--json', platform], { env });
    const platformDigest = (JSON.parse(pushed.stdout) as { digest: string }).digest;

    // The middleware team pulls the platform under a local name and builds FROM that name.
    const mwStore = newStore();
    await strataOk(['--store', mwStore, 'pull', platform, '-t', 'acme/platform:1.0'], { env });
    const mwCtx = context(['FROM acme/platform:1.0', 'FEATURE middleware']);
    await strataOk(['--store', mwStore, 'build', '-q', '-t', 'acme/middleware:2.0', mwCtx], {
      env,
    });
    expect(baseChainOf(mwStore, 'acme/middleware:2.0')).toEqual([
      { name: 'acme-platform', ref: platform, digest: platformDigest },
    ]);
    const middleware = `${reg.host}/acme/chain-middleware:2.0`;
    await strataOk(['--store', mwStore, 'push', 'acme/middleware:2.0', middleware], { env });

    // Downstream, the application's chain names both by where they can be found.
    const appStore = newStore();
    const appCtx = context([`FROM ${middleware}`, 'FEATURE app']);
    await strataOk(['--store', appStore, 'build', '-q', '-t', 'acme/app:1', appCtx], { env });
    const chain = baseChainOf(appStore, 'acme/app:1');
    expect(chain.map((b) => b.ref)).toEqual([platform, middleware]);
    expect(chain[0]?.digest).toBe(platformDigest);

    // So check can follow the platform there when its tag moves.
    await publishPlatform(platform, 'chain-2');
    const r = await check(appStore, appCtx, 'acme/app:1');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `ancestor ${platform} moved: the template was built on ${platformDigest}`,
    );
  });
});

describe('check over TLS with a login', () => {
  test('takes --ca-cert and --insecure, and the saved credentials', async () => {
    const pki = makePki(tmpDir('check-pki'));
    const tls = await startRegistry({ tls: pki, htpasswd: { alice: 'pw' } });
    cleanups.push(() => tls.stop());
    const authEnv = { ...env, DOCKER_CONFIG: path.join(work, 'docker-tls') };
    await strataOk(
      ['login', tls.host, '-u', 'alice', '--password-stdin', '--ca-cert', pki.caCert],
      { env: authEnv, input: 'pw' },
    );
    const ref = `${tls.host}/acme/platform:1.0`;
    await publishPlatform(ref, 'tls-1', ['--ca-cert', pki.caCert], authEnv);
    const store = newStore();
    const ctx = context([`FROM ${ref}`, 'FEATURE x']);
    await strataOk(['--store', store, 'build', '-q', '--ca-cert', pki.caCert, '-t', 'x:1', ctx], {
      env: authEnv,
    });

    const untrusted = await strata(
      ['--store', store, 'check', '--no-packages', '-f', path.join(ctx, 'Stratafile'), 'x:1'],
      { env: authEnv },
    );
    expect(untrusted.code).toBe(2);
    expect(untrusted.stderr).toContain('(hint: trust the registry');

    for (const opt of [['--ca-cert', pki.caCert], ['--insecure']]) {
      const ok = await strata(
        [
          '--store',
          store,
          'check',
          '--no-packages',
          '-f',
          path.join(ctx, 'Stratafile'),
          ...opt,
          'x:1',
        ],
        { env: authEnv },
      );
      expect([ok.code, ok.stdout.trim(), ok.stderr]).toEqual([0, 'x:1 is up to date', '']);
    }

    // Without the login, the registry refuses: that is not "up to date" either.
    const anon = await strata(
      [
        '--store',
        store,
        'check',
        '--no-packages',
        '-f',
        path.join(ctx, 'Stratafile'),
        '--ca-cert',
        pki.caCert,
        'x:1',
      ],
      { env },
    );
    expect(anon.code).toBe(2);
    expect(anon.stderr).toMatch(/^strata: error: .*(requires a login|authentication required)/);
  });
});
