import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { readTar } from '@strata/layer';
import { Store } from '@strata/store';
import { InvalidArgumentError } from '@strata/oci';
import { hostDebianArchitecture } from '@strata/tools';
import { DEFAULT_EXCLUSIONS, ExclusionSet, globToRegExp } from './exclusions';
import { resolveInRoot } from './rootfs';
import { createTemplate } from './create';
import { loadTemplate, summarize } from './inspect';
import { openRootfsSource, peekCompression } from './rootfs-input';

/** A dpkg status file of three installed packages (its parsing is tested in @strata/debian). */
const STATUS = ['libc6', 'base-files', 'libbz2-1.0']
  .map(
    (name) => `Package: ${name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n`,
  )
  .join('\n');

test('globs stay within a path component unless **', () => {
  expect(globToRegExp('var/log/*').test('var/log/apt')).toBe(true);
  expect(globToRegExp('var/log/*').test('var/log')).toBe(false);
  expect(globToRegExp('etc/apt/apt.conf.d/*proxy*').test('etc/apt/apt.conf.d/01proxy')).toBe(true);
  expect(globToRegExp('etc/*.conf').test('etc/a/b.conf')).toBe(false);
  expect(globToRegExp('usr/**/*.pyc').test('usr/lib/python3/x/y.pyc')).toBe(true);
  expect(globToRegExp('etc/ssh/ssh_host_[er]*').test('etc/ssh/ssh_host_rsa_key')).toBe(true);
});

test('exclusion set: defaults, --keep, --exclude and counts', () => {
  const s = new ExclusionSet({ keep: ['/etc/hosts'], exclude: ['opt/secret/'] });
  expect(s.decide('etc/hosts')).toBe('keep');
  expect(s.decide('etc/resolv.conf')).toBe('drop');
  expect(s.decide('etc/machine-id')).toBe('empty');
  expect(s.decide('var/log')).toBe('keep');
  expect(s.decide('var/log/dpkg.log')).toBe('drop');
  expect(s.decide('opt/secret')).toBe('drop');
  const rec = s.record();
  expect(rec).toHaveLength(DEFAULT_EXCLUSIONS.length);
  expect(rec.find((r) => r.pattern === 'etc/resolv.conf')?.matched).toBe(1);
  expect(rec.find((r) => r.pattern === 'opt/secret')?.reason).toBe('excluded on request');
  expect(() => new ExclusionSet({ keep: ['etc/nothing'] })).toThrow(InvalidArgumentError);
  expect(new ExclusionSet({ noDefaults: true }).rules).toEqual([]);
});

test('folders that packages own stay when their files go: apt lists and cache, logs, auth.conf.d', () => {
  const s = new ExclusionSet();
  expect(s.decide('var/cache/apt/archives', 'dir')).toBe('keep');
  expect(s.decide('var/cache/apt/archives/partial', 'dir')).toBe('keep');
  expect(s.decide('var/cache/apt/archives/curl_8.deb', 'file')).toBe('drop');
  expect(s.decide('var/cache/apt/pkgcache.bin', 'file')).toBe('drop');
  expect(s.decide('var/lib/apt/lists/partial', 'dir')).toBe('keep');
  expect(s.decide('var/lib/apt/lists/deb.debian.org_InRelease', 'file')).toBe('drop');
  expect(s.decide('etc/apt/auth.conf.d', 'dir')).toBe('keep');
  expect(s.decide('etc/apt/auth.conf.d/acme.conf', 'file')).toBe('drop');
  expect(s.decide('var/log/apt', 'dir')).toBe('keep');
  expect(s.decide('var/log/apt/term.log', 'file')).toBe('drop');
  expect(s.decide('var/log/apt/eipp.log.xz', 'other')).toBe('drop');
  // A user's --exclude of a folder still drops it whole.
  const u = new ExclusionSet({ exclude: ['usr/share/doc'] });
  expect(u.decide('usr/share/doc', 'dir')).toBe('drop');
  const rec = s.record();
  expect(rec.find((r) => r.pattern === 'var/cache/apt/*')?.matched).toBe(3);
  expect(rec.find((r) => r.pattern === 'var/log/*')?.matched).toBe(3);
});

describe('with a tree', () => {
  let dir: string;
  let root: string;
  let store: Store;

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-tmpl-'));
    root = path.join(dir, 'rootfs');
    const w = async (rel: string, data: string) => {
      await fsp.mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await fsp.writeFile(path.join(root, rel), data);
    };
    await w('var/lib/dpkg/status', STATUS);
    await w(
      'usr/lib/os-release',
      'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    );
    await w('etc/resolv.conf', 'nameserver 10.0.0.1\n');
    await fsp.symlink('../usr/lib/os-release', path.join(root, 'etc/os-release'));
    await w('etc/apt/sources.list.d/host.list', 'deb http://mirror.invalid/debian bookworm main\n');
    await w('etc/machine-id', '0123456789abcdef0123456789abcdef\n');
    await w('etc/ssh/ssh_host_ed25519_key', 'PRIVATE');
    await w('var/log/apt/history.log', 'log');
    await w('usr/bin/tool', '#!/bin/sh\necho hi\n');
    await fsp.chmod(path.join(root, 'usr/bin/tool'), 0o755);
    await fsp.mkdir(path.join(root, 'tmp'));
    await w('tmp/junk', 'x');
    store = await Store.open(path.join(dir, 'store'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  async function layerEntries(ref: string): Promise<Map<string, number>> {
    const t = await loadTemplate(store, ref);
    const layer = t.manifest.layers[0]!;
    const zstd = execFileSync('zstd', ['-dc', store.blobPath(layer.digest)], {
      maxBuffer: 1 << 26,
    });
    const out = new Map<string, number>();
    for await (const e of readTar(Readable.from([zstd]))) {
      out.set(e.header.path, e.header.size);
      for await (const _ of e.body) void _;
    }
    return out;
  }

  test('creates a template without host files, with metadata', async () => {
    const t = await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag: 'acme-base:1',
      name: 'acme-base',
      features: ['ssh', 'debug', 'ssh'],
      sourceDateEpoch: 1700000000,
    });
    expect(t.ref).toBe('acme-base:1');
    const s = summarize(await loadTemplate(store, 'acme-base:1'));
    expect(s.name).toBe('acme-base');
    expect(s.created).toBe('2023-11-14T22:13:20Z');
    expect(s.features).toEqual(['debug', 'ssh']);
    expect(s.architecture).toBe('amd64');
    expect(s.distribution.prettyName).toBe('Debian GNU/Linux 12 (bookworm)');
    expect(s.packages.map((p) => p.name)).toEqual(['base-files', 'libbz2-1.0', 'libc6']);
    expect(s.exclusions.find((e) => e.pattern === 'etc/ssh/ssh_host_*')?.matched).toBe(1);
    expect(s.layers[0]!.createdBy).toBe('strata template create rootfs');
    const entries = await layerEntries('acme-base:1');
    expect(entries.get('usr/bin/tool')).toBeGreaterThan(0);
    expect(entries.get('etc/machine-id')).toBe(0);
    expect(entries.has('etc/resolv.conf')).toBe(false);
    expect(entries.has('etc/apt/sources.list.d/host.list')).toBe(false);
    expect(entries.has('etc/ssh/ssh_host_ed25519_key')).toBe(false);
    expect(entries.has('var/log/')).toBe(true);
    // apt owns /var/log/apt: the folder stays, its logs go.
    expect(entries.has('var/log/apt/')).toBe(true);
    expect(entries.has('var/log/apt/history.log')).toBe(false);
    expect(entries.has('tmp/')).toBe(true);
    expect(entries.has('tmp/junk')).toBe(false);
  });

  test("a rootfs without dpkg takes the platform asked for, else the host's with a warning; dpkg's must agree", async () => {
    const arm64 = { os: 'linux', architecture: 'arm64' };
    // dpkg says amd64: another platform is an error, before anything is tagged.
    await expect(
      createTemplate(store, {
        source: { kind: 'dir', path: root },
        tag: 'wrong:1',
        name: 'x',
        platform: arm64,
      }),
    ).rejects.toThrow("rootfs: its dpkg's architecture is amd64, not arm64 (linux/arm64)");
    await expect(store.resolve('wrong:1')).rejects.toThrow();
    const agreed = await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag: 'same:1',
      name: 'x',
      platform: { os: 'linux', architecture: 'amd64' },
    });
    expect(agreed.config.architecture).toBe('amd64');
    // A Yocto tree: no dpkg.
    await fsp.rm(path.join(root, 'var/lib/dpkg'), { recursive: true });
    const warnings: string[] = [];
    const arm = await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag: 'yocto:arm',
      name: 'yocto',
      platform: arm64,
      onWarning: (m) => warnings.push(m),
    });
    expect([arm.config.architecture, arm.config.variant, arm.config.strata?.architecture]).toEqual([
      'arm64',
      'v8',
      'arm64',
    ]);
    expect(warnings).toEqual([]);
    const host = await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag: 'yocto:host',
      name: 'yocto',
      onWarning: (m) => warnings.push(m),
    });
    const hostArch = hostDebianArchitecture();
    expect(host.config.strata?.architecture).toBe(hostArch);
    expect(warnings).toEqual([
      `rootfs has no dpkg to tell its architecture: it is labelled ${hostArch}, this host's; give --platform to say which it is`,
    ]);
  });

  test('is reproducible with SOURCE_DATE_EPOCH', async () => {
    const opts = {
      source: { kind: 'dir' as const, path: root },
      name: 'r',
      sourceDateEpoch: 1700000000,
    };
    const a = await createTemplate(store, { ...opts, tag: 'r:a' });
    await fsp.utimes(path.join(root, 'usr/bin/tool'), new Date(), new Date());
    const b = await createTemplate(store, { ...opts, tag: 'r:b' });
    expect(b.descriptor.digest).toBe(a.descriptor.digest);
  });

  test('creates from a gzip tarball on a stream, sniffing the compression', async () => {
    const tgz = path.join(dir, 'rootfs.tar.gz');
    execFileSync('tar', ['-czf', tgz, '-C', root, '.']);
    const src = await openRootfsSource(tgz, process.stdin);
    expect(src.kind === 'tar' && src.compression).toBe('gzip');
    const t = await createTemplate(store, {
      source: src,
      tag: 'from-tar',
      name: 'from-tar',
      sourceDateEpoch: 1700000000,
    });
    const d = await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag: 'from-dir',
      name: 'from-tar',
      sourceDateEpoch: 1700000000,
    });
    // the history names the source, so compare the layers
    expect(t.manifest.layers[0]!.digest).toBe(d.manifest.layers[0]!.digest);
    expect(await fsp.readdir(path.join(store.root, '.strata', 'ingest'))).toEqual([]);
  });

  test('peeks at a stream without losing bytes', async () => {
    const data = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.from('rest')]);
    const peeked = await peekCompression(Readable.from([data.subarray(0, 2), data.subarray(2)]));
    expect(peeked.compression).toBe('zstd');
    const chunks: Buffer[] = [];
    for await (const c of peeked.stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks)).toEqual(data);
  });

  test('symlinks in the rootfs never resolve outside it', async () => {
    await fsp.symlink('/../../../../etc/passwd', path.join(root, 'evil'));
    expect(await resolveInRoot(root, 'evil')).toBeUndefined();
    await fsp.writeFile(path.join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    expect(await resolveInRoot(root, 'evil')).toBe(path.join(root, 'etc/passwd'));
  });
});
