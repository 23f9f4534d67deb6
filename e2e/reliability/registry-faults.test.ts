/**
 * A lying or failing registry (issue 21): a real docker-registry behind a proxy that misbehaves
 * on purpose (e2e/support/lying-proxy.ts). For each misbehaviour, `strata pull` refuses the bad
 * data with one line that names the digest or the reason, retries a bounded number of times
 * with growing backoff, stores nothing unverified (fsck clean, no tag, no blob but verified
 * ones); a `strata push` into a failing registry leaves the local store as it was and says what
 * was not pushed; and once the proxy is honest again the same command succeeds.
 *
 * With STRATA_LONG=1 every misbehaviour is tried several times over (fresh stores each time).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTree, Registry, startRegistry } from '../registry-fixtures';
import {
  RunResult,
  cleanupTmp,
  show,
  strata,
  strataJson,
  strataLinesAreOneError,
  strataOk,
  tmpDir,
} from '../helpers';
import {
  FaultSpec,
  LyingProxy,
  ProxyRequest,
  TokenMode,
  startLyingProxy,
} from '../support/lying-proxy';

const LONG = process.env.STRATA_LONG === '1';
/** Runs of each misbehaviour: one in CI, more in the long run. */
const ROUNDS = LONG ? 5 : 1;

jest.setTimeout(LONG ? 1_800_000 : 300_000);

let reg: Registry;
let proxy: LyingProxy;
let work: string;
let env: Record<string, string>;
let source: string;
/** The template as pushed: its manifest, and its config and layer. */
const d = { manifest: '', config: '', layer: '', layerSize: 0 };
/** Blobs a pull may leave in a store: only these, and fsck checks their bytes. */
let good: Set<string>;

async function getJson<T>(url: string): Promise<{ body: T; digest: string }> {
  const res = await fetch(url, {
    headers: {
      accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json',
    },
  });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return { body: (await res.json()) as T, digest: res.headers.get('docker-content-digest') ?? '' };
}

beforeAll(async () => {
  reg = await startRegistry();
  proxy = await startLyingProxy(reg.host);
  work = tmpDir('strata-regfault-');
  env = { HOME: work, DOCKER_CONFIG: path.join(work, 'docker') };
  source = path.join(work, 'source');
  // A tiny template with one layer of about 400 KB (random bytes: gzip cannot shrink them), big
  // enough to be cut in the middle and arrive in several chunks.
  makeTree(path.join(work, 'tree'), 400_000);
  await strataOk(
    [
      'template',
      'create',
      path.join(work, 'tree'),
      '-t',
      't:1',
      '--name',
      't',
      '--compression',
      'gzip',
    ],
    { store: source, env },
  );
  await strataOk(['push', 't:1', `${reg.host}/t:1`], { store: source, env });
  const root = await getJson<{ manifests?: unknown }>(`http://${reg.host}/v2/t/manifests/1`);
  expect(root.body.manifests).toBeUndefined(); // a single image: its manifest is the root
  d.manifest = root.digest;
  const m = await getJson<{
    config: { digest: string };
    layers: Array<{ digest: string; size: number }>;
  }>(`http://${reg.host}/v2/t/manifests/${d.manifest}`);
  d.config = m.body.config.digest;
  d.layer = m.body.layers[0]!.digest;
  d.layerSize = m.body.layers[0]!.size;
  expect(m.body.layers).toHaveLength(1);
  good = new Set([d.manifest, d.config, d.layer]);
}, 300_000);

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  cleanupTmp();
});

/** The blobs of a store's layout, as digests. */
function blobsOf(store: string): string[] {
  const dir = path.join(store, 'blobs', 'sha256');
  return fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .map((h) => `sha256:${h}`)
        .sort()
    : [];
}

/** The store holds nothing unverified: fsck passes, no tag, and only blobs of the template. */
async function expectNothingUnverified(store: string): Promise<void> {
  if (!fs.existsSync(store)) return;
  const fsck = await strata(['fsck'], { store, env });
  if (fsck.code !== 0) throw new Error(`fsck after the failed pull: ${show(fsck)}`);
  // No tag: the layout's index lists no manifest.
  const index = JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: unknown[];
  };
  expect(index.manifests).toEqual([]);
  expect(blobsOf(store).filter((b) => !good.has(b))).toEqual([]);
}

/** Requests for the template's layer blob. */
const layerGets = (reqs: ProxyRequest[]): ProxyRequest[] =>
  reqs.filter((r) => r.method === 'GET' && r.url.includes(`/blobs/${d.layer}`));

/** The gaps between requests, in ms. */
const gaps = (reqs: ProxyRequest[]): number[] => reqs.slice(1).map((r, i) => r.t - reqs[i]!.t);

/** One failed command: exit code not 0, and one `strata:` line that matches `error`. */
function expectOneLineError(r: RunResult, error: RegExp): void {
  expect({ code: r.code === 0 ? 0 : 'non-zero', out: show(r) }).toMatchObject({
    code: 'non-zero',
  });
  expect({ oneLine: strataLinesAreOneError(r.stderr), stderr: r.stderr }).toMatchObject({
    oneLine: true,
  });
  expect(r.stderr).toMatch(error);
}

interface PullCase {
  name: string;
  /** The misbehaviour (a function: the digests are known only once the template is pushed). */
  spec: () => FaultSpec;
  auth?: TokenMode;
  args?: string[];
  /** What to pull from the proxy (default `t:1`). */
  ref?: () => string;
  /** What the one error line says. */
  error: () => RegExp;
  /** Checks on what the proxy saw. */
  saw?: (reqs: ProxyRequest[]) => void;
}

const RETRIES = 4;

const pullCases: PullCase[] = [
  {
    name: 'a blob with a flipped byte',
    spec: () => ({ fault: 'flip-byte', only: d.layer }),
    error: () => new RegExp(`${d.layer}.*digest mismatch|digest mismatch.*${d.layer}`, 'i'),
    // Wrong bytes are not a network failure: asked once, not retried.
    saw: (reqs) => expect(layerGets(reqs)).toHaveLength(1),
  },
  {
    name: 'a truncated blob',
    spec: () => ({ fault: 'truncate', only: d.layer }),
    error: () => new RegExp(`${d.layer}.*size|size.*${d.layer}`, 'i'),
    saw: (reqs) => expect(layerGets(reqs)).toHaveLength(1),
  },
  {
    name: 'a wrong Content-Length',
    spec: () => ({ fault: 'wrong-length', only: d.layer }),
    error: () => new RegExp(`${d.layer}.*size|size.*${d.layer}`, 'i'),
    saw: (reqs) => expect(layerGets(reqs)).toHaveLength(1),
  },
  {
    name: 'a manifest whose digest is not the one its header says',
    spec: () => ({ fault: 'wrong-manifest' }),
    error: () => new RegExp(`manifest 1: digest mismatch: expected ${d.manifest}`),
  },
  {
    name: 'a manifest whose digest is not the one asked for',
    spec: () => ({ fault: 'wrong-manifest', on: 'manifest-by-digest' }),
    ref: () => `t@${d.manifest}`,
    error: () => new RegExp(`manifest ${d.manifest}: digest mismatch: expected ${d.manifest}`),
  },
  {
    name: 'an index that points at a missing manifest',
    spec: () => ({ fault: 'missing-child' }),
    error: () => /GET manifest sha256:[a-f0-9]{64}: HTTP 404 MANIFEST_UNKNOWN/,
  },
  {
    name: 'a redirect loop',
    spec: () => ({ fault: 'redirect-loop', only: d.layer }),
    error: () => new RegExp(`${d.layer}.*redirect`, 'i'),
    // Bounded: a few hops per attempt, never an endless chase.
    saw: (reqs) => expect(layerGets(reqs)).toHaveLength(1 + 5),
  },
  {
    name: '429 with Retry-After, for ever',
    spec: () => ({ fault: 'too-many-requests', retryAfter: 1, only: d.layer }),
    error: () => new RegExp(`${d.layer}.*429`),
    saw: (reqs) => {
      const gets = layerGets(reqs);
      expect(gets).toHaveLength(1 + RETRIES);
      // Retry-After: 1 is honoured between every two attempts.
      for (const g of gaps(gets)) expect(g).toBeGreaterThanOrEqual(950);
    },
  },
  {
    name: '500 and 503, for ever',
    spec: () => ({ fault: 'error-burst', statuses: [500, 503], only: d.layer }),
    error: () => new RegExp(`${d.layer}.*HTTP 50[03]`),
    saw: (reqs) => {
      const gets = layerGets(reqs);
      expect(gets).toHaveLength(1 + RETRIES);
      expectGrowingBackoff(gets);
    },
  },
  {
    name: 'a connection dropped mid-blob, every time',
    spec: () => ({ fault: 'drop-mid-blob', only: d.layer }),
    error: () =>
      new RegExp(
        `GET blob ${d.layer}: the connection dropped with \\d+ of ${d.layerSize} bytes received, after ${RETRIES} retries`,
      ),
    saw: (reqs) => {
      const gets = layerGets(reqs);
      expect(gets).toHaveLength(1 + RETRIES);
      expectGrowingBackoff(gets);
    },
  },
  {
    name: 'a blob whose headers come and then nothing (slowloris)',
    spec: () => ({ fault: 'stall-headers', only: d.layer }),
    args: ['--timeout', '1'],
    error: () => new RegExp(`${d.layer}.*(no data|timed out).*1s`, 'i'),
    saw: (reqs) => expect(layerGets(reqs)).toHaveLength(1 + RETRIES),
  },
  {
    name: 'a manifest request never answered at all',
    spec: () => ({ fault: 'stall-silent', on: 'manifest-by-tag' }),
    args: ['--timeout', '1'],
    error: () => /manifest 1: no response for 1s/,
    saw: (reqs) => expect(reqs.filter((r) => r.faulted)).toHaveLength(1 + RETRIES),
  },
  {
    name: 'a 100 MB manifest, chunked',
    spec: () => ({ fault: 'huge-manifest' }),
    error: () => /manifest 1 is larger than the 4 MiB limit/,
    // Refused by the limit, not read through: far less than 100 MB left the proxy.
    saw: (reqs) => {
      const sent = reqs.filter((r) => r.faulted).reduce((n, r) => n + r.down, 0);
      expect(sent).toBeLessThan(32 * 1024 * 1024);
    },
  },
  {
    name: 'a 100 MB manifest with its Content-Length',
    spec: () => ({ fault: 'huge-manifest', hugeWithLength: true }),
    error: () => /manifest 1 is larger than the 4 MiB limit/,
    saw: (reqs) => {
      const sent = reqs.filter((r) => r.faulted).reduce((n, r) => n + r.down, 0);
      expect(sent).toBeLessThan(32 * 1024 * 1024);
    },
  },
  {
    name: 'JSON that is not a manifest',
    spec: () => ({ fault: 'not-a-manifest' }),
    error: () => /invalid manifest sha256:[a-f0-9]{64}: a manifest without config or layers/,
  },
  {
    name: 'a token endpoint that answers 500',
    spec: () => ({ fault: 'honest' }),
    auth: 'error',
    error: () => /token service .* answered HTTP 500/,
    saw: (reqs) => {
      const tokens = reqs.filter((r) => r.url.startsWith('/token'));
      expect(tokens.length).toBeGreaterThanOrEqual(1);
      expect(tokens.length).toBeLessThanOrEqual(1 + RETRIES);
    },
  },
  {
    name: 'a token for another scope',
    spec: () => ({ fault: 'honest' }),
    auth: 'wrong-scope',
    error: () => /authentication required.*manifest 1.*HTTP 401/,
    saw: (reqs) => {
      // One token, one re-authorisation after the registry's second challenge, then give up.
      expect(reqs.filter((r) => r.url.startsWith('/token')).length).toBeLessThanOrEqual(3);
      expect(reqs.filter((r) => r.status === 401).length).toBeLessThanOrEqual(4);
    },
  },
];

/** Backoff grows: every gap at least about as long as the one before, the last the longest. */
function expectGrowingBackoff(reqs: ProxyRequest[]): void {
  const g = gaps(reqs);
  // Full jitter keeps attempt n's delay within [base·2ⁿ/2, base·2ⁿ], so each is at least the
  // previous one's ceiling; the slack covers request latency on a loaded machine.
  for (let i = 1; i < g.length; i++) expect(g[i]!).toBeGreaterThanOrEqual(g[i - 1]! * 0.8 - 50);
  expect(g[g.length - 1]!).toBeGreaterThan(g[0]! * 2);
}

let storeN = 0;
const freshStore = (): string => path.join(work, `store-${storeN++}`);

describe.each(pullCases)('pull from a registry that sends $name', (c) => {
  afterEach(() => {
    proxy.honest();
    proxy.setAuth('off');
  });

  it('is refused in one line, retried boundedly, stores nothing unverified; then succeeds', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const store = freshStore();
      proxy.setAuth(c.auth ?? 'off');
      proxy.set(c.spec());
      const t0 = Date.now();
      const ref = `${proxy.host}/${c.ref?.() ?? 't:1'}`;
      const r = await strata(['pull', ref, '-t', 'got', ...(c.args ?? [])], {
        store,
        env,
      });
      const seconds = (Date.now() - t0) / 1000;
      expectOneLineError(r, c.error());
      c.saw?.(proxy.requests);
      // Bounded: the worst case here is the retries' backoff (or five 1 s timeouts) plus a few
      // process starts; without bounds a stall would hang for ever.
      expect(seconds).toBeLessThan(60);
      await expectNothingUnverified(store);

      // The registry recovers: the same command, into the same store, succeeds.
      proxy.setAuth(c.auth === undefined ? 'off' : 'honest');
      proxy.honest();
      const ok = await strataJson<{ digest: string }>(
        ['pull', ref, '-t', 'got', ...(c.args ?? [])],
        { store, env },
      );
      expect(ok.digest).toBe(d.manifest);
      // Every blob arrived, verified on the way in (fsck above checked those that were there).
      expect(blobsOf(store)).toEqual([...good].sort());
    }
  });
});

describe('transient faults are retried and the pull succeeds', () => {
  afterEach(() => proxy.honest());

  it('a burst of 500 and 503 on a blob, with growing backoff', async () => {
    const store = freshStore();
    proxy.set({ fault: 'error-burst', statuses: [500, 503, 500], times: 3, only: d.layer });
    const r = await strataJson<{ digest: string }>(['pull', `${proxy.host}/t:1`], { store, env });
    expect(r.digest).toBe(d.manifest);
    const gets = layerGets(proxy.requests);
    expect(gets.map((g) => g.status)).toEqual([500, 503, 500, 200]);
    expectGrowingBackoff(gets);
    await strataOk(['fsck'], { store, env });
  });

  it('a connection dropped once mid-blob is resumed from the byte reached', async () => {
    const store = freshStore();
    proxy.set({ fault: 'drop-mid-blob', times: 1, only: d.layer });
    const r = await strataJson<{ digest: string }>(['pull', `${proxy.host}/t:1`], { store, env });
    expect(r.digest).toBe(d.manifest);
    const gets = layerGets(proxy.requests);
    expect(gets).toHaveLength(2);
    // The second request asked only for the rest: it carried far fewer bytes than the blob.
    expect(gets[1]!.down).toBeLessThan(d.layerSize);
    expect(gets[0]!.down + gets[1]!.down).toBe(d.layerSize);
    await strataOk(['fsck'], { store, env });
  });

  it('a token service that fails twice, then answers', async () => {
    const store = freshStore();
    proxy.setAuth('error');
    proxy.honest();
    // The token service recovers while the client backs off.
    const recover = setTimeout(() => proxy.setAuth('honest'), 300);
    try {
      const r = await strataJson<{ digest: string }>(['pull', `${proxy.host}/t:1`], {
        store,
        env,
      });
      expect(r.digest).toBe(d.manifest);
    } finally {
      clearTimeout(recover);
      proxy.setAuth('off');
    }
    await strataOk(['fsck'], { store, env });
  });
});

interface PushCase {
  name: string;
  spec: () => FaultSpec;
  auth?: TokenMode;
  error: () => RegExp;
}

const pushCases: PushCase[] = [
  {
    name: 'answers 500 and 503 to every upload',
    spec: () => ({ fault: 'error-burst', on: 'upload', statuses: [500, 503] }),
    // Once an earlier push put the blobs in another repository there, the push mounts first.
    error: () =>
      new RegExp(
        `(start upload|mount blob sha256:[a-f0-9]{64} from p\\d+): HTTP 50[03] .*; not pushed: 2 of 2 blobs \\(.*${d.layer.slice(0, 19)}.*\\) and the manifest ${d.manifest.slice(0, 19)}, so .*/p\\d+:1 was not tagged`,
      ),
  },
  {
    name: 'drops the connection on the manifest PUT',
    spec: () => ({ fault: 'drop-request', on: 'manifest-put' }),
    error: () =>
      new RegExp(
        `PUT manifest 1: .*; not pushed: all 2 blobs are there but the manifest ${d.manifest.slice(0, 19)}, so .* was not tagged`,
      ),
  },
  {
    name: 'stalls every upload',
    spec: () => ({ fault: 'stall-silent', on: 'upload' }),
    error: () => /no response for 1s; not pushed: 2 of 2 blobs/,
  },
  {
    name: 'issues a token for another scope',
    spec: () => ({ fault: 'honest' }),
    auth: 'wrong-scope',
    error: () => /authentication required.*; not pushed: 2 of 2 blobs/,
  },
];

/** Everything of a store that a push must not change: its tags and its blobs. */
function storeState(store: string): { index: string; blobs: string[] } {
  return {
    index: fs.readFileSync(path.join(store, 'index.json'), 'utf8'),
    blobs: blobsOf(store),
  };
}

describe.each(pushCases)('push to a registry that $name', (c) => {
  afterEach(() => {
    proxy.honest();
    proxy.setAuth('off');
  });

  it('fails in one line, leaves the local store untouched; then succeeds', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const repo = `p${storeN++}`;
      const before = storeState(source);
      proxy.setAuth(c.auth ?? 'off');
      proxy.set(c.spec());
      const r = await strata(['push', 't:1', `${proxy.host}/${repo}:1`, '--timeout', '1'], {
        store: source,
        env,
      });
      expectOneLineError(r, c.error());
      expect(storeState(source)).toEqual(before);
      await strataOk(['fsck'], { store: source, env });

      proxy.setAuth(c.auth === undefined ? 'off' : 'honest');
      proxy.honest();
      const ok = await strataJson<{ digest: string }>(
        ['push', 't:1', `${proxy.host}/${repo}:1`, '--timeout', '1'],
        { store: source, env },
      );
      expect(ok.digest).toBe(d.manifest);
      expect(storeState(source)).toEqual(before);
      // What the registry got is the template, whole.
      const back = freshStore();
      const pulled = await strataJson<{ digest: string }>(['pull', `${reg.host}/${repo}:1`], {
        store: back,
        env,
      });
      expect(pulled.digest).toBe(d.manifest);
    }
  });
});

test('--timeout refuses what is not a positive number of seconds', async () => {
  const r = await strata(['pull', `${proxy.host}/t:1`, '--timeout', '0'], {
    store: freshStore(),
    env,
  });
  expectOneLineError(r, /--timeout must be a positive number of seconds/);
});
