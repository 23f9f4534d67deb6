import { execFileSync, execSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  Compression,
  ContentSource,
  Descriptor,
  Digest,
  MediaTypes,
  UnsafeEntryError,
  VerifyingStream,
  layerOf as coreLayer,
} from '@strata/oci';
import { readTreeXattrs } from '@strata/tools';
import {
  cleanEntryPath,
  createLayer,
  packTree,
  readTar,
  unpackLayer,
  unpackLayers,
  PackOptions,
} from './index';
import { tarOf } from './testing';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-layer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const mkdir = (name: string): string => {
  const d = path.join(tmp, `${name}-${n++}`);
  fs.mkdirSync(d);
  return d;
};
/** An unpack target and a directory beside it that no entry may reach. */
const beside = (name: string): { base: string; outside: string; target: string } => {
  const base = mkdir(name);
  const outside = path.join(base, 'outside');
  const target = path.join(base, 'target');
  fs.mkdirSync(outside);
  fs.mkdirSync(target);
  return { base, outside, target };
};

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const pack = (opts: PackOptions): Promise<Buffer> => collect(packTree(opts));

async function list(tar: Buffer): Promise<
  {
    path: string;
    type: string;
    mode: number;
    mtime: number;
    size: number;
    linkpath: string;
    xattrs: string[];
  }[]
> {
  const out = [];
  for await (const e of readTar(Readable.from([tar]))) {
    const h = e.header;
    out.push({
      path: h.path,
      type: h.type,
      mode: h.mode,
      mtime: h.mtime,
      size: h.size,
      linkpath: h.linkpath,
      xattrs: Object.keys(h.xattrs).sort(),
    });
  }
  return out;
}

/** A tree exercising every feature: owners, special modes, links, devices, xattrs, long names. */
function makeTree(): string {
  const root = mkdir('src');
  const w = (p: string, data: string | Buffer, mode = 0o644): void => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), data, { mode });
    fs.chmodSync(path.join(root, p), mode);
  };
  w('etc/hosts', '127.0.0.1 localhost\n');
  w('etc/shadow', 'root:*:1::::::\n', 0o640);
  fs.chownSync(path.join(root, 'etc/shadow'), 0, 42);
  w('usr/bin/su', Buffer.alloc(70000, 7), 0o4755);
  w('usr/bin/ping', 'ping', 0o755);
  execSync(
    `setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= ${root}/usr/bin/ping`,
  );
  execSync(`setfattr -n user.bin -v 0x00ff10 ${root}/etc/hosts`);
  w('home/u/file', 'x');
  fs.chownSync(path.join(root, 'home/u'), 1000, 1000);
  fs.chownSync(path.join(root, 'home/u/file'), 1000, 1000);
  fs.mkdirSync(path.join(root, 'tmp'));
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.symlinkSync('usr/bin', path.join(root, 'bin'));
  fs.symlinkSync('/' + 'x'.repeat(150), path.join(root, 'longlink'));
  fs.linkSync(path.join(root, 'usr/bin/su'), path.join(root, 'usr/bin/su-hardlink'));
  const long = 'd'.repeat(80) + '/' + 'e'.repeat(90) + '/' + 'f'.repeat(120);
  w(long, 'deep');
  w('a-b', 'sorts before a/');
  w('a/z', 'z');
  fs.mkdirSync(path.join(root, 'dev'));
  execSync(
    `mknod ${root}/dev/null c 1 3 && mknod ${root}/dev/loop0 b 7 0 && mkfifo ${root}/dev/fifo`,
  );
  fs.writeFileSync(path.join(root, 'empty'), '');
  const big = crypto.randomBytes(3 * 1024 * 1024 + 17);
  w('var/big.bin', big);
  // fixed mtimes everywhere (lutimes does not follow symlinks)
  execSync(`find ${root} -exec touch -h -d @1600000000 {} +`);
  return root;
}

interface Snap {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  hash?: string;
  link?: string;
  rdev?: number;
  ino?: string;
}

/** Everything we promise to preserve, per path; hardlinks appear as equal `ino` group names. */
function snapshot(root: string): Record<string, Snap> {
  const out: Record<string, Snap> = {};
  const firstPath = new Map<number, string>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      const s: Snap = {
        type: '',
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
        size: 0,
      };
      if (st.isFile()) {
        s.type = 'file';
        s.size = st.size;
        s.hash = crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(root, r)))
          .digest('hex');
        if (st.nlink > 1) {
          if (!firstPath.has(st.ino)) firstPath.set(st.ino, r);
          s.ino = firstPath.get(st.ino);
        }
      } else if (st.isDirectory()) {
        s.type = 'dir';
        walk(r);
      } else if (st.isSymbolicLink()) {
        s.type = 'symlink';
        s.link = fs.readlinkSync(path.join(root, r));
        s.mode = 0;
      } else {
        s.type = st.isCharacterDevice() ? 'char' : st.isBlockDevice() ? 'block' : 'fifo';
        s.rdev = st.rdev;
      }
      out[r] = s;
    }
  };
  walk('');
  return out;
}

async function xattrsOf(root: string): Promise<Record<string, Record<string, string>>> {
  const m = await readTreeXattrs(root);
  const out: Record<string, Record<string, string>> = {};
  for (const [p, x] of m) {
    if (p === '') continue;
    out[p] = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.toString('hex')]));
  }
  return out;
}

async function layerOf(
  root: string,
  c: Compression,
  opts: Partial<PackOptions> = {},
): Promise<{ blob: Buffer; diffId: string }> {
  const { blob, result } = createLayer(packTree({ root, ...opts }), c);
  const data = await collect(blob);
  const r = await result;
  return { blob: data, diffId: r.diffId };
}

describe('packTree', () => {
  let src: string;
  beforeAll(() => {
    src = makeTree();
  });

  test('entries are sorted depth-first, relative, dirs with trailing slash, no root entry', async () => {
    const entries = await list(await pack({ root: src }));
    const paths = entries.map((e) => e.path);
    expect(paths.slice(0, 4)).toEqual(['a/', 'a/z', 'a-b', 'bin']);
    expect(paths).toContain('etc/');
    expect(paths).toContain('etc/hosts');
    expect(paths.some((p) => p.startsWith('./') || p.startsWith('/'))).toBe(false);
    const su2 = entries.find((e) => e.path === 'usr/bin/su-hardlink');
    expect(su2).toMatchObject({ type: 'link', linkpath: 'usr/bin/su', size: 0 });
    expect(entries.find((e) => e.path === 'usr/bin/su')).toMatchObject({
      type: 'file',
      mode: 0o4755,
      size: 70000,
    });
    expect(entries.find((e) => e.path === 'tmp/')).toMatchObject({ type: 'dir', mode: 0o1777 });
    expect(entries.find((e) => e.path === 'usr/bin/ping')?.xattrs).toEqual(['security.capability']);
    expect(entries.find((e) => e.path === 'longlink')?.linkpath).toBe('/' + 'x'.repeat(150));
  });

  test('is deterministic, also for a `cp -a` copy', async () => {
    const a = await pack({ root: src });
    const b = await pack({ root: src });
    expect(a.equals(b)).toBe(true);
    const copy = mkdir('copy');
    execSync(`cp -a ${src}/. ${copy}/`);
    const c = await pack({ root: copy });
    expect(sha(c)).toBe(sha(a));
  });

  test('SOURCE_DATE_EPOCH clamps newer mtimes only', async () => {
    const root = mkdir('epoch');
    fs.writeFileSync(path.join(root, 'old'), 'o');
    fs.writeFileSync(path.join(root, 'new'), 'n');
    fs.utimesSync(path.join(root, 'old'), 500, 500);
    fs.utimesSync(path.join(root, 'new'), 5000, 5000);
    const e = await list(await pack({ root, sourceDateEpoch: 1000 }));
    expect(e.map((x) => [x.path, x.mtime])).toEqual([
      ['new', 1000],
      ['old', 500],
    ]);
  });

  test('exclude hook: drop, empty, contents', async () => {
    const e = await list(
      await pack({
        root: src,
        exclude: (p, kind) =>
          p === 'var'
            ? 'contents'
            : p === 'etc/hosts'
              ? 'empty'
              : p === 'home' && kind === 'dir'
                ? 'drop'
                : 'keep',
      }),
    );
    const paths = e.map((x) => x.path);
    expect(paths).toContain('var/');
    expect(paths.some((p) => p.startsWith('var/') && p !== 'var/')).toBe(false);
    expect(paths.some((p) => p.startsWith('home'))).toBe(false);
    expect(e.find((x) => x.path === 'etc/hosts')).toMatchObject({
      type: 'file',
      size: 0,
      xattrs: ['user.bin'],
    });
  });

  test('refuses a real file named .wh.*', async () => {
    const root = mkdir('wh');
    fs.writeFileSync(path.join(root, '.wh.foo'), '');
    await expect(pack({ root })).rejects.toBeInstanceOf(UnsafeEntryError);
  });

  test('GNU tar lists and extracts our output identically', async () => {
    const tar = await pack({ root: src });
    const tarFile = path.join(tmp, 'ours.tar');
    fs.writeFileSync(tarFile, tar);
    const listing = execFileSync('tar', ['-tvf', tarFile]).toString();
    expect(listing).toContain('usr/bin/su-hardlink link to usr/bin/su');
    expect(listing).toMatch(/crw-r--r-- 0\/0 +1,3 .* dev\/null/);
    const dst = mkdir('gnu-x');
    execFileSync('tar', [
      '-xpf',
      tarFile,
      '--xattrs',
      '--xattrs-include=*',
      '--numeric-owner',
      '-C',
      dst,
    ]);
    expect(snapshot(dst)).toEqual(snapshot(src));
    expect(await xattrsOf(dst)).toEqual(await xattrsOf(src));
  });
});

/** The descriptor of a layer blob compressed as `c`. */
function descriptorOf(blob: Buffer, c: 'zstd' | 'gzip'): Descriptor {
  return {
    mediaType: c === 'zstd' ? MediaTypes.layerZstd : MediaTypes.layerGzip,
    digest: `sha256:${sha(blob)}` as Digest,
    size: blob.length,
  };
}

/**
 * A backend of the core over blobs in memory, verified as the store's are. With `local`, it
 * also keeps blobs in files and remembers verified diffIDs, as the store does.
 */
function memoryContent(
  blobs: Map<Digest, Buffer>,
  local?: { files: Map<Digest, string>; records: Map<Digest, Digest> },
): ContentSource {
  const openBlob = async (d: Descriptor): Promise<Readable> =>
    Readable.from([blobs.get(d.digest) as Buffer]).pipe(
      new VerifyingStream({ digest: d.digest, size: d.size }, `blob ${d.digest}`),
    );
  return {
    readBlob: async (d) => collect(await openBlob(d)),
    openBlob,
    openDecompressed: () => Promise.reject(new Error('unpackLayers decompresses itself')),
    ...(local
      ? {
          blobFile: async (d: Descriptor) => local.files.get(d.digest) as string,
          knownDiffId: async (d: Descriptor) => local.records.get(d.digest),
          recordDiffId: async (d: Descriptor, id: Digest) => void local.records.set(d.digest, id),
        }
      : {}),
  };
}

function sha(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

describe('createLayer + unpackLayer', () => {
  let src: string;
  beforeAll(() => {
    src = makeTree();
  });

  test.each(['zstd', 'gzip', 'none'] as const)('round-trips a tree (%s)', async (c) => {
    const { blob, diffId } = await layerOf(src, c);
    const dst = mkdir(`rt-${c}`);
    const stats = await unpackLayer(Readable.from([blob]), c, dst, {
      expectedDiffId: diffId as never,
    });
    expect(stats.diffId).toBe(diffId);
    expect(stats.hardlinks).toBe(1);
    expect(snapshot(dst)).toEqual(snapshot(src));
    expect(await xattrsOf(dst)).toEqual(await xattrsOf(src));
    // the diffID is the sha256 of the uncompressed tar
    expect(`sha256:${sha(await pack({ root: src }))}`).toBe(diffId);
  });

  test('zstd and gzip blobs are deterministic', async () => {
    for (const c of ['zstd', 'gzip'] as const) {
      const a = await layerOf(src, c);
      const b = await layerOf(src, c);
      expect(sha(a.blob)).toBe(sha(b.blob));
    }
  });

  test('fails loudly on a diffID mismatch', async () => {
    const { blob } = await layerOf(src, 'zstd');
    const wrong = `sha256:${'0'.repeat(64)}`;
    await expect(
      unpackLayer(Readable.from([blob]), 'zstd', mkdir('mm'), { expectedDiffId: wrong as never }),
    ).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
    });
  });

  test('truncated and corrupt blobs are refused', async () => {
    const { blob } = await layerOf(src, 'none');
    await expect(
      unpackLayer(Readable.from([blob.subarray(0, 5000)]), 'none', mkdir('trunc')),
    ).rejects.toMatchObject({ code: 'CORRUPT' });
    const bad = Buffer.from(blob);
    bad[1] = (bad[1] as number) ^ 0xff; // header checksum no longer matches
    await expect(unpackLayer(Readable.from([bad]), 'none', mkdir('bad'))).rejects.toMatchObject({
      code: 'CORRUPT',
    });
    const z = await layerOf(src, 'zstd');
    await expect(
      unpackLayer(Readable.from([z.blob.subarray(0, 1000)]), 'zstd', mkdir('ztrunc')),
    ).rejects.toMatchObject({
      code: expect.stringMatching(/TOOL_FAILED|CORRUPT/),
    });
  });

  test.each(['zstd', 'gzip', 'none'] as const)(
    'unpacks from a file path, verifying the blob digest (%s)',
    async (c) => {
      const { blob, diffId } = await layerOf(src, c);
      const file = path.join(tmp, `blob-${c}`);
      fs.writeFileSync(file, blob);
      const digest = `sha256:${sha(blob)}`;
      const dst = mkdir(`path-${c}`);
      const stats = await unpackLayer(file, c, dst, {
        expectedDigest: digest as never,
        expectedDiffId: diffId as never,
      });
      expect(stats.digest).toBe(digest);
      expect(snapshot(dst)).toEqual(snapshot(src));
      await expect(
        unpackLayer(file, c, mkdir(`path-bad-${c}`), {
          expectedDigest: `sha256:${'1'.repeat(64)}` as never,
        }),
      ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
      // a stream source reports (and checks) the blob digest too
      const s2 = await unpackLayer(Readable.from([blob]), c, mkdir(`stream-${c}`), {
        expectedDigest: digest as never,
      });
      expect(s2.digest).toBe(digest);
    },
  );

  test('corrupt gzip and missing files fail with typed errors', async () => {
    const g = await layerOf(src, 'gzip');
    const bad = Buffer.from(g.blob);
    bad[bad.length - 6] = (bad[bad.length - 6] as number) ^ 0xff; // the CRC32 trailer
    await expect(unpackLayer(Readable.from([bad]), 'gzip', mkdir('badgz'))).rejects.toMatchObject({
      code: 'CORRUPT',
    });
    await expect(
      unpackLayer(path.join(tmp, 'no-such-blob'), 'zstd', mkdir('nofile')),
    ).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  test('a failing source stream aborts the unpack and reaps zstd', async () => {
    const { blob } = await layerOf(src, 'zstd');
    async function* failing(): AsyncGenerator<Buffer> {
      yield blob.subarray(0, 100);
      throw new Error('connection reset');
    }
    await expect(
      unpackLayer(Readable.from(failing()), 'zstd', mkdir('reset')),
    ).rejects.toMatchObject({ code: 'CORRUPT' });
    // The worker reaps zstd after the rejection; on a loaded machine that can take a while (a CI
    // run beside other work saw more than 5 s), so it gets up to 30 s.
    const zstdKids = (): string[] =>
      execSync(`ps -o stat=,comm= --ppid ${process.pid}`, { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes('zstd'));
    // The rejection may come before the worker even started zstd (then it starts and kills it),
    // so wait for a whole second without one, for at most 30 s.
    let quiet = 0;
    for (let i = 0; i < 300 && quiet < 10; i++) {
      quiet = zstdKids().length === 0 ? quiet + 1 : 0;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(zstdKids()).toEqual([]);
  });

  test('many unpacks in parallel share the worker pool', async () => {
    const { blob, diffId } = await layerOf(src, 'zstd');
    const all = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        unpackLayer(Readable.from([blob]), 'zstd', mkdir(`par-${i}`), {
          expectedDiffId: diffId as never,
        }),
      ),
    );
    for (const s of all) expect(s.diffId).toBe(diffId);
  });

  test('unpackLayers reads a layer file, records a verified diffID and trusts it only with the same blob digest', async () => {
    const { blob, diffId } = await layerOf(src, 'zstd');
    const file = path.join(tmp, 'records.tar.zst');
    fs.writeFileSync(file, blob);
    const d = descriptorOf(blob, 'zstd');
    const records = new Map<Digest, Digest>();
    const files = new Map([[d.digest, file]]);
    const content = memoryContent(new Map([[d.digest, blob]]), { files, records });
    // First unpack: read from the file, hashed, checked, recorded.
    const [first] = await unpackLayers([coreLayer(content, d, diffId as Digest)], mkdir('rec-1'));
    expect(first?.diffId).toBe(diffId);
    expect(records.get(d.digest)).toBe(diffId);
    // Second: the record matches, so the tar is not hashed again; the tree is the same.
    const dst = mkdir('rec-2');
    const [second] = await unpackLayers([coreLayer(content, d, diffId as Digest)], dst);
    expect(second?.diffId).toBeUndefined();
    expect(snapshot(dst)).toEqual(snapshot(src));
    // A config that claims another diffID is still checked against the tar.
    const wrong = `sha256:${'0'.repeat(64)}` as Digest;
    await expect(
      unpackLayers([coreLayer(content, d, wrong)], mkdir('rec-3')),
    ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    // Other bytes under the recorded digest are caught by the blob digest.
    const other = path.join(tmp, 'records-other.tar.zst');
    fs.writeFileSync(other, (await layerOf(mkdir('rec-empty'), 'zstd')).blob);
    files.set(d.digest, other);
    await expect(
      unpackLayers([coreLayer(content, d, diffId as Digest)], mkdir('rec-4')),
    ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH', message: expect.stringMatching(/blob/) });
  });

  test('unpackLayers records what a verified blob unpacks to when its config lists another diffID', async () => {
    const { blob, diffId } = await layerOf(src, 'zstd');
    const file = path.join(tmp, 'lying.tar.zst');
    fs.writeFileSync(file, blob);
    const d = descriptorOf(blob, 'zstd');
    const records = new Map<Digest, Digest>();
    const content = memoryContent(new Map([[d.digest, blob]]), {
      files: new Map([[d.digest, file]]),
      records,
    });
    const wrong = `sha256:${'0'.repeat(64)}` as Digest;
    await expect(
      unpackLayers([coreLayer(content, d, wrong)], mkdir('lying-1')),
    ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH', expected: wrong, actual: diffId });
    // fsck compares this record with the config's diff_ids.
    expect(records.get(d.digest)).toBe(diffId);
    // The record is no pass for the lie: the next unpack checks again.
    await expect(
      unpackLayers([coreLayer(content, d, wrong)], mkdir('lying-2')),
    ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
  });

  test.each(['zstd', 'gzip'] as const)(
    'a damaged blob file is a digest mismatch naming the blob, not the decompressor or tar failure it causes (%s)',
    async (c) => {
      const { blob, diffId } = await layerOf(src, c);
      const d = descriptorOf(blob, c);
      const damaged = Buffer.from(blob);
      damaged.fill(0x58, Math.floor(blob.length / 2), Math.floor(blob.length / 2) + 16);
      const file = path.join(tmp, `damaged-${c}`);
      fs.writeFileSync(file, damaged);
      const content = memoryContent(new Map([[d.digest, damaged]]), {
        files: new Map([[d.digest, file]]),
        records: new Map<Digest, Digest>(),
      });
      const e = await unpackLayers(
        [coreLayer(content, d, diffId as Digest)],
        mkdir(`dmg-${c}`),
      ).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toMatchObject({
        code: 'DIGEST_MISMATCH',
        message: expect.stringContaining(`blob ${d.digest}: digest mismatch`),
        hint: expect.stringContaining('strata fsck'),
      });
      // The same bytes as a plain file path without an expected digest: the decompressor's error.
      await expect(unpackLayer(file, c, mkdir(`dmg-plain-${c}`))).rejects.toMatchObject({
        code: expect.stringMatching(/CORRUPT|TOOL_FAILED/),
      });
    },
  );

  test('unpackLayers reads a layer without a file as its verified stream', async () => {
    const { blob, diffId } = await layerOf(src, 'gzip');
    const d = descriptorOf(blob, 'gzip');
    const dst = mkdir('stream-layer');
    const content = memoryContent(new Map([[d.digest, blob]]));
    const [stats] = await unpackLayers([coreLayer(content, d, diffId as Digest)], dst);
    expect(stats?.diffId).toBe(diffId);
    expect(snapshot(dst)).toEqual(snapshot(src));
    // Other bytes under the layer's digest fail the unpack.
    const other = (await layerOf(mkdir('stream-other'), 'gzip')).blob;
    const lying = memoryContent(new Map([[d.digest, other]]));
    await expect(
      unpackLayers([coreLayer(lying, { ...d, size: other.length }, diffId as Digest)], mkdir('x')),
    ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
  });

  test('unpacks GNU tar archives (PAX xattrs, hardlinks, devices)', async () => {
    const tarFile = path.join(tmp, 'gnu.tar');
    execFileSync('tar', [
      '--xattrs',
      '--xattrs-include=*',
      '--numeric-owner',
      '--format=posix',
      '-cf',
      tarFile,
      '-C',
      src,
      '.',
    ]);
    const dst = mkdir('from-gnu');
    await unpackLayer(fs.createReadStream(tarFile), 'none', dst);
    expect(snapshot(dst)).toEqual(snapshot(src));
    expect(await xattrsOf(dst)).toEqual(await xattrsOf(src));
    const gnuFmt = path.join(tmp, 'gnu-gnu.tar');
    execFileSync('tar', ['--format=gnu', '--numeric-owner', '-cf', gnuFmt, '-C', src, '.']);
    const dst2 = mkdir('from-gnu-format');
    await unpackLayer(fs.createReadStream(gnuFmt), 'none', dst2);
    expect(snapshot(dst2)).toEqual(snapshot(src));
  });
});

describe('overlay upper dirs and whiteouts', () => {
  test('an overlay upper dir packs to a layer that reproduces the merged view', async () => {
    const base = mkdir('ovl');
    for (const d of ['lower', 'upper', 'work', 'merged']) fs.mkdirSync(path.join(base, d));
    const L = path.join(base, 'lower');
    const M = path.join(base, 'merged');
    fs.mkdirSync(path.join(L, 'etc'));
    fs.writeFileSync(path.join(L, 'etc/gone'), 'g');
    fs.writeFileSync(path.join(L, 'etc/kept'), 'k');
    fs.writeFileSync(path.join(L, 'etc/changed'), 'old');
    fs.mkdirSync(path.join(L, 'opaque/sub'), { recursive: true });
    fs.writeFileSync(path.join(L, 'opaque/sub/x'), 'x');
    fs.writeFileSync(path.join(L, 'opaque/y'), 'y');
    execSync(
      `mount -t overlay overlay -o lowerdir=${L},upperdir=${base}/upper,workdir=${base}/work ${M}`,
    );
    try {
      fs.rmSync(path.join(M, 'etc/gone'));
      fs.writeFileSync(path.join(M, 'etc/changed'), 'new');
      fs.rmSync(path.join(M, 'opaque'), { recursive: true });
      fs.mkdirSync(path.join(M, 'opaque'));
      fs.writeFileSync(path.join(M, 'opaque/fresh'), 'f');
      const upperTar = await pack({ root: path.join(base, 'upper'), overlay: true });
      const entries = await list(upperTar);
      const paths = entries.map((e) => e.path);
      expect(paths).toEqual(
        expect.arrayContaining([
          'etc/.wh.gone',
          'opaque/',
          'opaque/.wh..wh..opq',
          'opaque/fresh',
          'etc/changed',
        ]),
      );
      expect(paths.indexOf('opaque/.wh..wh..opq')).toBe(paths.indexOf('opaque/') + 1);
      expect(entries.every((e) => e.xattrs.every((x) => !x.startsWith('trusted.overlay.')))).toBe(
        true,
      );
      expect(entries.find((e) => e.path === 'etc/.wh.gone')).toMatchObject({
        type: 'file',
        size: 0,
      });

      const lower = await layerOf(L, 'zstd');
      const upper = await layerOf(path.join(base, 'upper'), 'zstd', { overlay: true });
      const dst = mkdir('ovl-unpacked');
      const content = memoryContent(
        new Map([lower.blob, upper.blob].map((b) => [descriptorOf(b, 'zstd').digest, b])),
      );
      const stats = await unpackLayers(
        [lower, upper].map((l) =>
          coreLayer(content, descriptorOf(l.blob, 'zstd'), l.diffId as Digest),
        ),
        dst,
      );
      expect(stats[1]?.whiteouts).toBe(2);
      const strip = (s: Record<string, Snap>): Record<string, Snap> =>
        Object.fromEntries(
          Object.entries(s).map(([k, v]) => [k, { ...v, mtime: v.type === 'dir' ? 0 : v.mtime }]),
        );
      expect(strip(snapshot(dst))).toEqual(strip(snapshot(M)));
    } finally {
      execSync(`umount ${M}`);
    }
  });

  test('an opaque whiteout keeps entries of its own layer, whatever their order', async () => {
    const dst = mkdir('opq');
    fs.mkdirSync(path.join(dst, 'd/keepdir'), { recursive: true });
    fs.writeFileSync(path.join(dst, 'd/lower'), 'l');
    fs.writeFileSync(path.join(dst, 'd/keepdir/lower2'), 'l');
    const tar = rawTar([
      { name: 'd/', type: '5' },
      { name: 'd/new', body: 'n' },
      { name: 'd/keepdir/', type: '5' },
      { name: 'd/.wh..wh..opq' },
    ]);
    await unpackLayer(Readable.from([tar]), 'none', dst);
    expect(fs.readdirSync(path.join(dst, 'd')).sort()).toEqual(['keepdir', 'new']);
    expect(fs.readdirSync(path.join(dst, 'd/keepdir'))).toEqual([]);
  });
});

// ----------------------------------------------------------------------------------------------
// Hostile archives, built with a raw header writer independent of the code under test.

interface RawEntry {
  name: string;
  type?: string;
  body?: string;
  link?: string;
  mode?: number;
}

function rawHeader(name: string, type: string, size: number, link = '', mode = 0o644): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  b.write(mode.toString(8).padStart(7, '0'), 100);
  b.write('0000000', 108);
  b.write('0000000', 116);
  b.write(size.toString(8).padStart(11, '0'), 124);
  b.write('00000000000', 136);
  b.write(type, 156);
  b.write(link, 157, 100, 'utf8');
  b.write('ustar\u000000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148, 'latin1');
  return b;
}

function rawTar(entries: RawEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    parts.push(rawHeader(e.name, e.type ?? '0', body.length, e.link ?? '', e.mode));
    parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

describe('hostile layers', () => {
  const passwd = fs.readFileSync('/etc/passwd');
  const cases: [string, RawEntry[], string][] = [
    ['dot-dot', [{ name: '../x', body: 'pwn' }], '../x'],
    ['nested dot-dot', [{ name: 'a/../../x', body: 'pwn' }], 'a/../../x'],
    ['absolute', [{ name: '/etc/x', body: 'pwn' }], '/etc/x'],
    [
      'write through planted symlink',
      [
        { name: 'a', type: '2', link: 'OUTSIDE' },
        { name: 'a/pwn', body: 'pwn' },
      ],
      'a/pwn',
    ],
    [
      'symlink to .. chain',
      [
        { name: 'up', type: '2', link: '../../..' },
        { name: 'up/pwn', body: 'pwn' },
      ],
      'up/pwn',
    ],
    [
      'dir under symlink',
      [
        { name: 'a', type: '2', link: 'OUTSIDE' },
        { name: 'a/d/', type: '5' },
      ],
      'a/d/',
    ],
    ['hardlink to /etc/passwd', [{ name: 'p', type: '1', link: '/etc/passwd' }], 'p'],
    ['hardlink to ../outside', [{ name: 'p', type: '1', link: '../OUTSIDE_NAME/sentinel' }], 'p'],
    [
      'hardlink through symlink',
      [
        { name: 's', type: '2', link: 'OUTSIDE' },
        { name: 'p', type: '1', link: 's/sentinel' },
      ],
      'p',
    ],
    ['hardlink to nothing', [{ name: 'p', type: '1', link: 'nope' }], 'p'],
    ['whiteout climbing out', [{ name: '.wh...' }], '.wh...'],
    ['whiteout in ..', [{ name: '../.wh.x' }], '../.wh.x'],
    [
      'whiteout through symlink',
      [{ name: 's', type: '2', link: 'OUTSIDE' }, { name: 's/.wh.sentinel' }],
      's/.wh.sentinel',
    ],
    ['root replaced by symlink', [{ name: './', type: '2', link: '/' }], './'],
    ['root replaced by file', [{ name: '.', body: 'x' }], '.'],
  ];

  test.each(cases)('%s', async (_title, entries, culprit) => {
    const { base, outside, target } = beside('hostile');
    fs.writeFileSync(path.join(outside, 'sentinel'), 'sentinel');
    fs.writeFileSync(path.join(outside, 'x'), 'x');
    const fixed = entries.map((e) => ({
      ...e,
      link: e.link?.replace('OUTSIDE_NAME', 'outside').replace('OUTSIDE', outside),
    }));
    const err = await unpackLayer(Readable.from([rawTar(fixed)]), 'none', target).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnsafeEntryError);
    expect((err as UnsafeEntryError).entry).toBe(culprit);
    expect((err as Error).message).toContain(JSON.stringify(culprit));
    expect(fs.readdirSync(outside).sort()).toEqual(['sentinel', 'x']);
    expect(fs.readFileSync(path.join(outside, 'sentinel'), 'utf8')).toBe('sentinel');
    expect(fs.readFileSync(path.join(outside, 'x'), 'utf8')).toBe('x');
    expect(fs.existsSync(path.join(base, 'x'))).toBe(false);
    expect(fs.readFileSync('/etc/passwd').equals(passwd)).toBe(true);
    expect(fs.lstatSync(target).isDirectory()).toBe(true);
  });

  test('a symlink already in the target is never followed', async () => {
    const { outside, target } = beside('pre');
    fs.symlinkSync(outside, path.join(target, 'etc'));
    const err = await unpackLayer(
      Readable.from([rawTar([{ name: 'etc/passwd', body: 'pwn' }])]),
      'none',
      target,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeEntryError);
    expect(fs.readdirSync(outside)).toEqual([]);
    // replacing the symlink itself with a file is fine and does not touch the outside
    await unpackLayer(Readable.from([rawTar([{ name: 'etc', body: 'file' }])]), 'none', target);
    expect(fs.readFileSync(path.join(target, 'etc'), 'utf8')).toBe('file');
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  test('a later entry replaces an earlier one; dir over dir merges', async () => {
    const dst = mkdir('replace');
    await unpackLayer(
      Readable.from([
        rawTar([
          { name: 'x', body: 'one' },
          { name: 'x', type: '2', link: 'target' },
          { name: 'd/', type: '5', mode: 0o700 },
          { name: 'd/f', body: 'f' },
          { name: 'd/', type: '5', mode: 0o755 },
        ]),
      ]),
      'none',
      dst,
    );
    expect(fs.readlinkSync(path.join(dst, 'x'))).toBe('target');
    expect(fs.statSync(path.join(dst, 'd')).mode & 0o777).toBe(0o755);
    expect(fs.readFileSync(path.join(dst, 'd/f'), 'utf8')).toBe('f');
  });
});

describe('device nodes and FIFOs (made in one batch at the end of a layer)', () => {
  test('hardlinks to them, replacement by later entries, parents replaced by symlinks', async () => {
    const { outside, target } = beside('nodes');
    const tar = rawTar([
      { name: 'd/', type: '5' },
      { name: 'd/f', type: '6' },
      { name: 'd/l', type: '1', link: 'd/f' },
      { name: 'g', type: '6' },
      { name: 'g', body: 'file now' },
      { name: 'x/', type: '5' },
      { name: 'x/f', type: '6' },
      { name: 'x', type: '2', link: outside },
    ]);
    const stats = await unpackLayer(Readable.from([tar]), 'none', target);
    expect(stats.devices).toBe(3);
    const f = fs.lstatSync(path.join(target, 'd/f'));
    expect(f.isFIFO()).toBe(true);
    expect(fs.lstatSync(path.join(target, 'd/l')).ino).toBe(f.ino);
    expect(fs.readFileSync(path.join(target, 'g'), 'utf8')).toBe('file now');
    expect(fs.lstatSync(path.join(target, 'x')).isSymbolicLink()).toBe(true);
    expect(fs.readdirSync(outside)).toEqual([]);
  });
});

describe('cleanEntryPath', () => {
  test.each([
    ['usr/bin/env', 'usr/bin/env'],
    ['usr/share/doc/', 'usr/share/doc'],
    ['./etc/hosts', 'etc/hosts'],
    ['etc//hosts', 'etc/hosts'],
    ['etc/./hosts', 'etc/hosts'],
    ['root/.bashrc', 'root/.bashrc'],
    ['.profile', '.profile'],
    ['...', '...'],
    ['a/..b/c', 'a/..b/c'],
    ['.', ''],
    ['./', ''],
    ['', ''],
  ])('%j is %j', (raw, clean) => {
    expect(cleanEntryPath(raw)).toBe(clean);
  });

  test.each(['/etc/x', '../x', 'a/../../x', 'a/..', '..', './..', 'a/b/../', 'a\0b'])(
    '%j is refused',
    (raw) => {
      expect(() => cleanEntryPath(raw)).toThrow(UnsafeEntryError);
    },
  );
});

describe('names longer than the file system takes', () => {
  test('cleanEntryPath counts bytes per name: 255 pass, 256 are refused', () => {
    expect(cleanEntryPath(`etc/${'a'.repeat(255)}`)).toBe(`etc/${'a'.repeat(255)}`);
    expect(cleanEntryPath(`${'é'.repeat(127)}/x`)).toBe(`${'é'.repeat(127)}/x`);
    expect(() => cleanEntryPath(`etc/${'a'.repeat(256)}`)).toThrow(
      'a name in its path is 256 bytes long; the limit is 255 bytes per name',
    );
    expect(() => cleanEntryPath(`${'€'.repeat(86)}/x`)).toThrow('258 bytes long');
  });

  test.each([
    ['file name', `etc/${'a'.repeat(300)}`],
    ['directory name', `etc/${'b'.repeat(300)}/f`],
  ])(
    'a tar with a 300-byte %s is refused on one line naming the entry, shortened',
    async (_, p) => {
      const dst = mkdir('long');
      const tar = tarOf([
        { path: 'etc/', type: 'dir' },
        { path: p, body: 'x\n' },
      ]);
      const e = (await unpackLayer(Readable.from([tar]), 'none', dst).catch(
        (err: unknown) => err,
      )) as Error;
      expect(e).toBeInstanceOf(UnsafeEntryError);
      expect(e.message).toContain(`refusing layer entry "etc/${p[4]!.repeat(36)}…`);
      expect(e.message).toContain('is 300 bytes long; the limit is 255 bytes per name');
      expect(e.message).not.toContain(dst);
      expect(e.message.length).toBeLessThan(200);
    },
  );
});
