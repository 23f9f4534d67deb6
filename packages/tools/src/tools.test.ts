import { execSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { ToolFailedError } from '@strata/oci';
import { gunzipFile, igzipPath } from './gzip-file';
import { makeNodes } from './nodes';
import { applyXattrs, formatSetfattrDump, parseGetfattrDump, readTreeXattrs } from './xattr';
import { zstdCompress, zstdDecompress } from './zstd';

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function children(): string[] {
  return execSync(`ps -o pid=,stat=,comm= --ppid ${process.pid}`, { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes('zstd'));
}

describe('zstd', () => {
  test('round-trips and is deterministic', async () => {
    const data = Buffer.concat([crypto.randomBytes(1 << 20), Buffer.alloc(3 << 20, 'a')]);
    const enc = async (): Promise<Buffer> => {
      const z = zstdCompress();
      z.stdin.end(data);
      const out = await collect(z.stdout);
      await z.done;
      return out;
    };
    const a = await enc();
    const b = await enc();
    expect(a.equals(b)).toBe(true);
    expect(a.length).toBeLessThan(data.length);
    const d = zstdDecompress();
    d.stdin.end(a);
    const back = await collect(d.stdout);
    await d.done;
    expect(back.equals(data)).toBe(true);
  });

  test('garbage input fails with ToolFailedError carrying stderr', async () => {
    const d = zstdDecompress();
    d.stdin.end(Buffer.from('not zstd at all'));
    await collect(d.stdout);
    const err = await d.done.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolFailedError);
    expect((err as Error).message).toMatch(/zstd: exited with code 1: .+/);
  });

  test('destroying the output stream kills the child, leaving no zombie', async () => {
    const z = zstdCompress();
    z.stdin.write(crypto.randomBytes(1 << 20));
    z.stdout.destroy();
    await expect(z.done).rejects.toBeInstanceOf(ToolFailedError);
    await new Promise((r) => setTimeout(r, 50));
    expect(children()).toEqual([]);
  });
});

describe('igzip', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-igzip-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('is found on PATH, and not where it is not', () => {
    expect(igzipPath()).toMatch(/\/igzip$/); // setup.sh installs isal
    expect(igzipPath({ PATH: dir })).toBeUndefined();
  });

  test('decompresses concatenated members and refuses a bad CRC or a truncated file', async () => {
    const a = crypto.randomBytes(300_000);
    const b = Buffer.alloc(2 << 20, 'b');
    const good = path.join(dir, 'good');
    fs.writeFileSync(good, Buffer.concat([zlib.gzipSync(a), zlib.gzipSync(b)]));
    const p = gunzipFile(good);
    expect(p).toBeDefined();
    const out = await collect(p!.stdout);
    await p!.done;
    expect(out.equals(Buffer.concat([a, b]))).toBe(true);

    const gz = zlib.gzipSync(a);
    const badCrc = Buffer.from(gz);
    badCrc[badCrc.length - 6] = (badCrc[badCrc.length - 6] as number) ^ 0xff;
    const truncated = gz.subarray(0, gz.length >> 1);
    for (const [name, bytes] of [
      ['crc', badCrc],
      ['truncated', truncated],
    ] as const) {
      const f = path.join(dir, name);
      fs.writeFileSync(f, bytes);
      const q = gunzipFile(f)!;
      await collect(q.stdout).catch(() => undefined);
      await expect(q.done).rejects.toBeInstanceOf(ToolFailedError);
    }
  });
});

describe('xattrs', () => {
  test('parses getfattr escapes and round-trips through setfattr', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-xattr-'));
    try {
      const names = ['plain', 'with space', 'new\nline', 'back\\slash', 'ünï'];
      for (const n of names) fs.writeFileSync(path.join(root, n), '');
      fs.mkdirSync(path.join(root, 'd'));
      fs.symlinkSync('/etc/passwd', path.join(root, 'link'));
      const want = new Map<string, Record<string, Buffer>>();
      names.forEach((n, i) =>
        want.set(n, { 'user.v': Buffer.from([i, 0, 255, 10]), 'user.empty': Buffer.alloc(0) }),
      );
      want.set('d', { 'trusted.x': Buffer.from('y') });
      want.set('', { 'user.root': Buffer.from('r') });
      await applyXattrs(root, want);
      const got = await readTreeXattrs(root);
      expect(got.has('link')).toBe(false);
      expect(new Map([...got].sort())).toEqual(new Map([...want].sort()));
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test('format/parse are inverse', () => {
    const m = new Map([['a b/\u0001', { 'user.x': Buffer.from([1, 2, 3]) }]]);
    expect(parseGetfattrDump(formatSetfattrDump(m))).toEqual(m);
  });

  test('a tool that cannot start (bad cwd) becomes ToolFailedError', async () => {
    const err = await readTreeXattrs('/nonexistent-dir-for-strata').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolFailedError);
  });
});

describe('makeNodes', () => {
  test('makes FIFOs in one batch; a clash fails with ToolFailedError', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-nodes-'));
    try {
      const nodes = ['a', 'b c', '-d'].map((n) => ({
        path: path.join(dir, n),
        kind: 'fifo' as const,
        major: 0,
        minor: 0,
      }));
      await makeNodes(nodes);
      for (const n of nodes) expect(fs.lstatSync(n.path).isFIFO()).toBe(true);
      await expect(makeNodes(nodes.slice(0, 1))).rejects.toBeInstanceOf(ToolFailedError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
