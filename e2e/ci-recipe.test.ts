/**
 * The CI publishing recipe, `.github/workflows/publish-template.yml`: its syntax is checked by
 * action-validator (SchemaStore's schema for GitHub workflows), which must also refuse broken
 * copies of it; then its run steps are run here in order (e2e/support/workflow.ts), against
 * Debian's docker-registry on 127.0.0.1 with htpasswd and TLS from a CA made for the test. The
 * previously published template is the cached minbase fixture; the Stratafile builds FROM it
 * with one small package. A feature branch builds, checks and diffs into the job summary and
 * pushes nothing; main, on a fresh runner, takes its step from the registry cache and pushes.
 *
 * The `platforms` path runs the same way on a two-platform template (amd64 from the minbase
 * fixture, arm64 from the cached arm64 minbase, made once per machine through qemu-user): the
 * Stratafile only COPYs a file, so that nothing runs under emulation, and the job checks and
 * diffs each platform, and pushes the index.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { validateWorkflow } from '@action-validator/core';
import { parse, stringify } from 'yaml';
import { DEBIAN_SOURCES, sourcesFile } from './fixtures/build/harness';
import {
  SLOW,
  foreignMinbaseTar,
  minbaseRootfs,
  REPO_ROOT,
  run,
  show,
  strata,
  strataOk,
  tmpDir,
} from './helpers';
import { makePki, Pki, Registry, startRegistry } from './registry-fixtures';
import { AuthMirror, startAuthMirror } from './support/auth-repo';
import { JobRun, readWorkflow, runJob, Workflow } from './support/workflow';

jest.setTimeout(SLOW);

const WORKFLOW = path.join(REPO_ROOT, '.github', 'workflows', 'publish-template.yml');
const USER = 'ci-bot';
const PASSWORD = 'publish-secret';

function errorsOf(text: string): unknown[] {
  return validateWorkflow(text).errors;
}

describe('the workflow validates, and broken copies of it do not', () => {
  const text = fs.readFileSync(WORKFLOW, 'utf8');

  test('publish-template.yml and ci.yml have no errors', () => {
    expect(errorsOf(text)).toEqual([]);
    const ci = fs.readFileSync(path.join(REPO_ROOT, '.github', 'workflows', 'ci.yml'), 'utf8');
    expect(errorsOf(ci)).toEqual([]);
  });

  /** The parts of the workflow the broken copies change. */
  interface Doc {
    on: { workflow_call: { inputs: Record<string, { type: string }> } };
    jobs: { publish: { steps?: object[] } & Record<string, unknown> };
  }
  test.each<[string, (w: Doc) => void]>([
    ['a misspelt key in a job', (w) => (w.jobs.publish['runs-onn'] = 'x')],
    ['an input of an unknown type', (w) => (w.on.workflow_call.inputs.image!.type = 'text')],
    ['a step with neither run nor uses', (w) => w.jobs.publish.steps?.push({ name: 'nothing' })],
    [
      'an event GitHub does not have',
      (w) => ((w.on as Record<string, unknown>)['workflow-call'] = {}),
    ],
  ])('%s is refused', (_what, mutate) => {
    const w = parse(text) as Doc;
    mutate(w);
    expect(errorsOf(stringify(w)).length).toBeGreaterThan(0);
  });

  test('YAML that does not parse is refused', () => {
    expect(errorsOf(text.replace('jobs:', 'jobs: [')).length).toBeGreaterThan(0);
  });

  test('no run step pastes an expression into its script', () => {
    const w = readWorkflow(WORKFLOW);
    for (const s of w.jobs.publish?.steps ?? []) expect(s.run ?? '').not.toContain('${{');
  });
});

describe('its run steps, against a registry on loopback', () => {
  let work: string;
  let pki: Pki;
  let reg: Registry;
  let workflow: Workflow;
  let workspace: string;
  const home = () => path.join(work, 'home');

  /** `registry`'s tags of `repo`, read with the test's credentials. */
  function tags(repo: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const req = https.get(
        `https://${reg.host}/v2/${repo}/tags/list`,
        { ca: fs.readFileSync(pki.caCert), auth: `${USER}:${PASSWORD}` },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => {
            if (res.statusCode === 404) resolve([]);
            else if (res.statusCode !== 200) reject(new Error(`${res.statusCode}: ${body}`));
            else resolve(((JSON.parse(body) as { tags: string[] | null }).tags ?? []).sort());
          });
        },
      );
      req.on('error', reject);
    });
  }

  /** The team's private mirror of Debian, behind basic auth, and its auth.conf (APT_AUTH). */
  let mirror: AuthMirror;
  const MIRROR_PASSWORD = 'mirror-secret-4f1c9b';
  const mirrorAuth = () =>
    `machine ${mirror.url} login ${mirror.user} password ${MIRROR_PASSWORD}\n`;

  /** The publishing team's own store and credentials, outside any job. */
  const publisher = () => ({
    store: path.join(work, 'publisher-store'),
    env: { HOME: home(), DOCKER_CONFIG: path.join(work, 'publisher-docker') },
  });

  /** The job on `branch`, for the product in `context` (and `platforms`, when given). */
  function publish(
    branch: string,
    o: { context: string; platforms?: string; buildArgs?: string; target?: string } = {
      context: 'product',
    },
  ): Promise<JobRun> {
    const runnerTemp = fs.mkdtempSync(path.join(work, `runner-${branch}-`));
    return runJob(workflow, {
      job: 'publish',
      ref: `refs/heads/${branch}`,
      workspace,
      runnerTemp,
      env: { HOME: home(), REGISTRY_AUTH_FILE: undefined },
      inputs: {
        'strata-repository': 'acme/strata',
        context: o.context,
        image: `${reg.host}/team/${o.context}:2`,
        previous: `${reg.host}/team/${o.context}:1`,
        registry: reg.host,
        cache: `${reg.host}/team/cache`,
        // The product reads Debian through the team's private mirror; the platforms case reads
        // it directly, without the APT_AUTH secret.
        'apt-sources': o.platforms !== undefined ? 'sources.list' : 'private-mirror.list',
        'ca-cert': 'registry-ca.pem',
        ...(o.platforms !== undefined ? { platforms: o.platforms } : {}),
        ...(o.buildArgs !== undefined ? { 'build-args': o.buildArgs } : {}),
        ...(o.target !== undefined ? { target: o.target } : {}),
      },
      secrets: {
        REGISTRY_USERNAME: USER,
        REGISTRY_PASSWORD: PASSWORD,
        ...(o.platforms !== undefined ? {} : { APT_AUTH: mirrorAuth() }),
      },
    });
  }

  beforeAll(async () => {
    work = tmpDir('strata-ci-recipe-');
    fs.mkdirSync(home());
    fs.mkdirSync(path.join(work, 'pki'));
    pki = makePki(path.join(work, 'pki'));
    reg = await startRegistry({ tls: pki, htpasswd: { [USER]: PASSWORD } });
    workflow = readWorkflow(WORKFLOW);
    // The previously published template: the minbase fixture, pushed as the base and as the
    // product's last release.
    const fx = await minbaseRootfs();
    const { store, env } = publisher();
    await strataOk(
      ['template', 'create', fx.minbaseTar, '-t', 'minbase:amd64', '--name', 'minbase'],
      { store, env },
    );
    await strataOk(['login', reg.host, '-u', USER, '--password-stdin', '--ca-cert', pki.caCert], {
      store,
      env,
      input: PASSWORD,
    });
    for (const ref of [`${reg.host}/platform/minbase:1`, `${reg.host}/team/product:1`])
      await strataOk(['push', '-q', '--ca-cert', pki.caCert, 'minbase:amd64', ref], { store, env });
    // The team's repository, as actions/checkout lays it out, with Strata checked out beside it.
    workspace = path.join(work, 'workspace');
    fs.mkdirSync(path.join(workspace, 'product'), { recursive: true });
    fs.writeFileSync(
      path.join(workspace, 'product', 'Stratafile'),
      `FROM ${reg.host}/platform/minbase:1\nINSTALL sensible-utils\n`,
    );
    // A product built with build arguments, up to one stage of its file.
    fs.mkdirSync(path.join(workspace, 'flavoured'));
    fs.writeFileSync(
      path.join(workspace, 'flavoured', 'Stratafile'),
      [
        `FROM ${reg.host}/platform/minbase:1 AS tools`,
        'RUN exit 3',
        `FROM ${reg.host}/platform/minbase:1 AS product`,
        'ARG FLAVOUR=plain',
        'RUN echo "$FLAVOUR" > /etc/flavour',
        'FROM product',
        'RUN exit 4',
        '',
      ].join('\n'),
    );
    sourcesFile(workspace);
    mirror = await startAuthMirror(MIRROR_PASSWORD);
    fs.writeFileSync(
      path.join(workspace, 'private-mirror.list'),
      DEBIAN_SOURCES.split('http://deb.debian.org').join(mirror.url),
    );
    fs.copyFileSync(pki.caCert, path.join(workspace, 'registry-ca.pem'));
    fs.symlinkSync(REPO_ROOT, path.join(workspace, '.strata-tool'));
  });

  afterAll(async () => {
    await mirror?.close();
    await reg?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('a feature branch builds, checks and diffs into the summary, and pushes nothing', async () => {
    const r = await publish('feature');
    expect(r.steps.map((s) => `${s.name}: ${s.outcome}`)).toEqual([
      'actions/checkout@v4: uses',
      'actions/checkout@v4: uses',
      'actions/setup-node@v4: uses',
      'Install strata: ran',
      'Log in to the registry: ran',
      'Build: ran',
      'Check: ran',
      'Diff against the previous template: ran',
      'Push: skipped',
    ]);
    const lines = r.summary.split('\n');
    expect(lines).toContain(
      `## strata diff ${reg.host}/team/product:1 → ${reg.host}/team/product:2`,
    );
    expect(lines).toContain('Packages: 1 added, 0 removed, 0 changed');
    expect(lines.some((l) => l.startsWith('  + sensible-utils '))).toBe(true);
    expect(lines.some((l) => l.startsWith('  + usr/bin/sensible-editor '))).toBe(true);
    expect(r.summary).not.toContain('Published:');
    expect(await tags('team/product')).toEqual(['1']);
    // Build and check read the private mirror with the APT_AUTH secret, and showed it nowhere.
    expect(mirror.requests.some((q) => q.path.endsWith('.deb'))).toBe(true);
    expect(mirror.requests.some((q) => q.path.includes('/binary-amd64/'))).toBe(true);
    expect(mirror.requests.filter((q) => !q.authorized)).toEqual([]);
    for (const step of r.steps)
      expect(`${step.result?.stdout ?? ''}${step.result?.stderr ?? ''}`).not.toContain(
        MIRROR_PASSWORD,
      );
    expect(r.summary).not.toContain(MIRROR_PASSWORD);
    // The build published its step to the cache repository all the same.
    expect((await tags('team/cache')).length).toBeGreaterThan(0);
  });

  test('build-args and target reach both the build and the check', async () => {
    const r = await publish('flavour', {
      context: 'flavoured',
      buildArgs: 'FLAVOUR=spicy\nUNUSED_BY_NOBODY=1\n',
      target: 'product',
    });
    expect(r.steps.map((s) => `${s.name}: ${s.outcome}`)).toEqual(
      expect.arrayContaining(['Build: ran', 'Check: ran']),
    );
    const lock = JSON.parse(
      fs.readFileSync(path.join(workspace, 'flavoured', 'Stratafile.lock'), 'utf8'),
    ) as { stages: Array<{ name: string; args?: Record<string, string>; steps: unknown[] }> };
    // The product stage was built with the argument; the tools stage it does not need was not,
    // and the stage after the target neither.
    expect(lock.stages.map((st) => [st.name, st.args, st.steps.length])).toEqual([
      ['tools', undefined, 0],
      ['product', { FLAVOUR: 'spicy' }, 1],
    ]);
    const build = r.steps.find((s) => s.name === 'Build')?.result;
    expect(build?.stderr).toMatch(/build arg UNUSED_BY_NOBODY is not used/);
  });

  test('main, on a fresh runner, takes the step from the registry cache and pushes', async () => {
    const r = await publish('main');
    const build = r.steps.find((s) => s.name === 'Build')?.result;
    expect(build?.stdout).toMatch(/0 steps run, 1 cached/);
    expect(r.steps.at(-1)).toMatchObject({ name: 'Push', outcome: 'ran' });
    expect(r.summary).toContain('Packages: 1 added, 0 removed, 0 changed');
    expect(r.summary).toMatch(/Published: pushed candidate:publish to /);
    // Beside the two tags, the referrers fallback tag (docker-registry 2.8 has no referrers
    // API) of the pushed template: its SBOMs, which the build attached and the push carried.
    const pushed = await tags('team/product');
    expect(pushed.filter((t) => !t.startsWith('sha256-'))).toEqual(['1', '2']);
    expect(pushed.filter((t) => /^sha256-[a-f0-9]{64}$/.test(t))).toHaveLength(1);
    // What was pushed is what the summary compared: the diff from the registry says so.
    const d = await strata(
      ['diff', '--ca-cert', pki.caCert, `${reg.host}/team/product:1`, `${reg.host}/team/product:2`],
      {
        store: path.join(work, 'reader-store'),
        env: { HOME: home(), DOCKER_CONFIG: path.join(work, 'publisher-docker') },
      },
    );
    expect(d.code).toBe(1);
    expect(d.stdout.split('\n')).toContain('Packages: 1 added, 0 removed, 0 changed');
    expect(show(d)).not.toContain('error');
  });

  describe('with platforms, on a two-platform template', () => {
    const PLATFORMS = ['linux/amd64', 'linux/arm64'];
    const skopeo = async (...args: string[]) => {
      const r = await run('skopeo', args);
      if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      return r.stdout;
    };
    /** skopeo's view of the registry: the test CA alone in a cert dir, and the credentials. */
    const remote = (ref: string) => [
      '--cert-dir',
      path.join(work, 'skopeo-certs'),
      '--creds',
      `${USER}:${PASSWORD}`,
      `docker://${ref}`,
    ];

    /** The summary's `## ` sections, by heading. */
    function sections(summary: string): Map<string, string[]> {
      const out = new Map<string, string[]>();
      let body: string[] | undefined;
      for (const line of summary.split('\n')) {
        if (line.startsWith('## ')) out.set(line, (body = []));
        else body?.push(line);
      }
      return out;
    }

    beforeAll(async () => {
      // The previous release and its base: one index of minbase for amd64 and for arm64.
      const arm64Tar = await foreignMinbaseTar('arm64');
      const { store, env } = publisher();
      await strataOk(['template', 'create', arm64Tar, '-t', 'minbase:arm64', '--name', 'minbase'], {
        store,
        env,
      });
      const base = path.join(work, 'base');
      fs.mkdirSync(base);
      fs.writeFileSync(
        path.join(base, 'Stratafile'),
        'ARG TARGETARCH\nFROM minbase:${TARGETARCH}\n',
      );
      await strataOk(['build', '-q', '--platform', PLATFORMS.join(','), '-t', 'minbase:2', base], {
        store,
        env,
      });
      for (const ref of [`${reg.host}/platform/minbase:2`, `${reg.host}/team/board:1`])
        await strataOk(['push', '-q', '--ca-cert', pki.caCert, 'minbase:2', ref], { store, env });
      const ctx = path.join(workspace, 'board');
      fs.mkdirSync(ctx);
      fs.writeFileSync(
        path.join(ctx, 'Stratafile'),
        `FROM ${reg.host}/platform/minbase:2\nCOPY board-release /etc/board-release\n`,
      );
      fs.writeFileSync(path.join(ctx, 'board-release'), 'board 2\n');
      fs.mkdirSync(path.join(work, 'skopeo-certs'));
      fs.copyFileSync(pki.caCert, path.join(work, 'skopeo-certs', 'ca.crt'));
    });

    test('main, with platforms "linux/amd64, linux/arm64", builds one index, checks and diffs each platform, and pushes the index', async () => {
      // Both separators the input allows, in one list.
      const r = await publish('main', { context: 'board', platforms: PLATFORMS.join(', ') });
      const out = (name: string) => r.steps.find((s) => s.name === name)?.result?.stdout ?? '';
      const built = /^built candidate:publish (sha256:[0-9a-f]{64}) \((.*?); (.*?) run/m.exec(
        out('Build'),
      );
      // The build names each platform as its image does (inspect's spelling).
      expect(built?.slice(2)).toEqual(['linux/amd64, linux/arm64/v8', '2 steps']);
      // One check per platform, each saying which.
      expect(out('Check').trim().split('\n')).toEqual(
        PLATFORMS.flatMap((p) => [
          `strata check --platform ${p}`,
          'candidate:publish is up to date',
        ]),
      );
      // One diff section per platform, each with the file the Stratafile adds.
      const board = `${reg.host}/team/board`;
      const s = sections(r.summary);
      const diffs = [...s.keys()].filter((h) => h.startsWith('## strata diff '));
      expect(diffs).toEqual(PLATFORMS.map((p) => `## strata diff ${board}:1 → ${board}:2 (${p})`));
      for (const h of diffs) {
        expect(s.get(h)).toContain('Packages: 0 added, 0 removed, 0 changed');
        expect(s.get(h)?.some((l) => l.startsWith('  + etc/board-release '))).toBe(true);
      }
      expect(r.steps.at(-1)).toMatchObject({ name: 'Push', outcome: 'ran' });
      const digest = built?.[1] as string;
      expect(r.summary).toContain(`Published: pushed candidate:publish to ${board}:2 ${digest} `);
      expect((await tags('team/board')).filter((t) => !t.startsWith('sha256-'))).toEqual([
        '1',
        '2',
      ]);
      // skopeo, an independent reader, finds the built index at the pushed tag, a rootfs per
      // platform, and picks the arm64 one by platform.
      const raw = await skopeo('inspect', '--raw', ...remote(`${board}:2`));
      expect(`sha256:${createHash('sha256').update(raw).digest('hex')}`).toBe(digest);
      const index = JSON.parse(raw) as {
        mediaType: string;
        manifests: { platform?: { architecture: string }; annotations?: Record<string, string> }[];
      };
      expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
      expect(
        index.manifests
          .filter((m) => m.annotations?.['io.strata.role'] === 'rootfs')
          .map((m) => m.platform?.architecture),
      ).toEqual(['amd64', 'arm64']);
      const arm = await skopeo(
        '--override-arch',
        'arm64',
        'inspect',
        '--config',
        ...remote(`${board}:2`),
      );
      // Named by where it was published, not by the job's local tag (candidate:publish).
      expect(JSON.parse(arm)).toMatchObject({
        os: 'linux',
        architecture: 'arm64',
        config: { Labels: { 'org.opencontainers.image.title': 'team/board' } },
      });
    });
  });
});
