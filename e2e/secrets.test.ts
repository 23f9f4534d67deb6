/**
 * Build secrets: `RUN --mount=type=secret` with `strata build --secret`, and a private apt
 * repository's auth.conf as the `apt-auth` secret. Unique random values go in; then every file
 * of the store (layer blobs decompressed, the build cache, snapshots and logs too), the lock
 * file and the build's output are searched for them and for their base64: none may hold one.
 */
import { randomBytes, createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { zstdOrGunzip } from './support/secret-search';
import { SLOW, cleanupTmp, runOk, show, strata } from './helpers';
import { BuildJson, DEBIAN_SOURCES, readImage, storeWithBase } from './fixtures/build/harness';
import { AuthMirror, AuthRepo, startAuthMirror, startAuthRepo } from './support/auth-repo';

let work: string;
let store: string;
let repo: AuthRepo;
let sourcesList: string;
const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };

const tok = `strata-tok-${randomBytes(16).toString('hex')}`;
const envTok = `strata-env-${randomBytes(16).toString('hex')}`;
const password = `strata-pw-${randomBytes(16).toString('hex')}`;

/** Each value in the forms a leak would most likely take. */
function needles(values: string[]): Array<{ what: string; bytes: Buffer }> {
  return values.flatMap((v) => [
    { what: v, bytes: Buffer.from(v) },
    { what: `base64 of ${v}`, bytes: Buffer.from(Buffer.from(v).toString('base64')) },
    { what: `base64 of ${v}\\n`, bytes: Buffer.from(Buffer.from(`${v}\n`).toString('base64')) },
  ]);
}

/** Every regular file under `dir`. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Where any of `values` (or their base64) occurs in the store, the extra files or texts. */
function leaks(values: string[], extraFiles: string[], texts: Record<string, string>): string[] {
  const ns = needles(values);
  const found: string[] = [];
  const search = (where: string, data: Buffer) => {
    for (const n of ns) if (data.includes(n.bytes)) found.push(`${n.what} in ${where}`);
  };
  let blobs = 0;
  for (const f of [...filesUnder(store), ...extraFiles]) {
    const data = fs.readFileSync(f);
    search(f, data);
    const plain = zstdOrGunzip(data);
    if (plain) {
      blobs++;
      search(`${f} (decompressed)`, plain);
    }
  }
  for (const [where, text] of Object.entries(texts)) search(where, Buffer.from(text));
  // The search must have seen compressed layers, or it proves nothing.
  expect(blobs).toBeGreaterThan(0);
  return found;
}

/** Entry names of a layer blob, by GNU tar. */
async function layerEntries(digest: string): Promise<string[]> {
  const blob = path.join(store, 'blobs', 'sha256', digest.slice(7));
  const r = await runOk('tar', ['--zstd', '-tf', blob]);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((e) => e.replace(/^\.\//, '').replace(/\/$/, ''))
    .filter((e) => e !== '' && e !== '.');
}

function layerFile(digest: string, file: string): string {
  const blob = path.join(store, 'blobs', 'sha256', digest.slice(7));
  const r = spawnSync('tar', ['--zstd', '-xOf', blob, file]);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

async function build(ctx: string, args: string[], env: Record<string, string> = {}) {
  return strata(['build', '--json', '--apt-sources', sourcesList, ...args, ctx], {
    store,
    env: { ...EPOCH, ...env },
  });
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

beforeAll(async () => {
  ({ work, store } = await storeWithBase());
  repo = await startAuthRepo(path.join(work, 'private'), password);
  sourcesList = path.join(work, 'private.list');
  fs.writeFileSync(sourcesList, `${repo.sourcesLine}\n`);
}, SLOW);

afterAll(async () => {
  await repo?.close();
  cleanupTmp();
});

describe('RUN --mount=type=secret', () => {
  let ctx: string;
  let tokFile: string;
  let first: BuildJson;
  let firstOut: { stdout: string; stderr: string };

  beforeAll(async () => {
    ctx = path.join(work, 'run');
    fs.mkdirSync(ctx);
    tokFile = path.join(work, 'tok.secret');
    fs.writeFileSync(tokFile, `${tok}\n`);
    fs.writeFileSync(
      path.join(ctx, 'Stratafile'),
      [
        'FROM base:v1',
        // Reads both, proves it with hashes, prints one (plain and base64), cannot write it.
        // /etc/debian_version exists in the base: the secret covers it for the step only.
        `RUN --mount=type=secret,id=tok --mount=type=secret,id=envtok,target=/etc/strata-e2e/deep/env.txt,mode=0440 --mount=type=secret,id=tok,target=/etc/debian_version set -e; sha256sum /run/secrets/tok /etc/strata-e2e/deep/env.txt /etc/debian_version > /out-proof; stat -c '%a %u %n' /run/secrets/tok /etc/strata-e2e/deep/env.txt >> /out-proof; echo "printed: $(cat /run/secrets/tok)"; base64 /run/secrets/tok; if touch /run/secrets/tok 2>/dev/null; then exit 1; fi`,
        // A later step sees none of it; an optional secret that was not given is simply absent.
        `RUN --mount=type=secret,id=absent set -e; test ! -e /run/secrets/absent; test ! -e /run/secrets/tok; test ! -e /etc/strata-e2e; grep -qv strata-tok /etc/debian_version; echo later-step-saw-no-secret`,
        '',
      ].join('\n'),
    );
    const r = await build(
      ctx,
      ['-t', 'secret:v1', '--secret', `id=tok,src=${tokFile}`, '--secret', 'id=envtok,env=E2E_TOK'],
      { E2E_TOK: envTok },
    );
    if (r.code !== 0) throw new Error(show(r));
    first = JSON.parse(r.stdout) as BuildJson;
    firstOut = r;
  }, SLOW);

  test('the step reads the secrets, read-only, with their modes', () => {
    expect(first.stepsRun).toBe(2);
    // The later step changes nothing, so it makes no layer: the RUN's is the last.
    const layer = first.layers[first.layers.length - 1] as { digest: string };
    expect(layerFile(layer.digest, 'out-proof')).toBe(
      [
        `${sha(`${tok}\n`)}  /run/secrets/tok`,
        `${sha(envTok)}  /etc/strata-e2e/deep/env.txt`,
        `${sha(`${tok}\n`)}  /etc/debian_version`,
        '400 0 /run/secrets/tok',
        '440 0 /etc/strata-e2e/deep/env.txt',
        '',
      ].join('\n'),
    );
    expect(firstOut.stderr).toContain('later-step-saw-no-secret');
  });

  test('what the step printed of a secret is masked in the output', () => {
    expect(firstOut.stderr).toContain('printed: ****');
    expect(firstOut.stderr.match(/\*\*\*\*/g)?.length).toBeGreaterThanOrEqual(2);
  });

  test('the layer holds the proof only: no mount point, no made directory, no whiteout', async () => {
    const runLayer = first.layers[first.layers.length - 1] as { digest: string };
    expect(await layerEntries(runLayer.digest)).toEqual(['out-proof']);
    // The later step left nothing either: it made no layer at all.
    const steps = (first as BuildJson & { steps: Array<{ emptyLayer?: boolean }> }).steps;
    expect(steps.map((s) => s.emptyLayer === true)).toEqual([false, true]);
  });

  test('the history names the secrets, never their values', () => {
    const img = readImage(store, 'secret:v1');
    const history = img.config.history.map((h: { created_by: string }) => h.created_by);
    expect(history).toContainEqual(
      expect.stringMatching(
        /^RUN --mount=type=secret,id=envtok,target=\/etc\/strata-e2e\/deep\/env.txt,mode=0440 --mount=type=secret,id=tok --mount=type=secret,id=tok,target=\/etc\/debian_version set -e;/,
      ),
    );
  });

  test('no blob, cache entry, snapshot, log, lock file or output holds a secret', () => {
    expect(
      leaks([tok, envTok], [path.join(ctx, 'Stratafile.lock')], {
        'build stdout': firstOut.stdout,
        'build stderr': firstOut.stderr,
      }),
    ).toEqual([]);
  });

  test('other secret values are a cache hit: only the fact of the mount is keyed', async () => {
    fs.writeFileSync(tokFile, 'another value\n');
    const r = await build(
      ctx,
      ['-t', 'secret:v2', '--secret', `id=tok,src=${tokFile}`, '--secret', 'id=envtok,env=E2E_TOK'],
      { E2E_TOK: 'another env value' },
    );
    expect(r.code).toBe(0);
    const again = JSON.parse(r.stdout) as BuildJson;
    expect([again.stepsRun, again.cacheHits, again.digest]).toEqual([0, 2, first.digest]);
  });

  test('a required secret that was not given fails the step at its line', async () => {
    const dir = path.join(work, 'required');
    fs.mkdirSync(dir);
    fs.writeFileSync(
      path.join(dir, 'Stratafile'),
      'FROM base:v1\nRUN --mount=type=secret,id=nope,required=true true\n',
    );
    const r = await build(dir, ['--secret', `id=tok,src=${tokFile}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `${path.join(dir, 'Stratafile')}:2:1: RUN: the required secret nope was not given`,
    );
  });
});

describe('apt-auth: a private apt repository behind basic auth', () => {
  let ctx: string;
  let authConf: string;

  beforeAll(() => {
    ctx = path.join(work, 'apt');
    fs.mkdirSync(ctx);
    fs.writeFileSync(path.join(ctx, 'Stratafile'), `FROM base:v1\nINSTALL ${repo.pkg}\n`);
    authConf = path.join(work, 'auth.conf');
    fs.writeFileSync(authConf, `machine ${repo.url}/ login ${repo.user} password ${password}\n`);
  });

  test(
    'without the secret, INSTALL fails clearly at its line',
    async () => {
      const r = await build(ctx, ['-t', 'private:v1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`${path.join(ctx, 'Stratafile')}:2:1:`);
      expect(r.stderr).toContain('HTTP 401: the repository wants credentials');
    },
    SLOW,
  );

  test(
    'with it, INSTALL installs the package; apt used the credentials; no layer keeps them',
    async () => {
      const before = repo.requests.length;
      const r = await build(ctx, ['-t', 'private:v1', '--secret', `id=apt-auth,src=${authConf}`]);
      if (r.code !== 0) throw new Error(show(r));
      const built = JSON.parse(r.stdout) as BuildJson;
      const layer = built.layers[built.layers.length - 1] as { digest: string };
      const entries = await layerEntries(layer.digest);
      expect(entries).toContain(repo.file.slice(1));
      expect(entries.filter((e) => e.includes('auth.conf'))).toEqual([]);
      // The .deb came through apt in the step, with the credentials the secret gave it.
      const debGets = repo.requests.slice(before).filter((q) => q.path.endsWith('.deb'));
      expect(debGets.length).toBeGreaterThan(0);
      expect(debGets.every((q) => q.authorized)).toBe(true);
      expect(
        leaks([password, `${repo.user}:${password}`], [path.join(ctx, 'Stratafile.lock')], {
          'build stdout': r.stdout,
          'build stderr': r.stderr,
        }),
      ).toEqual([]);
    },
    SLOW,
  );
});

describe('apt-auth: BOOTSTRAP from a private mirror, and strata check of what it built', () => {
  const mirrorPassword = `strata-mirror-${randomBytes(16).toString('hex')}`;
  let mirror: AuthMirror;
  let ctx: string;
  let mirrorList: string;
  let authConf: string;
  let built: BuildJson;

  beforeAll(async () => {
    mirror = await startAuthMirror(mirrorPassword);
    ctx = path.join(work, 'bootstrap');
    fs.mkdirSync(ctx);
    // Two packages, unpacked only: the cheapest BOOTSTRAP that still reads the whole suite.
    fs.writeFileSync(
      path.join(ctx, 'Stratafile'),
      'FROM scratch\nBOOTSTRAP --variant=extract --include=base-files,dpkg bookworm\n',
    );
    mirrorList = path.join(work, 'mirror.list');
    fs.writeFileSync(
      mirrorList,
      DEBIAN_SOURCES.split('\n')[0]!.replace('http://deb.debian.org', mirror.url) + '\n',
    );
    authConf = path.join(work, 'mirror-auth.conf');
    fs.writeFileSync(
      authConf,
      `machine ${mirror.url} login ${mirror.user} password ${mirrorPassword}\n`,
    );
  });

  afterAll(() => mirror?.close());

  const bootstrap = (args: string[]) =>
    strata(['build', '--json', '--apt-sources', mirrorList, '-t', 'mirrored:v1', ...args, ctx], {
      store,
      env: EPOCH,
    });
  const check = (args: string[]) =>
    strata(
      [
        'check',
        '--apt-sources',
        mirrorList,
        '-f',
        path.join(ctx, 'Stratafile'),
        ...args,
        'mirrored:v1',
      ],
      { store },
    );

  test(
    'without the secret, BOOTSTRAP fails at its line and names the way out',
    async () => {
      const r = await bootstrap([]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`${path.join(ctx, 'Stratafile')}:2:1:`);
      expect(r.stderr).toContain('HTTP 401: the repository wants credentials');
      expect(r.stderr).toContain('--secret id=apt-auth');
    },
    SLOW,
  );

  test(
    'with it, mmdebstrap reads the mirror with the credentials; no layer, mount or file keeps them',
    async () => {
      const before = mirror.requests.length;
      const r = await bootstrap(['--secret', `id=apt-auth,src=${authConf}`]);
      if (r.code !== 0) throw new Error(show(r));
      built = JSON.parse(r.stdout) as BuildJson;
      const asked = mirror.requests.slice(before);
      expect(asked.filter((q) => q.path.endsWith('.deb')).length).toBeGreaterThanOrEqual(2);
      expect(asked.filter((q) => !q.authorized)).toEqual([]);
      const entries = await layerEntries((built.layers[0] as { digest: string }).digest);
      expect(entries).toContain('usr/bin/dpkg');
      // apt owns the folder /etc/apt/auth.conf.d, which stays, empty; nothing in it does.
      expect(entries.filter((e) => e.includes('auth.conf') && e !== 'etc/apt/auth.conf.d')).toEqual(
        [],
      );
      expect(
        fs
          .readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .filter((l) => l.includes(store)),
      ).toEqual([]);
      expect(
        leaks([mirrorPassword, `${mirror.user}:${mirrorPassword}`], [], {
          'build stdout': r.stdout,
          'build stderr': r.stderr,
        }),
      ).toEqual([]);
    },
    SLOW,
  );

  test(
    'strata sources of it needs no secret: it lists no packages, so it asks the mirror nothing',
    async () => {
      expect(built).toBeDefined();
      // The template was unpacked, not installed: it lists no packages, so there is no source
      // to look up (the unit tests of writeSources fetch a source package through auth).
      const out = path.join(work, 'mirrored-sources');
      const before = mirror.requests.length;
      const r = await strata(['sources', '--json', 'mirrored:v1', '-o', out], { store });
      if (r.code !== 0) throw new Error(show(r));
      expect((JSON.parse(r.stdout) as { sources: unknown[] }).sources).toEqual([]);
      expect(mirror.requests.slice(before)).toEqual([]);
    },
    SLOW,
  );

  test(
    'strata check takes the same secret for the indices it reads, and says so when it lacks it',
    async () => {
      expect(built).toBeDefined();
      const without = await check([]);
      expect(without.code).toBe(2);
      expect(without.stderr).toContain('401');
      expect(without.stderr).toContain('--secret id=apt-auth');
      const r = await check(['--secret', `id=apt-auth,src=${authConf}`]);
      if (r.code !== 0) throw new Error(show(r));
      expect(r.stdout).toContain('mirrored:v1 is up to date');
      expect(leaks([mirrorPassword], [], { 'check output': r.stdout + r.stderr })).toEqual([]);
    },
    SLOW,
  );
});
