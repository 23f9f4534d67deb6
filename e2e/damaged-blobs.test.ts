/**
 * A stored blob damaged on disk (a flipped byte, a file cut short): writing it again repairs it,
 * and no command that meets it reports success over it or crashes on it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  blobPath,
  cleanupTmp,
  isOneLineError,
  makeTinyRootfs,
  manifestOf,
  minbaseRootfs,
  show,
  strata,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

jest.setTimeout(SLOW);

interface BuildResult {
  digest: string;
  cacheHits: number;
  stepsRun: number;
}

const work = tmpDir('strata-damaged-');
const store = path.join(work, 'store');
const ctx = path.join(work, 'ctx');

const build = (...args: string[]) =>
  strataJson<BuildResult>(['build', '-q', '-t', 'cb:1', ...args, ctx], { store });

function flipMiddleByte(p: string): void {
  const buf = fs.readFileSync(p);
  const i = buf.length >> 1;
  buf[i] = buf[i]! ^ 0xff;
  fs.writeFileSync(p, buf);
}

const lastLayer = (ref: string) => manifestOf(store, ref).manifest.layers.at(-1)!;

let built: BuildResult;

beforeAll(async () => {
  const fx = await minbaseRootfs();
  await strataOk(['template', 'create', fx.rootfs, '-t', 'base:1', '--name', 'base'], { store });
  fs.mkdirSync(ctx, { recursive: true });
  fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:1\nRUN echo 1 > /a\nRUN echo 2 > /b\n');
  built = await build();
});

afterAll(() => cleanupTmp());

describe('a damaged layer blob of a built image', () => {
  test('build --no-cache writes the layer again over the damaged copy', async () => {
    const p = blobPath(store, lastLayer('cb:1').digest);
    const good = fs.readFileSync(p);
    flipMiddleByte(p);
    expect((await strata(['fsck'], { store })).code).toBe(1);
    const again = await build('--no-cache');
    expect(again).toMatchObject({ digest: built.digest, stepsRun: 2, cacheHits: 0 });
    expect(fs.readFileSync(p).equals(good)).toBe(true);
    const r = await strata(['fsck'], { store });
    expect([r.code, r.stderr]).toEqual([0, '']);
  });

  test('a cached build whose layer blob has the wrong size runs the step again', async () => {
    const p = blobPath(store, lastLayer('cb:1').digest);
    const good = fs.readFileSync(p);
    fs.truncateSync(p, good.length >> 1);
    const again = await build();
    expect(again).toMatchObject({ digest: built.digest, stepsRun: 1, cacheHits: 1 });
    expect(fs.readFileSync(p).equals(good)).toBe(true);
    const r = await strata(['fsck'], { store });
    expect(r.code).toBe(0);
    expect(show(r)).not.toContain('corrupt');
  });
});

describe('flatten of an image with a damaged layer blob', () => {
  test.each(['zstd', 'gzip'])(
    'a %s layer: every run fails on one line naming the whole digest, with the fsck hint',
    async (compression) => {
      const tag = `tiny-${compression}:1`;
      const rootfs = makeTinyRootfs(tmpDir('strata-damaged-tiny-'), compression);
      await strataOk(
        ['template', 'create', rootfs, '-t', tag, '--name', 'tiny', '--compression', compression],
        { store },
      );
      const { digest } = lastLayer(tag);
      flipMiddleByte(blobPath(store, digest));
      const out = tmpDir('strata-damaged-out-');
      // The decompressor and the blob's hash fail close together on a small blob: run it
      // several times, so that either order is met.
      for (let i = 0; i < 6; i++) {
        const r = await strata(['flatten', tag, '--rootfs', path.join(out, 'r.tar')], { store });
        expect(r.code).toBe(1);
        expect(isOneLineError(r.stderr)).toBe(true);
        expect(r.stderr).toContain(`blob ${digest}: digest mismatch`);
        expect(r.stderr).toContain('strata fsck');
      }
      const r = await strata(['flatten', tag, '--dir', path.join(out, 'd')], { store });
      expect([r.code, isOneLineError(r.stderr)]).toEqual([1, true]);
      expect(r.stderr).toContain(`blob ${digest}: digest mismatch`);
      // Nothing of the layers below it is left in the folder the flatten made.
      expect(fs.readdirSync(out)).toEqual([]);
    },
  );
});
