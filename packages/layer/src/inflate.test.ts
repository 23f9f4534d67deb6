import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { inflate, workerScript } from './inflate';

const MiB = 1 << 20;
/** The worker's ring holds 16 slots of 1 MiB. */
const RING = 16 * MiB;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-inflate-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Block the main thread, as a consumer busy with synchronous filesystem calls does. */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function inflateSlowly(file: string, compression: 'zstd' | 'gzip'): Promise<string> {
  const h = createHash('sha256');
  let first = true;
  await inflate(file, compression, (chunk) => {
    if (first) {
      // While the first chunk is "applied", the worker fills the ring and the decompressor
      // writes the short tail into the pipe and exits.
      first = false;
      block(400);
    }
    h.update(chunk);
  });
  return h.digest('hex');
}

// Regression: when the ring was full at the end of a stream, the decompressor exited with its
// last bytes in the pipe; Node resumes a child's paused stdout on exit, and a chunk that arrived
// then replaced the one still waiting for a free slot. A first build on a freshly unpacked
// template failed with "tar: entry N: header checksum mismatch" near the end of the layer.
describe('inflate with a slow consumer and a stream just longer than the ring', () => {
  // Tails that fit in a pipe, so the decompressor can exit while the ring is still full.
  const tails = [8_000, 24_000, 40_000, 56_000];

  test.each(['zstd', 'gzip'] as const)('%s: every byte arrives, in order', async (compression) => {
    for (const tail of tails) {
      const data = randomBytes(RING + tail);
      const raw = path.join(dir, `data-${tail}`);
      fs.writeFileSync(raw, data);
      const packed = `${raw}.${compression}`;
      if (compression === 'zstd') execFileSync('zstd', ['-q', '-f', '-3', raw, '-o', packed]);
      else
        fs.writeFileSync(packed, execFileSync('gzip', ['-c', '-1', raw], { maxBuffer: 64 * MiB }));
      const want = createHash('sha256').update(data).digest('hex');
      for (let i = 0; i < 3; i++) {
        expect({ tail, i, got: await inflateSlowly(packed, compression) }).toEqual({
          tail,
          i,
          got: want,
        });
      }
    }
  });
});

describe('the worker script', () => {
  const pkg = path.resolve(__dirname, '..');

  it('is the compiled sibling in dist/, and the same file when this module runs from src/', () => {
    const fromDist = workerScript(path.join(pkg, 'dist', 'inflate.js'));
    expect(fromDist).toBe(path.join(pkg, 'dist', 'inflate-worker.js'));
    expect(workerScript(path.join(pkg, 'src', 'inflate.ts'))).toBe(fromDist);
    // Here, under ts-jest, this module is the TypeScript source.
    expect(workerScript()).toBe(fromDist);
    expect(fs.existsSync(fromDist)).toBe(true);
  });

  test.each(['none', 'gzip'] as const)(
    'runs from src/: a %s stream forwarded in chunks arrives whole, with both digests',
    async (compression) => {
      const data = randomBytes(3 * MiB + 5);
      const packed = compression === 'gzip' ? gzipSync(data, { level: 1 }) : data;
      const chunks = Array.from({ length: Math.ceil(packed.length / 100_000) }, (_, i) =>
        packed.subarray(i * 100_000, (i + 1) * 100_000),
      );
      const got: Buffer[] = [];
      const r = await inflate(Readable.from(chunks), compression, (c) => got.push(Buffer.from(c)));
      expect(Buffer.concat(got).equals(data)).toBe(true);
      expect(r).toEqual({
        size: data.length,
        diffId: `sha256:${createHash('sha256').update(data).digest('hex')}`,
        blobDigest: `sha256:${createHash('sha256').update(packed).digest('hex')}`,
      });
    },
  );

  it('runs from dist/, as the built command loads it', () => {
    const data = randomBytes(2 * MiB + 3);
    const raw = path.join(dir, 'from-dist');
    fs.writeFileSync(raw, data);
    execFileSync('zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]);
    const script = `
      const { createHash } = require('node:crypto');
      const { inflate } = require(${JSON.stringify(path.join(pkg, 'dist', 'inflate.js'))});
      const h = createHash('sha256');
      inflate(process.argv[1], 'zstd', (c) => h.update(c)).then((r) =>
        process.stdout.write(JSON.stringify({ ...r, hashed: h.digest('hex') })),
      );`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['-e', script, `${raw}.zst`], { encoding: 'utf8' }),
    );
    const want = createHash('sha256').update(data).digest('hex');
    expect(out).toEqual({
      size: data.length,
      diffId: `sha256:${want}`,
      hashed: want,
      blobDigest: `sha256:${createHash('sha256')
        .update(fs.readFileSync(`${raw}.zst`))
        .digest('hex')}`,
    });
  });
});
