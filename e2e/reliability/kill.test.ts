/**
 * kill -9 anywhere: each command is started, SIGKILLed after a delay drawn from a seed, and then
 * the store must be as good as if the command had never run. After every kill point:
 *  - no process of the command remains (its process group, or anything whose cwd, root or
 *    command line is in the test's directory), and no mount under that directory;
 *  - no lock in the store blocks the next command (each is held by a named, dead process);
 *  - `strata fsck` is clean;
 *  - rerunning the command succeeds, with the digest of an unkilled run;
 *  - `gc` then leaves only blobs that tags and the build cache reach, and no temp file of a
 *    dead process.
 * The kill takes the whole process group (a CI runner cancelling a job) or the strata process
 * alone (`kill -9 <pid>`), which leaves its children to the parent-death signal.
 *
 * The seed is printed; `STRATA_KILL_SEED=<n>` replays the same kill points (each command
 * draws from its own stream, so `-t` can replay one command alone).
 * `STRATA_LONG=1` runs 300 kill points instead of CI's 30.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import {
  SLOW,
  cleanupTmp,
  manifestOf,
  runOk,
  sha256File,
  show,
  strata,
  strataOk,
  tmpDir,
} from '../helpers';
import { Registry, startRegistry } from '../registry-fixtures';
import { DEB_CACHE, baseArchive, sourcesFile, storeDebs } from '../fixtures/build/harness';
import {
  KillMode,
  StrataRun,
  blockingLocks,
  deadTempFiles,
  killLeftovers,
  killSeed,
  leftoverProcesses,
  mountsUnder,
  reachableBlobs,
  runAndKill,
  seededRandom,
  storedBlobs,
} from '../support/kill-harness';

jest.setTimeout(SLOW);

const LONG = process.env.STRATA_LONG === '1';
const SEED = killSeed();
const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };

/**
 * Kill points per command: in CI (30 in all), and in the long run (300). A build on the minbase
 * base (which unpacks a real Debian tree first) costs a minute a point on a loaded CI machine,
 * and one with INSTALL (apt's lists fetched, packages installed) two: only the long run has
 * them; CI's builds run on tiny:1, whose unpacking is its first phase too.
 */
const POINTS: Record<string, { ci: number; long: number }> = {
  'template create': { ci: 3, long: 30 },
  build: { ci: 8, long: 60 },
  'build on minbase': { ci: 0, long: 20 },
  'build with INSTALL': { ci: 0, long: 10 },
  pull: { ci: 3, long: 30 },
  push: { ci: 3, long: 30 },
  save: { ci: 3, long: 30 },
  load: { ci: 3, long: 30 },
  flatten: { ci: 3, long: 30 },
  gc: { ci: 4, long: 30 },
};

let work: string;
/**
 * Stores copied for each kill point: `pristine` holds tiny:1 (a shell and a few tools from the
 * host) and small:1 (a few MB), `minbase` holds base:v1 (the minbase fixture, loaded, never
 * unpacked), apart so that the other points do not copy and re-hash it.
 */
let pristine: string;
let minbase: string;
/** The rootfs of small:1, which `template create` makes again. */
let smallRootfs: string;
let registry: Registry;
/** small:1 saved as an archive, for `load`. */
let smallArchive: string;
const tally: Array<{ command: string; points: number; finishedFirst: number; problems: number }> =
  [];

beforeAll(async () => {
  console.log(`kill -9 harness: seed ${SEED} (replay with STRATA_KILL_SEED=${SEED})`);
  work = tmpDir('strata-kill-');
  pristine = path.join(work, 'pristine');
  minbase = path.join(work, 'minbase');
  await strataOk(['load', await baseArchive(), '-t', 'base:v1'], { store: minbase });
  const tiny = makeTinyRoot(path.join(work, 'tiny-rootfs'));
  await strataOk(['template', 'create', tiny, '-t', 'tiny:1', '--name', 'tiny'], {
    store: pristine,
    env: EPOCH,
  });
  smallRootfs = makeRootfs(path.join(work, 'small-rootfs'));
  await strataOk(['template', 'create', smallRootfs, '-t', 'small:1', '--name', 'small'], {
    store: pristine,
    env: EPOCH,
  });
  smallArchive = path.join(work, 'small.tmpl.img');
  await strataOk(['save', 'small:1', '-o', smallArchive], { store: pristine });
  registry = await startRegistry();
  await strataOk(['push', 'small:1', `${registry.host}/kill/small:1`], { store: pristine });
});

afterAll(async () => {
  await registry?.stop();
  console.log(
    `kill -9 harness: seed ${SEED}\n` +
      tally
        .map(
          (t) =>
            `  ${t.command}: ${t.points} kill points (${t.finishedFirst} finished before the kill), ${t.problems} problems`,
        )
        .join('\n'),
  );
  cleanupTmp();
});

/** A fresh copy of a store made in beforeAll (or, with none, an empty one). */
async function freshStore(dir: string, from?: string): Promise<string> {
  const store = path.join(dir, 'store');
  if (from !== undefined) await runOk('cp', ['-a', from, store]);
  return store;
}

function sha256Text(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** The digest the registry answers for `repo:tag` (Docker-Content-Digest of a HEAD). */
function registryDigest(repo: string, tag: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: registry.port,
        method: 'HEAD',
        path: `/v2/${repo}/manifests/${tag}`,
        headers: {
          Accept:
            'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
        },
      },
      (res) => {
        res.resume();
        resolve(`${res.statusCode} ${String(res.headers['docker-content-digest'] ?? '')}`);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

interface Scenario {
  command: string;
  /** Set up a kill point's directory; returns the run (its store inside `dir`). */
  prepare(dir: string, point: number): Promise<StrataRun>;
  /** What the finished command made, as one comparable string. */
  digest(run: StrataRun, dir: string, point: number): Promise<string>;
  /** Outputs that must be whole or absent after a kill (atomic writes). */
  outputs?(dir: string): string[];
}

/** Everything a kill point found wrong; empty when the store survived. */
async function killPoint(
  s: Scenario,
  point: number,
  duration: number,
  want: string,
  random: () => number,
) {
  const dir = path.join(work, `${s.command.replace(/ /g, '-')}-${point}`);
  fs.mkdirSync(dir);
  const run = await s.prepare(dir, point);
  const delay = Math.round(random() * duration);
  const mode: KillMode = random() < 0.5 ? 'group' : 'pid';
  const problems: string[] = [];
  const out = await runAndKill(run, delay, mode);
  const note = out.finished ? ` (it finished first, exit ${out.result.code})` : '';
  console.log(`kill ${s.command} #${point}: SIGKILL to the ${mode} after ${delay} ms${note}`);
  if (out.finished && out.result.code !== 0)
    problems.push(`unkilled run failed: ${show(out.result)}`);

  const procs = await leftoverProcesses(out.pid, [dir]);
  if (procs.length > 0) {
    problems.push(`processes left: ${procs.join('; ')}`);
    killLeftovers(out.pid, [dir]);
  }
  const mounts = mountsUnder([dir]);
  if (mounts.length > 0) problems.push(`mounts left: ${mounts.join(', ')}`);
  const locks = blockingLocks(run.store);
  if (locks.length > 0) problems.push(`blocking locks: ${locks.join('; ')}`);
  for (const f of s.outputs?.(dir) ?? []) {
    if (fs.existsSync(f) && !out.finished) {
      // Written atomically, an output is either absent or whole; a whole one is checked below.
      const got = await s.digest(run, dir, point).catch((e: Error) => `unreadable: ${e.message}`);
      if (got !== want) problems.push(`partial output ${f} (${got})`);
    }
  }
  if (fs.existsSync(run.store)) {
    const fsck = await strata(['fsck'], { store: run.store });
    if (fsck.code !== 0) problems.push(`fsck after the kill: ${show(fsck)}`);
  }

  const again = await strata(run.args, {
    store: run.store,
    cwd: run.cwd,
    env: run.env,
    stdinFile: run.stdinFile,
  });
  if (again.code !== 0) problems.push(`rerun failed: ${show(again)}`);
  else {
    const got = await s.digest(run, dir, point).catch((e: Error) => `unreadable: ${e.message}`);
    if (got !== want) problems.push(`rerun made ${got}, an unkilled run ${want}`);
  }

  const gc = await strata(['gc'], { store: run.store });
  if (gc.code !== 0) problems.push(`gc: ${show(gc)}`);
  else {
    const reach = reachableBlobs(run.store);
    const stray = [...storedBlobs(run.store)].filter((d) => !reach.has(d));
    if (stray.length > 0) problems.push(`gc kept unreachable blobs: ${stray.join(', ')}`);
    const temps = deadTempFiles(run.store);
    if (temps.length > 0) problems.push(`gc left temp files: ${temps.join(', ')}`);
    // fsck ran before the rerun; what gc must not have taken is checked by hand (no re-hash).
    const stored = storedBlobs(run.store);
    const taken = [...reach].filter((d) => !stored.has(d));
    if (taken.length > 0) problems.push(`gc took reachable blobs: ${taken.join(', ')}`);
  }
  const where = `${s.command} #${point} (${mode} after ${delay} ms, seed ${SEED})`;
  if (problems.length === 0) fs.rmSync(dir, { recursive: true, force: true });
  return { where, problems, finished: out.finished };
}

/** Time an unkilled run, then kill `count` runs at points spread over that time. */
async function survive(s: Scenario, count: number): Promise<void> {
  // Each command draws from its own stream, so that a replay of one command (-t) is exact.
  const random = seededRandom(
    (SEED ^ Number.parseInt(sha256Text(s.command).slice(0, 8), 16)) >>> 0,
  );
  const refDir = path.join(work, `${s.command.replace(/ /g, '-')}-ref`);
  fs.mkdirSync(refDir);
  const ref = await s.prepare(refDir, -1);
  const start = Date.now();
  await strataOk(ref.args, {
    store: ref.store,
    cwd: ref.cwd,
    env: ref.env,
    stdinFile: ref.stdinFile,
  });
  const duration = Date.now() - start;
  const want = await s.digest(ref, refDir, -1);
  console.log(`kill ${s.command}: an unkilled run takes ${duration} ms and makes ${want}`);
  fs.rmSync(refDir, { recursive: true, force: true });
  const failures: string[] = [];
  let finishedFirst = 0;
  for (let i = 0; i < count; i++) {
    const r = await killPoint(s, i, duration, want, random);
    if (r.finished) finishedFirst++;
    if (r.problems.length > 0) failures.push(`${r.where}:\n  ${r.problems.join('\n  ')}`);
  }
  tally.push({ command: s.command, points: count, finishedFirst, problems: failures.length });
  expect(failures).toEqual([]);
}

/** A rootfs tree of a few MB whose content depends on nothing but the code below. */
function makeRootfs(dir: string, files = 40): string {
  const w = (rel: string, s: string | Buffer) => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), s);
  };
  w(
    'etc/os-release',
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n',
  );
  w(
    'var/lib/dpkg/status',
    'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n',
  );
  for (let i = 0; i < files; i++) {
    const h = createHash('sha256').update(`file ${i}`);
    const chunk = Buffer.alloc(200_000);
    let seed = h.digest();
    for (let o = 0; o < chunk.length; o += 32) {
      seed.copy(chunk, o);
      seed = createHash('sha256').update(seed).digest();
    }
    w(`usr/share/kill/${String(i).padStart(2, '0')}.bin`, chunk);
  }
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    fs.lutimesSync(path.join(dir, name), 1_600_000_000, 1_600_000_000);
  }
  return dir;
}

/**
 * A root with a shell and the few host tools the build's RUN step uses (with their libc): a
 * base that unpacks in a moment, so that most build kill points fall in the step's own phases.
 */
function makeTinyRoot(dir: string): string {
  const copy = (from: string, to: string) => {
    fs.mkdirSync(path.dirname(path.join(dir, to)), { recursive: true });
    fs.copyFileSync(fs.realpathSync(from), path.join(dir, to));
    fs.chmodSync(path.join(dir, to), fs.statSync(from).mode & 0o7777);
  };
  makeRootfs(dir, 0);
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib/x86_64-linux-gnu', 'usr/lib64', 'etc', 'tmp'])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) fs.symlinkSync(`usr/${l}`, path.join(dir, l));
  copy('/bin/dash', 'usr/bin/sh');
  const tools = ['env', 'seq', 'sleep', 'sha256sum', 'cat', 'mkdir', 'cp', 'dirname'];
  const libs = new Set<string>();
  for (const t of tools) {
    copy(`/usr/bin/${t}`, `usr/bin/${t}`);
    const ldd = spawnSync('ldd', [`/usr/bin/${t}`], { encoding: 'utf8' }).stdout;
    for (const m of ldd.matchAll(/=> (\/\S+)/g)) libs.add(m[1]!);
  }
  libs.add('/lib/x86_64-linux-gnu/libc.so.6');
  for (const l of libs) copy(l, `usr/lib/x86_64-linux-gnu/${path.basename(l)}`);
  copy('/lib64/ld-linux-x86-64.so.2', 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
  fs.symlinkSync(
    '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    path.join(dir, 'usr/lib64/ld-linux-x86-64.so.2'),
  );
  return dir;
}

const buildFile = (base: string) =>
  [
    `FROM ${base}`,
    'COPY files/ /opt/kill/',
    // Deterministic output, large enough that packing the layer takes a moment.
    'RUN seq 1 1500000 > /opt/kill/seq && sleep 1 && sha256sum /opt/kill/seq > /opt/kill/seq.sum',
    '',
  ].join('\n');

function buildScenario(command: string, base: string, from: () => string): Scenario {
  return {
    command,
    async prepare(dir) {
      const ctx = path.join(dir, 'ctx');
      fs.mkdirSync(path.join(ctx, 'files'), { recursive: true });
      fs.writeFileSync(path.join(ctx, 'Stratafile'), buildFile(base));
      for (let i = 0; i < 5; i++)
        fs.writeFileSync(path.join(ctx, 'files', `f${i}`), `file ${i}\n`.repeat(1000));
      return {
        store: await freshStore(dir, from()),
        args: ['build', '-q', '-t', 'built:1', ctx],
        env: EPOCH,
      };
    },
    digest: async (run) => manifestOf(run.store, 'built:1').digest,
  };
}

const scenarios: Scenario[] = [
  {
    command: 'template create',
    async prepare(dir) {
      return {
        store: path.join(dir, 'store'),
        args: ['template', 'create', smallRootfs, '-t', 'made:1', '--name', 'made'],
        env: EPOCH,
      };
    },
    digest: async (run) => manifestOf(run.store, 'made:1').digest,
  },
  buildScenario('build', 'tiny:1', () => pristine),
  buildScenario('build on minbase', 'base:v1', () => minbase),
  {
    // apt runs in the step: a package whose .debs the e2e cache holds, the lists from the mirror.
    command: 'build with INSTALL',
    async prepare(dir) {
      const ctx = path.join(dir, 'ctx');
      fs.mkdirSync(ctx);
      fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nINSTALL libedit2\n');
      const store = await freshStore(dir, minbase);
      fs.mkdirSync(storeDebs(store), { recursive: true });
      await runOk('cp', ['-a', `${DEB_CACHE}/.`, storeDebs(store)]);
      return {
        store,
        args: ['build', '-q', '--apt-sources', sourcesFile(dir), '-t', 'built:1', ctx],
        env: EPOCH,
      };
    },
    digest: async (run) => manifestOf(run.store, 'built:1').digest,
  },
  {
    command: 'pull',
    prepare: async (dir) => ({
      store: await freshStore(dir),
      args: ['pull', `${registry.host}/kill/small:1`, '-t', 'pulled:1'],
    }),
    digest: async (run) => manifestOf(run.store, 'pulled:1').digest,
  },
  {
    command: 'push',
    prepare: async (dir, point) => ({
      store: await freshStore(dir, pristine),
      args: ['push', 'small:1', `${registry.host}/kill/push${point + 1}:v1`],
    }),
    digest: (_run, _dir, point) => registryDigest(`kill/push${point + 1}`, 'v1'),
  },
  {
    command: 'save',
    prepare: async (dir) => ({
      store: await freshStore(dir, pristine),
      args: ['save', 'small:1', '-o', path.join(dir, 'out.tmpl.img')],
    }),
    digest: async (_run, dir) => sha256File(path.join(dir, 'out.tmpl.img')),
    outputs: (dir) => [path.join(dir, 'out.tmpl.img')],
  },
  {
    command: 'load',
    prepare: async (dir) => ({
      store: await freshStore(dir),
      args: ['load', smallArchive, '-t', 'loaded:1'],
    }),
    digest: async (run) => manifestOf(run.store, 'loaded:1').digest,
  },
  {
    command: 'flatten',
    prepare: async (dir) => ({
      store: await freshStore(dir, pristine),
      args: ['flatten', 'small:1', '--rootfs', path.join(dir, 'rootfs.tar')],
    }),
    digest: async (_run, dir) => sha256File(path.join(dir, 'rootfs.tar')),
    outputs: (dir) => [path.join(dir, 'rootfs.tar')],
  },
  {
    command: 'gc',
    async prepare(dir) {
      // small:1 untagged: its blobs are left for gc.
      const store = await freshStore(dir, pristine);
      await strataOk(['rm', 'small:1'], { store });
      return { store, args: ['gc', '--all'] };
    },
    digest: async (run) => {
      const left = [...storedBlobs(run.store)].sort().join(',');
      return `blobs ${sha256Text(left)} (${storedBlobs(run.store).size})`;
    },
  },
];

describe('kill -9 at a random moment', () => {
  for (const s of scenarios) {
    const n = LONG ? POINTS[s.command]!.long : POINTS[s.command]!.ci;
    if (n === 0) continue;
    // A kill point takes seconds to a minute or two (INSTALL) on a loaded machine.
    const timeout =
      SLOW +
      n * (s.command.includes('minbase') || s.command.includes('INSTALL') ? 240_000 : 60_000);
    test(`${s.command} survives ${n} kill points`, () => survive(s, n), timeout);
  }
});
