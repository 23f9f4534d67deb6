/**
 * Staleness: Stratafile.lock, `--frozen` and `strata check`, against a local apt repository
 * (tiny .debs made with dpkg-deb, served over http on 127.0.0.1) whose package gets a new
 * version, and against a base tag that moves. Multi-stage builds ride along.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { AddressInfo } from 'node:net';
import {
  SLOW,
  cleanupTmp,
  isOneLineError,
  strataLinesAreOneError,
  runOk,
  show,
  strata,
} from './helpers';
import { buildJson, readImage, storeWithBase, umociUnpack } from './fixtures/build/harness';

let work: string;
let store: string;
let repo: string;
let server: http.Server;
let repoSources: string;
let ctx: string;
/** Requests the apt repository answered: what tells that a build asked apt for anything. */
let repoRequests = 0;

/**
 * Build `<name>_<version>_all.deb` (one file, usr/share/<name>/version, and an optional postrm)
 * into the repository and reindex it.
 */
async function publish(version: string, name = 'strata-e2e-tool', postrm?: string): Promise<void> {
  const pkg = path.join(work, `pkg-${name}-${version}`);
  fs.mkdirSync(path.join(pkg, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(pkg, `usr/share/${name}`), { recursive: true });
  fs.writeFileSync(
    path.join(pkg, 'DEBIAN/control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: Strata <e2e@strata.invalid>\nDescription: a package for the staleness tests\n`,
  );
  if (postrm !== undefined) {
    fs.writeFileSync(path.join(pkg, 'DEBIAN/postrm'), postrm, { mode: 0o755 });
    fs.chmodSync(path.join(pkg, 'DEBIAN/postrm'), 0o755);
  }
  fs.writeFileSync(path.join(pkg, `usr/share/${name}/version`), `${version}\n`);
  const deb = path.join(repo, `${name}_${version}_all.deb`);
  await runOk('dpkg-deb', ['--root-owner-group', '--build', pkg, deb], {
    env: { SOURCE_DATE_EPOCH: '1700000000' },
  });
  // A flat repository index, by hand: every .deb's control fields plus where and what it is.
  const stanzas: string[] = [];
  for (const f of fs
    .readdirSync(repo)
    .filter((n) => n.endsWith('.deb'))
    .sort()) {
    const p = path.join(repo, f);
    const control = (await runOk('dpkg-deb', ['-f', p])).stdout.trimEnd();
    const data = fs.readFileSync(p);
    stanzas.push(
      `${control}\nFilename: ./${f}\nSize: ${data.length}\nSHA256: ${createHash('sha256').update(data).digest('hex')}\n`,
    );
  }
  const packages = stanzas.join('\n');
  fs.writeFileSync(path.join(repo, 'Packages'), packages);
  fs.writeFileSync(
    path.join(repo, 'Release'),
    `Origin: strata-e2e\nLabel: strata-e2e\nDate: ${new Date().toUTCString()}\nSHA256:\n ${createHash('sha256').update(packages).digest('hex')} ${Buffer.byteLength(packages)} Packages\n`,
  );
}

/** Quiet unless a test looks at the step lines or warnings, which --quiet leaves out. */
async function build(args: string[], extra: string[] = [], quiet = true) {
  return strata(
    ['build', ...(quiet ? ['-q'] : []), '--apt-sources', repoSources, ...extra, ...args],
    {
      store,
    },
  );
}

beforeAll(async () => {
  ({ work, store } = await storeWithBase());
  repo = path.join(work, 'repo');
  fs.mkdirSync(repo);
  server = http.createServer((req, res) => {
    repoRequests++;
    const rel = decodeURIComponent((req.url ?? '/').split('?')[0] as string).replace(/^\/+/, '');
    const p = path.join(repo, path.normalize(rel));
    if (!p.startsWith(repo + path.sep) || !fs.existsSync(p) || fs.statSync(p).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': fs.statSync(p).size });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(p).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  repoSources = path.join(work, 'repo.list');
  fs.writeFileSync(repoSources, `deb [trusted=yes] http://127.0.0.1:${port}/ ./\n`);
  await publish('1.0');
  ctx = path.join(work, 'ctx');
  fs.mkdirSync(ctx);
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    [
      'FROM base:v1 AS common',
      'RUN echo common > /etc/common',
      '',
      'FROM common AS tools',
      'RUN echo tools > /etc/tools',
      '',
      'FROM common',
      '# the tools stage is not built: this template does not need it',
      'INSTALL strata-e2e-tool',
      'LABEL org.opencontainers.image.title=tool',
      '',
    ].join('\n'),
  );
}, SLOW);

afterAll(async () => {
  await new Promise((r) => server.close(r));
  cleanupTmp();
});

const file = () => path.join(ctx, 'Stratafile');

test(
  'a multi-stage build: the last stage starts FROM an earlier one',
  async () => {
    const r = await build(['-t', 'tool:v1', ctx], ['--compression', 'gzip']);
    expect(r.code).toBe(0);
    const img = readImage(store, 'tool:v1');
    const base = readImage(store, 'base:v1');
    expect(img.manifest.layers).toHaveLength(3);
    expect(img.manifest.layers[0]).toEqual(base.manifest.layers[0]);
    expect(img.config.history.map((h: { created_by: string }) => h.created_by).slice(1)).toEqual([
      'RUN echo common > /etc/common',
      'INSTALL strata-e2e-tool',
    ]);
    expect(img.config.strata.layers[2].packagesAdded).toEqual(['strata-e2e-tool=1.0']);
    const tree = await umociUnpack(store, 'tool:v1', path.join(work, 'u-tool'));
    expect(fs.readFileSync(path.join(tree, 'etc/common'), 'utf8')).toBe('common\n');
    expect(fs.existsSync(path.join(tree, 'etc/tools'))).toBe(false);
    expect(fs.readFileSync(path.join(tree, 'usr/share/strata-e2e-tool/version'), 'utf8')).toBe(
      '1.0\n',
    );
    const lock = JSON.parse(fs.readFileSync(`${file()}.lock`, 'utf8'));
    expect(lock.stages[0].from).toEqual({ ref: 'base:v1', digest: base.digest });
    expect(lock.stages[2].steps[0].packages).toEqual(['strata-e2e-tool=1.0']);
  },
  SLOW,
);

test(
  'strata check: a freshly built template is up to date',
  async () => {
    const r = await strata(['check', '-f', file(), '--apt-sources', repoSources, 'tool:v1'], {
      store,
    });
    expect([r.code, r.stdout.trim()]).toEqual([0, 'tool:v1 is up to date']);
    const j = await strata(
      ['check', '-f', file(), '--apt-sources', repoSources, 'tool:v1', '--json'],
      { store },
    );
    expect(JSON.parse(j.stdout)).toMatchObject({ upToDate: true, reasons: [], newer: [] });
  },
  SLOW,
);

test(
  "strata check without --apt-sources uses the apt sources the template was built with, not the host's",
  async () => {
    const r = await strata(['check', '--no-packages', '-f', file(), 'tool:v1'], { store });
    expect([r.code, r.stdout.trim()]).toEqual([0, 'tool:v1 is up to date']);
  },
  SLOW,
);

test(
  'strata check without --apt-sources finds a template of RUN steps only up to date: their keys hold the apt sources too',
  async () => {
    const runs = path.join(work, 'runs-only');
    fs.mkdirSync(runs);
    fs.writeFileSync(path.join(runs, 'Stratafile'), 'FROM base:v1\nRUN echo hi > /etc/hi\n');
    expect((await build(['-t', 'runs:1', runs])).code).toBe(0);
    // Besides those of the base it comes FROM.
    expect(readImage(store, 'runs:1').config.strata.aptSources).toContainEqual(
      expect.stringMatching(/^deb \[trusted=yes\] http:\/\/127\.0\.0\.1:/),
    );
    const r = await strata(
      ['check', '--no-packages', '-f', path.join(runs, 'Stratafile'), 'runs:1'],
      {
        store,
        cwd: runs,
      },
    );
    expect([r.code, r.stdout.trim(), r.stderr]).toEqual([0, 'runs:1 is up to date', '']);
  },
  SLOW,
);

test(
  "strata check with other --apt-sources than the build's says so, rather than blaming the apt indices",
  async () => {
    const other = path.join(work, 'other.list');
    fs.writeFileSync(other, 'deb http://deb.debian.org/debian bookworm contrib\n');
    const r = await strata(
      ['check', '--no-packages', '-f', file(), '--apt-sources', other, 'tool:v1'],
      {
        store,
      },
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `INSTALL strata-e2e-tool: changed: its apt sources are not the build's: ${other} has "deb http://deb.debian.org/debian bookworm contrib", which the template did not use (give check the build's --apt-sources)`,
    );
    expect(r.stdout).not.toContain('the apt indices changed');
  },
  SLOW,
);

test(
  '--frozen passes while nothing moved, and an unchanged rebuild does no apt work',
  async () => {
    const before = fs.readFileSync(`${file()}.lock`, 'utf8');
    const r = await build(['--frozen', '--json', ctx]);
    expect(r.code).toBe(0);
    // It names the lock it was held to, and says it left it as it was.
    expect(JSON.parse(r.stdout)).toMatchObject({
      stepsRun: 0,
      cacheHits: 2,
      lockFile: `${file()}.lock`,
      lockWritten: false,
    });
    expect(fs.readFileSync(`${file()}.lock`, 'utf8')).toBe(before);
  },
  SLOW,
);

const blobs = () => fs.readdirSync(path.join(store, 'blobs', 'sha256')).sort();

test(
  '--frozen with an edited INSTALL line fails at that line before apt is asked anything',
  async () => {
    const text = fs.readFileSync(file(), 'utf8');
    const lock = fs.readFileSync(`${file()}.lock`, 'utf8');
    fs.writeFileSync(file(), text.replace('\nINSTALL ', '\nINSTALL --recommends '));
    try {
      const before = { blobs: blobs(), requests: repoRequests };
      const r = await build(['--frozen', ctx], [], false);
      expect(r.code).toBe(1);
      // Not --quiet, yet no step line: only the error.
      expect(isOneLineError(r.stderr)).toBe(true);
      expect(r.stderr).toContain(
        `strata: error: ${file()}:9:1: --frozen: INSTALL --recommends strata-e2e-tool is not in Stratafile.lock (it has INSTALL strata-e2e-tool here)`,
      );
      expect({ blobs: blobs(), requests: repoRequests }).toEqual(before);
      expect(fs.readFileSync(`${file()}.lock`, 'utf8')).toBe(lock);
    } finally {
      fs.writeFileSync(file(), text);
    }
  },
  SLOW,
);

test(
  "strata check without the build's --build-arg takes the ARG values from Stratafile.lock, and says so",
  async () => {
    const dir = path.join(work, 'check-args');
    fs.mkdirSync(dir);
    const sf = path.join(dir, 'Stratafile');
    fs.writeFileSync(sf, 'FROM base:v1\nARG VERSION=2.5\nRUN echo "$VERSION" > /opt/version\n');
    const b = await build(['--build-arg', 'VERSION=2.6', '-f', sf, '-t', 'argapp:2', dir]);
    expect([b.code, b.stderr]).toEqual([0, '']);
    const r = await strata(
      ['check', '--no-packages', '--apt-sources', repoSources, '-f', sf, 'argapp:2'],
      { store },
    );
    expect([r.code, r.stdout.trim()]).toEqual([0, 'argapp:2 is up to date']);
    expect(r.stderr).toContain(
      'strata: note: ARG VERSION: Stratafile.lock has "2.6", which the check uses (the Stratafile\'s default is "2.5")',
    );
    expect(r.stderr).not.toContain('apt sources the template records');
    // A --build-arg still wins: the default is another build.
    const other = await strata(
      [
        'check',
        '--no-packages',
        '--apt-sources',
        repoSources,
        '-f',
        sf,
        '--build-arg',
        'VERSION=2.5',
        'argapp:2',
      ],
      { store },
    );
    expect(other.code).toBe(1);
  },
  SLOW,
);

describe('--frozen holds the layer steps to the lock before any of them runs', () => {
  let edits: string;
  const editsFile = () => path.join(edits, 'Stratafile');
  const lockText = () => fs.readFileSync(`${editsFile()}.lock`, 'utf8');
  const write = (lines: string[]) => fs.writeFileSync(editsFile(), [...lines, ''].join('\n'));

  beforeAll(async () => {
    edits = path.join(work, 'edits');
    fs.mkdirSync(edits);
    fs.writeFileSync(path.join(edits, 'hello'), 'hello\n');
    write(['FROM base:v1', 'COPY hello /etc/hello', 'RUN echo a > /etc/a']);
    const r = await build(['-t', 'edits:1', edits]);
    expect(show(r)).toMatch(/^exit 0/);
  }, SLOW);

  test(
    'an edited RUN line fails at that line, runs nothing and leaves the lock until a rebuild',
    async () => {
      write(['FROM base:v1', 'COPY hello /etc/hello', 'RUN echo b > /etc/a']);
      const lock = lockText();
      const before = blobs();
      const r = await build(['--frozen', edits], [], false);
      expect(r.code).toBe(1);
      expect(isOneLineError(r.stderr)).toBe(true);
      expect(r.stderr).toContain(
        `strata: error: ${editsFile()}:3:1: --frozen: RUN echo b > /etc/a is not in Stratafile.lock (it has RUN echo a > /etc/a here)`,
      );
      expect(blobs()).toEqual(before);
      expect(lockText()).toBe(lock);
      // Rebuilt without --frozen, the lock has the new line and --frozen passes again.
      expect(show(await build([edits]))).toMatch(/^exit 0/);
      expect(
        JSON.parse(lockText()).stages[0].steps.map((s: { instruction: string }) => s.instruction),
      ).toEqual(['COPY hello /etc/hello', 'RUN echo b > /etc/a']);
      const again = await build(['--frozen', '--json', edits]);
      expect(JSON.parse(again.stdout)).toMatchObject({ stepsRun: 0, cacheHits: 2 });
    },
    SLOW,
  );

  test(
    "a step the Stratafile no longer has fails at the stage's last line",
    async () => {
      write(['FROM base:v1', 'COPY hello /etc/hello']);
      const r = await build(['--frozen', edits]);
      expect(r.code).toBe(1);
      expect(isOneLineError(r.stderr)).toBe(true);
      expect(r.stderr).toContain(
        `${editsFile()}:2:1: --frozen: Stratafile.lock has RUN echo b > /etc/a at the end of stage #0, which the Stratafile no longer has`,
      );
    },
    SLOW,
  );
});

test(
  '--frozen holds ARG values to the lock: another --build-arg fails at the ARG line before any step runs',
  async () => {
    const dir = path.join(work, 'args');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'Stratafile');
    fs.writeFileSync(file, 'FROM base:v1\nARG RELEASE=1.0\nRUN echo "$RELEASE" > /etc/release\n');
    expect(show(await build(['--build-arg', 'RELEASE=3.1', '-t', 'args:1', dir]))).toMatch(
      /^exit 0/,
    );
    expect(JSON.parse(fs.readFileSync(`${file}.lock`, 'utf8')).stages[0].args).toEqual({
      RELEASE: '3.1',
    });
    const before = blobs();
    const r = await build(['--frozen', '--build-arg', 'RELEASE=3.2', dir]);
    expect(r.code).toBe(1);
    expect(isOneLineError(r.stderr)).toBe(true);
    expect(r.stderr).toContain(
      `strata: error: ${file}:2:1: --frozen: ARG RELEASE is "3.2", but Stratafile.lock has "3.1" (another --build-arg?)`,
    );
    expect(blobs()).toEqual(before);
    const same = await build(['--frozen', '--json', '--build-arg', 'RELEASE=3.1', dir]);
    expect(JSON.parse(same.stdout)).toMatchObject({ stepsRun: 0 });
  },
  SLOW,
);

describe('after the repository publishes strata-e2e-tool 1.1', () => {
  beforeAll(() => publish('1.1'), SLOW);

  test(
    'strata check names the newer version and the step, and exits 1',
    async () => {
      const r = await strata(['check', '-f', file(), '--apt-sources', repoSources, 'tool:v1'], {
        store,
      });
      expect(r.code).toBe(1);
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toBe('tool:v1 is stale:');
      expect(lines).toContain(
        `${file()}:9:1: INSTALL strata-e2e-tool: changed: the apt indices changed since the build (or an ARG/ENV value did)`,
      );
      expect(lines).toContain(
        `${file()}:9:1: strata-e2e-tool 1.0 has a newer version 1.1 (installed by INSTALL strata-e2e-tool)`,
      );
      const j = await strata(
        ['check', '-f', file(), '--apt-sources', repoSources, 'tool:v1', '--json'],
        { store },
      );
      expect(j.code).toBe(1);
      expect(JSON.parse(j.stdout).newer).toEqual([
        { name: 'strata-e2e-tool', architecture: 'all', installed: '1.0', available: '1.1' },
      ]);
    },
    SLOW,
  );

  test(
    '--frozen fails with one line naming the INSTALL',
    async () => {
      const r = await build(['--frozen', ctx], [], false);
      expect(r.code).toBe(1);
      expect(strataLinesAreOneError(r.stderr)).toBe(true);
      expect(r.stderr).toContain(
        `${file()}:9:1: --frozen: INSTALL strata-e2e-tool would now install strata-e2e-tool=1.1`,
      );
      // The INSTALL was a cache miss: it ran, rather than being reused.
      expect(r.stderr).toMatch(/INSTALL strata-e2e-tool: layer [0-9a-f]{12} /);
      // Nothing was tagged.
      expect(readImage(store, 'tool:v1').config.strata.layers[2].packagesAdded).toEqual([
        'strata-e2e-tool=1.0',
      ]);
    },
    SLOW,
  );

  test(
    'without --frozen the INSTALL is a cache miss and takes 1.1',
    async () => {
      const r = await buildJson(['--apt-sources', repoSources, '-t', 'tool:v1', ctx], store);
      // The --frozen run above already ran the INSTALL for the new index state (and cached it).
      expect([r.cacheHits, r.stepsRun]).toEqual([2, 0]);
      expect(readImage(store, 'tool:v1').config.strata.layers[2].packagesAdded).toEqual([
        'strata-e2e-tool=1.1',
      ]);
      const c = await strata(['check', '-f', file(), '--apt-sources', repoSources, 'tool:v1'], {
        store,
      });
      expect(show(c)).toMatch(/^exit 0/);
    },
    SLOW,
  );
});

describe('after the base tag moves', () => {
  beforeAll(async () => {
    const other = path.join(work, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'Stratafile'), 'FROM base:v1\nRUN echo moved > /etc/moved\n');
    await buildJson(['--apt-sources', repoSources, '-t', 'base:v1', other], store);
  }, SLOW);

  test(
    '--frozen fails with one clear line naming file:line',
    async () => {
      const r = await build(['--frozen', ctx]);
      expect(r.code).toBe(1);
      expect(isOneLineError(r.stderr)).toBe(true);
      expect(r.stderr).toMatch(
        new RegExp(
          `^strata: error: ${file().replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:1:1: --frozen: FROM base:v1 now resolves to sha256:[0-9a-f]{64}, but Stratafile.lock has sha256:[0-9a-f]{64}`,
        ),
      );
    },
    SLOW,
  );

  test(
    'strata check reports the moved base',
    async () => {
      const r = await strata(
        ['check', '--no-packages', '-f', file(), '--apt-sources', repoSources, 'tool:v1'],
        { store },
      );
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        new RegExp(
          `:1:1: FROM base:v1 moved: the template was built on sha256:[0-9a-f]{64}, it now resolves to sha256:[0-9a-f]{64}`,
        ),
      );
    },
    SLOW,
  );
});

describe('UPGRADE and REMOVE against the local repository', () => {
  const stratafile = (dir: string, lines: string[]) => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'Stratafile'), [...lines, ''].join('\n'));
    return dir;
  };
  const last = (ref: string) => {
    const img = readImage(store, ref);
    return img.config.strata.layers[img.config.strata.layers.length - 1];
  };

  test(
    'UPGRADE takes the newer version of an installed package',
    async () => {
      const pinned = stratafile(path.join(work, 'up-1'), [
        'FROM base:v1',
        'INSTALL strata-e2e-tool=1.0',
      ]);
      expect((await build(['-t', 'tool:1.0', pinned])).code).toBe(0);
      expect(last('tool:1.0').packagesAdded).toEqual(['strata-e2e-tool=1.0']);
      const up = stratafile(path.join(work, 'up-2'), ['FROM tool:1.0', 'UPGRADE strata-e2e-tool']);
      const r = await build(['-t', 'tool:upgraded', up]);
      expect(show(r)).toMatch(/^exit 0/);
      expect(last('tool:upgraded').packagesAdded).toEqual(['strata-e2e-tool=1.1']);
    },
    SLOW,
  );

  test(
    'REMOVE reports files the package owned that survive, and --strict-remove refuses them',
    async () => {
      // A sloppy postrm that puts a file back after purge.
      await publish(
        '1.0',
        'strata-e2e-sticky',
        '#!/bin/sh\nif [ "$1" = purge ]; then mkdir -p /usr/share/strata-e2e-sticky; echo left > /usr/share/strata-e2e-sticky/version; fi\n',
      );
      const inst = stratafile(path.join(work, 'rm-1'), [
        'FROM base:v1',
        'INSTALL strata-e2e-sticky',
      ]);
      expect((await build(['-t', 'sticky:1', inst])).code).toBe(0);

      const lax = stratafile(path.join(work, 'rm-2'), [
        'FROM sticky:1',
        'REMOVE strata-e2e-sticky',
      ]);
      const r = await build(['-t', 'sticky:removed', lax], [], false);
      expect(show(r)).toMatch(/^exit 0/);
      expect(r.stderr).toMatch(
        /strata: warning: .*Stratafile:2:1: REMOVE left 1 file the removed packages owned: \/usr\/share\/strata-e2e-sticky\/version/,
      );
      expect(last('sticky:removed').packagesRemoved).toEqual([
        expect.stringMatching(/^strata-e2e-sticky=\S+$/),
      ]);

      const strict = stratafile(path.join(work, 'rm-3'), [
        'FROM sticky:1',
        'REMOVE --strict-remove strata-e2e-sticky',
      ]);
      const s2 = await build(['-t', 'sticky:strict', strict]);
      expect(s2.code).not.toBe(0);
      // The step lines come first; the failure is one line, the last one, and nothing is tagged.
      const errors = s2.stderr.split('\n').filter((l) => l.startsWith('strata: error:'));
      expect(errors).toHaveLength(1);
      expect(s2.stderr.trimEnd().split('\n').pop()).toBe(errors[0]);
      expect(errors[0]).toMatch(/Stratafile:2:1: REMOVE left 1 file the removed packages owned/);
      expect((await strata(['inspect', 'sticky:strict'], { store })).code).not.toBe(0);
    },
    SLOW,
  );
});
