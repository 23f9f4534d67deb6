/**
 * Multi-platform templates: `strata build --platform linux/amd64,linux/arm64` tags one OCI index
 * with each platform's rootfs and buildchroot; push and pull carry the whole index, and skopeo,
 * an independent reader, agrees on it both ways; `FROM` a multi-platform tag takes the platform
 * being built; a platform that is not there is an error that lists the ones that are.
 *
 * The per-platform bases are `strata template create` of cached minbase tarballs (amd64, and
 * arm64 made once through qemu-user), so that only a RUN and a COPY run per platform.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { foreignMinbaseTar, minbaseRootfs, run, SLOW } from './helpers';
import { Registry, haveTool, startRegistry, strata, strataOk, tmpDir } from './registry-fixtures';

jest.setTimeout(SLOW);

const work = tmpDir('mp-e2e');
const storeA = path.join(work, 'storeA');
const storeB = path.join(work, 'storeB');
const a = (...args: string[]) => strataOk(['--store', storeA, ...args]);
const b = (...args: string[]) => strataOk(['--store', storeB, ...args]);
let registry: Registry;

interface Entry {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}
interface IndexDoc {
  mediaType: string;
  manifests: Entry[];
}

const ROLE = 'io.strata.role';
const sha256 = (bytes: string | Buffer) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r.stdout;
}

/** What skopeo reads of an image: its raw manifest or index, as bytes and parsed. */
async function rawOf(image: string): Promise<{ bytes: string; doc: IndexDoc }> {
  const bytes = await sh('skopeo', ['inspect', '--raw', '--tls-verify=false', image]);
  return { bytes, doc: JSON.parse(bytes) as IndexDoc };
}

/** The entry of `doc` for a role and an architecture (there must be exactly one). */
function entry(doc: IndexDoc, role: string, arch: string): Entry {
  const es = doc.manifests.filter(
    (m) => m.annotations?.[ROLE] === role && m.platform?.architecture === arch,
  );
  expect(es).toHaveLength(1);
  return es[0] as Entry;
}

async function readFromTar(tar: string, file: string): Promise<string> {
  return sh('tar', ['-xOf', tar, file]);
}

function stratafile(dir: string, lines: string[]): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Stratafile'), `${lines.join('\n')}\n`);
  return dir;
}

let index: IndexDoc;
let indexDigest: string;

beforeAll(async () => {
  const [fx, arm64Tar] = await Promise.all([minbaseRootfs(), foreignMinbaseTar('arm64')]);
  registry = await startRegistry();
  await a('template', 'create', fx.minbaseTar, '-t', 'base:amd64', '--name', 'base');
  await a('template', 'create', arm64Tar, '-t', 'base:arm64', '--name', 'base');
});

afterAll(async () => {
  await registry?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

test('the tools are installed', () => {
  expect(['skopeo', 'docker-registry', 'qemu-aarch64-static'].filter((t) => !haveTool(t))).toEqual(
    [],
  );
});

test('build --platform linux/amd64,linux/arm64 tags one index: a rootfs and a buildchroot per platform, each with its platform', async () => {
  // Each platform FROM its own single-platform base, through docker's automatic TARGETARCH.
  const ctx = stratafile(path.join(work, 'app'), [
    'ARG TARGETARCH',
    'FROM base:${TARGETARCH} AS tools',
    'RUN uname -m > /etc/buildchroot-arch',
    '',
    'FROM base:${TARGETARCH}',
    'RUN uname -m > /etc/strata-arch',
    'BUILDCHROOT tools',
  ]);
  const built = JSON.parse(
    (await a('--json', 'build', '--platform', 'linux/amd64,linux/arm64', '-t', 'app:1', ctx))
      .stdout,
  ) as {
    digest: string;
    platforms: Array<{ platform: string; digest: string; lockFile: string; lockWritten: boolean }>;
  };
  // Spelled as inspect spells them; each platform keeps its own lock: their bases and layers differ.
  expect(built.platforms.map((p) => [p.platform, p.lockFile, p.lockWritten])).toEqual([
    ['linux/amd64', path.join(ctx, 'Stratafile.amd64.lock'), true],
    ['linux/arm64/v8', path.join(ctx, 'Stratafile.arm64.lock'), true],
  ]);
  expect(fs.existsSync(path.join(ctx, 'Stratafile.amd64.lock'))).toBe(true);
  expect(fs.existsSync(path.join(ctx, 'Stratafile.arm64.lock'))).toBe(true);

  // skopeo reads the store as an OCI layout: the tag is one index with four images.
  const raw = await rawOf(`oci:${storeA}:app:1`);
  index = raw.doc;
  indexDigest = sha256(raw.bytes);
  expect(indexDigest).toBe(built.digest);
  expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  expect(index.manifests.map((m) => [m.annotations?.[ROLE], m.platform])).toEqual([
    ['rootfs', { os: 'linux', architecture: 'amd64' }],
    ['buildchroot', { os: 'linux', architecture: 'amd64' }],
    ['rootfs', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['buildchroot', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
  ]);

  // skopeo, choosing by platform, finds the arm64 rootfs and its config says arm64/v8.
  const arm = await sh('skopeo', [
    '--override-arch',
    'arm64',
    'inspect',
    '--config',
    `oci:${storeA}:app:1`,
  ]);
  expect(JSON.parse(arm)).toMatchObject({ architecture: 'arm64', variant: 'v8', os: 'linux' });

  // Every role of every platform is found by selection, and each ran on its own architecture.
  const out = path.join(work, 'out');
  fs.mkdirSync(out, { recursive: true });
  for (const [platform, uname] of [
    ['linux/arm64', 'aarch64'],
    ['linux/amd64', 'x86_64'],
  ] as const) {
    const rootfs = path.join(out, `rootfs-${uname}.tar`);
    const bc = path.join(out, `bc-${uname}.tar`);
    await a('flatten', 'app:1', '--platform', platform, '--rootfs', rootfs, '--buildchroot', bc);
    expect((await readFromTar(rootfs, 'etc/strata-arch')).trim()).toBe(uname);
    expect((await readFromTar(bc, 'etc/buildchroot-arch')).trim()).toBe(uname);
  }
  // Asked for no platform, a multi-platform template is ambiguous, and says how to choose.
  const none = await strata([
    '--store',
    storeA,
    'flatten',
    'app:1',
    '--rootfs',
    path.join(out, 'x.tar'),
  ]);
  expect(none.code).not.toBe(0);
  expect(none.stderr).toContain('--platform');
  expect(none.stderr).toContain('linux/arm64/v8');

  // inspect shows the platforms, and one platform's image on request.
  const summary = JSON.parse((await a('--json', 'inspect', 'app:1')).stdout) as {
    platforms: string[];
    images: Array<{ role: string; platform: string; architecture: string }>;
  };
  expect(summary.platforms).toEqual(['linux/amd64', 'linux/arm64/v8']);
  expect(summary.images.map((i) => `${i.role} ${i.platform} ${i.architecture}`)).toEqual([
    'rootfs linux/amd64 amd64',
    'buildchroot linux/amd64 amd64',
    'rootfs linux/arm64/v8 arm64',
    'buildchroot linux/arm64/v8 arm64',
  ]);
  const human = (await a('inspect', 'app:1')).stdout;
  expect(human).toContain('Platforms:     linux/amd64, linux/arm64/v8');
  const one = JSON.parse(
    (await a('--json', 'inspect', 'app:1', '--platform', 'linux/arm64')).stdout,
  ) as { architecture: string; digest: string };
  expect(one.architecture).toBe('arm64');

  // image and save take one platform's image too.
  const ext4 = path.join(out, 'arm64.ext4');
  await a('image', 'app:1', '--platform', 'linux/arm64', '--ext4', ext4, '--extra-space', '8M');
  expect((await sh('debugfs', ['-R', 'cat /etc/strata-arch', ext4])).trim()).toBe('aarch64');
  const archive = path.join(out, 'amd64.tmpl.img');
  await a('save', 'app:1', '--platform', 'linux/amd64', '-o', archive);
  const saved = JSON.parse(
    await sh('skopeo', ['inspect', '--config', `oci-archive:${archive}`]),
  ) as {
    architecture: string;
  };
  expect(saved.architecture).toBe('amd64');

  // check recomputes each platform's steps as that platform's build did.
  const check = await a(
    'check',
    'app:1',
    '-f',
    path.join(ctx, 'Stratafile'),
    '--platform',
    'linux/arm64',
    '--no-packages',
  );
  expect(check.stdout).toContain('up to date');
});

test('push carries the whole index; skopeo sees it and copies the arm64 image; pull gets the same digests', async () => {
  const target = `${registry.host}/mp/app:1`;
  const pushed = JSON.parse((await a('--json', 'push', 'app:1', target, '--insecure')).stdout) as {
    digest: string;
  };
  expect(pushed.digest).toBe(indexDigest);

  const remote = await rawOf(`docker://${target}`);
  expect(sha256(remote.bytes)).toBe(indexDigest);
  expect(remote.doc.manifests.map((m) => m.digest)).toEqual(index.manifests.map((m) => m.digest));

  // skopeo picks by platform: --override-arch arm64 gets the arm64 rootfs image.
  const copied = path.join(work, 'skopeo-arm64');
  await sh('skopeo', [
    'copy',
    '--src-tls-verify=false',
    '--override-arch',
    'arm64',
    `docker://${target}`,
    `oci:${copied}:arm64`,
  ]);
  const layout = JSON.parse(fs.readFileSync(path.join(copied, 'index.json'), 'utf8')) as IndexDoc;
  expect(layout.manifests.map((m) => m.digest)).toEqual([entry(index, 'rootfs', 'arm64').digest]);

  // push --platform pushes that platform's rootfs image alone.
  const armTarget = `${registry.host}/mp/app:arm64`;
  await a('push', 'app:1', armTarget, '--platform', 'linux/arm64', '--insecure');
  expect(sha256((await rawOf(`docker://${armTarget}`)).bytes)).toBe(
    entry(index, 'rootfs', 'arm64').digest,
  );

  // pull takes every platform by default: the very same index.
  const pulled = JSON.parse(
    (await b('--json', 'pull', target, '-t', 'app:1', '--insecure')).stdout,
  ) as { digest: string };
  expect(pulled.digest).toBe(indexDigest);
  expect(sha256((await rawOf(`oci:${storeB}:app:1`)).bytes)).toBe(indexDigest);
  // --platform takes one platform's rootfs image only.
  const arm = JSON.parse(
    (
      await b(
        '--json',
        'pull',
        target,
        '-t',
        'app:arm64',
        '--platform',
        'linux/arm64',
        '--insecure',
      )
    ).stdout,
  ) as { digest: string };
  expect(arm.digest).toBe(entry(index, 'rootfs', 'arm64').digest);

  // A multi-platform index that skopeo pushes is pulled with the same digests.
  const bySkopeo = `${registry.host}/mp/by-skopeo:1`;
  await sh('skopeo', [
    'copy',
    '--all',
    '--preserve-digests',
    '--dest-tls-verify=false',
    `oci:${storeA}:app:1`,
    `docker://${bySkopeo}`,
  ]);
  const again = JSON.parse(
    (await b('--json', 'pull', bySkopeo, '-t', 'by-skopeo:1', '--insecure')).stdout,
  ) as { digest: string };
  expect(again.digest).toBe(indexDigest);
  const summary = JSON.parse((await b('--json', 'inspect', 'by-skopeo:1')).stdout) as {
    platforms: string[];
  };
  expect(summary.platforms).toEqual(['linux/amd64', 'linux/arm64/v8']);
});

test('FROM a multi-platform tag takes the platform being built', async () => {
  const ctx = stratafile(path.join(work, 'derived'), ['FROM app:1', 'COPY note /etc/note']);
  fs.writeFileSync(path.join(ctx, 'note'), 'derived\n');
  const summaryOf = async (ref: string, platform?: string) => {
    const s = JSON.parse(
      (await a('--json', 'inspect', ref, ...(platform ? ['--platform', platform] : []))).stdout,
    ) as {
      architecture: string;
      layers: Array<{ digest: string }>;
      baseChain: Array<{ digest: string }>;
    };
    return s;
  };
  const baseArm = await summaryOf('app:1', 'linux/arm64');

  // One platform of it: arm64, on the arm64 image, and the inherited arm64 buildchroot.
  await a('build', '--platform', 'linux/arm64', '-t', 'derived:arm64', ctx);
  const arm = await summaryOf('derived:arm64', 'linux/arm64');
  expect(arm.architecture).toBe('arm64');
  expect(arm.layers.slice(0, -1)).toEqual(baseArm.layers);
  expect(arm.baseChain[arm.baseChain.length - 1]?.digest).toBe(indexDigest);
  const bc = path.join(work, 'derived-bc.tar');
  await a('flatten', 'derived:arm64', '--buildchroot', bc);
  expect((await readFromTar(bc, 'etc/buildchroot-arch')).trim()).toBe('aarch64');

  // No --platform: the host's, as docker does.
  await a('build', '-t', 'derived:host', ctx);
  const host = await summaryOf('derived:host');
  expect(host.architecture).toBe('amd64');

  // Both: a multi-platform template again, each platform on its own base image.
  await a('build', '--platform', 'linux/arm64,linux/amd64', '-t', 'derived:all', ctx);
  const doc = (await rawOf(`oci:${storeA}:derived:all`)).doc;
  expect(doc.manifests.map((m) => `${m.annotations?.[ROLE]} ${m.platform?.architecture}`)).toEqual([
    'rootfs arm64',
    'buildchroot arm64',
    'rootfs amd64',
    'buildchroot amd64',
  ]);
  // The buildchroots are inherited as they were.
  expect(entry(doc, 'buildchroot', 'arm64').digest).toBe(
    entry(index, 'buildchroot', 'arm64').digest,
  );
  expect(entry(doc, 'buildchroot', 'amd64').digest).toBe(
    entry(index, 'buildchroot', 'amd64').digest,
  );
  // Each platform's rootfs stacks on that platform's base image.
  const baseAmd = await summaryOf('app:1', 'linux/amd64');
  for (const [platform, base] of [
    ['linux/arm64', baseArm],
    ['linux/amd64', baseAmd],
  ] as const) {
    const s = await summaryOf('derived:all', platform);
    expect(s.layers.slice(0, -1)).toEqual(base.layers);
  }
  expect(host.layers.slice(0, -1)).toEqual(baseAmd.layers);
});

test('a platform the template does not have is an error at the FROM line that lists the ones it has', async () => {
  const ctx = stratafile(path.join(work, 'armhf'), ['FROM app:1', 'COPY note /etc/note']);
  fs.writeFileSync(path.join(ctx, 'note'), 'x\n');
  const r = await strata([
    '--store',
    storeA,
    'build',
    '--platform',
    'linux/arm/v7',
    '-t',
    'nope',
    ctx,
  ]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain(`${path.join(ctx, 'Stratafile')}:1:1: FROM app:1`);
  expect(r.stderr).toContain(
    'no image for linux/arm/v7 (its platforms: linux/amd64, linux/arm64/v8)',
  );
  // A platform string that is not [os/]arch[/variant] is a usage error before anything runs.
  const bad = await strata(['--store', storeA, 'build', '--platform', 'linux', '-t', 'nope', ctx]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toContain('invalid platform "linux"');
});
