/**
 * A full disk. The store sits on a small tmpfs whose free space is set just short of what a
 * command needs, and the command runs out part way: a pull from a real docker-registry on
 * 127.0.0.1, a build step that writes a big file, a build whose layer does not fit in the store,
 * and a template create. The same for a snapshot directory on a filesystem of its own, and for
 * flatten's --tmp-dir and output. Each must fail with one line that names the path and says the
 * disk is full, leave the store fsck-clean with every earlier tag as it was, and `gc` must take
 * back what the failed command left (the store's files and its filesystem's use as before).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  SLOW,
  cleanupTmp,
  minbaseRootfs,
  readIndex,
  show,
  strata,
  strataLinesAreOneError,
  strataOk,
  tmpDir,
} from '../helpers';
import { baseArchive } from '../fixtures/build/harness';
import { Registry, startRegistry } from '../registry-fixtures';
import {
  MiB,
  fillUp,
  filesWithSizes,
  leaveFree,
  mountTmpfs,
  unmount,
  usedBytes,
} from '../support/full-disk';

jest.setTimeout(SLOW);

let reg: Registry;
let work: string;
let archive: string;
const mounts: string[] = [];

beforeAll(async () => {
  work = tmpDir('strata-full-disk-');
  archive = await baseArchive();
  reg = await startRegistry();
  const store = path.join(work, 'origin');
  await strataOk(['load', archive, '-t', 'base:v1'], { store });
  await strataOk(['push', 'base:v1', `${reg.host}/base:v1`], { store });
  fs.rmSync(store, { recursive: true, force: true });
});

afterEach(async () => {
  for (const m of mounts.splice(0).reverse()) await unmount(m);
});

afterAll(async () => {
  for (const m of mounts.splice(0).reverse()) await unmount(m);
  await reg?.stop();
  cleanupTmp();
});

/** A fresh store in a tmpfs of `bytes` of its own (mounted on the store's parent directory). */
async function tmpfsStore(name: string, bytes: number, list = mounts): Promise<string> {
  const root = await mountTmpfs(path.join(work, name), bytes);
  list.push(root);
  return path.join(root, 'store');
}

/** The tags of a store with their digests. */
function tags(store: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of readIndex(store).manifests) {
    const ref = m.annotations?.['org.opencontainers.image.ref.name'];
    if (ref !== undefined) out[ref] = m.digest;
  }
  return out;
}

interface Before {
  tags: Record<string, string>;
  files: string[];
  used: number;
}

function before(store: string, fsRoot = path.dirname(store)): Before {
  return { tags: tags(store), files: filesWithSizes(store), used: usedBytes(fsRoot) };
}

/** One `strata:` line, saying the disk is full and naming a path under `under`. */
function expectDiskFull(r: { code: number; stdout: string; stderr: string }, under: string): void {
  if (r.code === 0) throw new Error(`expected a full disk: ${show(r)}`);
  expect(strataLinesAreOneError(r.stderr)).toBe(true);
  const line = r.stderr.split('\n').find((l) => l.startsWith('strata:')) ?? '';
  expect(line).toMatch(/no space left on device: \//);
  const named = /no space left on device: (\/\S+)/.exec(line)?.[1] ?? '';
  expect(named === under || named.startsWith(`${under}/`)).toBe(true);
}

/**
 * fsck clean, the earlier tags as they were, and gc brings the store back to `was`; `filler`, a
 * file that keeps the disk full while gc runs, goes before the space is counted.
 */
async function expectRecovered(
  store: string,
  was: Before,
  fsRoot = path.dirname(store),
  filler?: string,
): Promise<void> {
  expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
  expect(tags(store)).toEqual(was.tags);
  await strataOk(['gc'], { store });
  expect(filesWithSizes(store)).toEqual(was.files);
  if (filler !== undefined) fs.rmSync(filler);
  // Directories the command made may stay; they cost a page or so each on tmpfs.
  expect(usedBytes(fsRoot)).toBeLessThanOrEqual(was.used + 64 * 1024);
  expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
}

function context(name: string, stratafile: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Stratafile'), stratafile);
  return dir;
}

function tinyTree(name: string): string {
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'etc', 'marker'), `${name}\n`);
  return dir;
}

/** A store on a tmpfs holding `earlier:1` (a tiny template), with `free` bytes left. */
async function storeWithEarlierTag(name: string, free: number): Promise<string> {
  const store = await tmpfsStore(name, 512 * MiB);
  await strataOk(
    ['template', 'create', tinyTree(`${name}-tree`), '-t', 'earlier:1', '--name', 'earlier'],
    { store },
  );
  await leaveFree(path.dirname(store), free);
  return store;
}

test('a pull that fills the store fails on one line and keeps nothing; gc runs on the full disk', async () => {
  const store = await storeWithEarlierTag('pull', 20 * MiB);
  const was = before(store);
  const r = await strata(['pull', `${reg.host}/base:v1`, '-t', 'base:v1'], { store });
  expectDiskFull(r, store);
  expect(r.stderr).toMatch(/no space left on device: \S+ \(\d+ bytes needed\)/);
  // What arrived of the blob is not kept for a resume: it is what fills the disk.
  expect(filesWithSizes(store).filter((f) => f.startsWith('.strata/ingest/'))).toEqual([]);
  // And with the disk full to the last byte, gc still runs (its lock has no room for a holder).
  await expectRecovered(store, was, path.dirname(store), await fillUp(path.dirname(store)));
});

test('a template create that fills the store fails on one line, and gc takes back the rest', async () => {
  const { rootfs } = await minbaseRootfs();
  const store = await storeWithEarlierTag('create', 16 * MiB);
  const was = before(store);
  const r = await strata(['template', 'create', rootfs, '-t', 'big:1', '--name', 'big'], {
    store,
  });
  expectDiskFull(r, store);
  await expectRecovered(store, was);
});

describe('a build on a full store', () => {
  let store: string;
  let was: Before;

  beforeAll(async () => {
    // Not in `mounts`, which afterEach empties: this one lives for the whole block.
    store = await tmpfsStore('build', 1024 * MiB, []);
    await strataOk(['load', archive, '-t', 'base:v1'], { store });
    // An earlier build: a tag to keep, and the base's snapshot already unpacked.
    await strataOk(
      [
        'build',
        '-q',
        '-t',
        'earlier:1',
        context('earlier', 'FROM base:v1\nRUN echo earlier > /earlier\n'),
      ],
      { store },
    );
    await leaveFree(path.dirname(store), 64 * MiB);
    was = before(store);
  });
  afterAll(async () => {
    if (store !== undefined) await unmount(path.dirname(store));
  });

  test('a RUN step that fills it fails on one line naming the store', async () => {
    const ctx = context('fill', 'FROM base:v1\nRUN head -c 200M /dev/zero > /big\n');
    const r = await strata(['build', '-q', '-t', 'fill:1', ctx], { store });
    expectDiskFull(r, store);
    await expectRecovered(store, was);
  });

  test('a layer that does not fit in the store fails on one line naming the store', async () => {
    // 40 MiB of random bytes fit in the step's upper dir, but not once more as the packed layer.
    const ctx = context('pack', 'FROM base:v1\nRUN head -c 40M /dev/urandom > /big\n');
    const r = await strata(['build', '-q', '-t', 'pack:1', ctx], { store });
    expectDiskFull(r, store);
    await expectRecovered(store, was);
  });
});

test('a snapshot directory of its own that fills up fails the build on one line', async () => {
  const store = path.join(work, 'snapstore');
  await strataOk(['load', archive, '-t', 'base:v1'], { store });
  const snaps = await mountTmpfs(path.join(store, '.strata', 'snapshots'), 48 * MiB);
  mounts.push(snaps);
  const was = before(store, snaps);
  const ctx = context('snap', 'FROM base:v1\nRUN echo snap > /snap\n');
  const r = await strata(['build', '-q', '-t', 'snap:1', ctx], { store });
  expectDiskFull(r, snaps);
  await expectRecovered(store, was, snaps);
});

describe('flatten', () => {
  let store: string;
  beforeAll(async () => {
    store = path.join(work, 'flatstore');
    await strataOk(['load', archive, '-t', 'base:v1'], { store });
  });

  test('a --tmp-dir that fills up fails on one line and leaves it empty', async () => {
    const tmp = await mountTmpfs(path.join(work, 'flat-tmp'), 48 * MiB);
    mounts.push(tmp);
    const out = path.join(work, 'flat-out');
    fs.mkdirSync(out, { recursive: true });
    const r = await strata(
      ['flatten', 'base:v1', '--rootfs', path.join(out, 'rootfs.tar'), '--tmp-dir', tmp],
      { store },
    );
    expectDiskFull(r, tmp);
    expect(fs.readdirSync(tmp)).toEqual([]);
    expect(fs.readdirSync(out)).toEqual([]);
    expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
  });

  test('an output directory that fills up fails on one line and leaves it empty', async () => {
    const out = await mountTmpfs(path.join(work, 'flat-full-out'), 48 * MiB);
    mounts.push(out);
    const tmp = path.join(work, 'flat-tmp-disk');
    fs.mkdirSync(tmp, { recursive: true });
    const r = await strata(
      ['flatten', 'base:v1', '--rootfs', path.join(out, 'rootfs.tar'), '--tmp-dir', tmp],
      { store },
    );
    expectDiskFull(r, out);
    expect(fs.readdirSync(out)).toEqual([]);
    expect(fs.readdirSync(tmp)).toEqual([]);
    expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
  });
});

describe('image', () => {
  let store: string;
  let rootfsBytes: number;
  beforeAll(async () => {
    store = path.join(work, 'imagestore');
    await strataOk(['load', archive, '-t', 'base:v1'], { store });
    const tar = path.join(work, 'image-rootfs.tar');
    await strataOk(['flatten', 'base:v1', '--rootfs', tar], { store });
    rootfsBytes = fs.statSync(tar).size;
    fs.rmSync(tar);
  });

  test('an output directory too small for the flattened rootfs fails on one line and stays empty', async () => {
    const out = await mountTmpfs(path.join(work, 'image-small-out'), 16 * MiB);
    mounts.push(out);
    const r = await strata(['image', 'base:v1', '--ext4', path.join(out, 'root.ext4')], {
      store,
    });
    expectDiskFull(r, out);
    expect(fs.readdirSync(out)).toEqual([]);
    expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
  });

  test('mke2fs running out of room fails on one line naming the disk, for ext4 and a .wks disk', async () => {
    // The flattened rootfs fits; the filesystem made from it beside it does not.
    const out = await mountTmpfs(path.join(work, 'image-mke2fs-out'), Math.ceil(rootfsBytes * 1.4));
    mounts.push(out);
    const ext4 = await strata(['image', 'base:v1', '--ext4', path.join(out, 'root.ext4')], {
      store,
    });
    expectDiskFull(ext4, out);
    expect(fs.readdirSync(out)).toEqual([]);
    const wks = path.join(work, 'image-disk.wks');
    fs.writeFileSync(wks, 'part / --source rootfs --fstype=ext4 --label root --align 1024\n');
    const disk = await strata(
      ['image', 'base:v1', '--wks', wks, '-o', path.join(out, 'disk.img')],
      {
        store,
      },
    );
    expectDiskFull(disk, out);
    expect(fs.readdirSync(out)).toEqual([]);
    expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
  });
});
