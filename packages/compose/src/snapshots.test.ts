import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Digest, chainId, digestHex } from '@strata/oci';
import { createLayer, packTree } from '@strata/layer';
import { Store } from '@strata/store';
import { withTempStore } from '@strata/store/testing';
import { MERGE_DEPTH, Snapshots, StackLayer, linkName } from './snapshots';

let store: Store;
withTempStore('snap', (t) => ({ store } = t));

/**
 * A stack of `n` layers, the first a whole tree and each next one adding `/etc/step-<i>`, with
 * a snapshot committed for every chain as a build commits them (full, then diffs).
 */
async function stack(n: number): Promise<{ layers: StackLayer[]; chains: Digest[] }> {
  const snaps = new Snapshots(store);
  const layers: StackLayer[] = [];
  const chains: Digest[] = [];
  for (let i = 0; i < n; i++) {
    const tree = await snaps.scratch('test');
    await fsp.mkdir(path.join(tree, 'etc'));
    await fsp.writeFile(path.join(tree, 'etc', `step-${i}`), `${i}\n`);
    const layer = createLayer(packTree({ root: tree, overlay: i > 0, sourceDateEpoch: 0 }), 'gzip');
    const blob = await store.putBlob(layer.blob);
    const { diffId, mediaType } = await layer.result;
    await store.recordDiffId(blob.digest, diffId);
    layers.push({ digest: blob.digest, size: blob.size, mediaType, diffId });
    const chain = chainId(layers.map((l) => l.diffId)) as Digest;
    await snaps.commit(
      chain,
      tree,
      i === 0 ? { kind: 'full' } : { kind: 'diff', parent: chains[i - 1] },
    );
    chains.push(chain);
  }
  return { layers, chains };
}

const snapDir = (s: Snapshots, chain: Digest) => path.join(s.dir, digestHex(chain));

describe('lower dirs', () => {
  test('walk from the chain down to its full snapshot, topmost first', async () => {
    const { chains } = await stack(3);
    const s = new Snapshots(store);
    expect(await s.lowerDirs(chains[2]!)).toEqual([
      path.join(snapDir(s, chains[2]!), 'fs'),
      path.join(snapDir(s, chains[1]!), 'fs'),
      path.join(snapDir(s, chains[0]!), 'fs'),
    ]);
  });

  test('ensure keeps a stack of up to mergeDepth lower dirs as it is', async () => {
    const { layers, chains } = await stack(3);
    const s = new Snapshots(store, { mergeDepth: 3 });
    expect(await s.ensure(chains[2]!, layers)).toHaveLength(3);
    expect(await s.meta(chains[2]!)).toEqual({ kind: 'diff', parent: chains[1] });
  });

  test('ensure merges a deeper stack into one tree, where later walks stop', async () => {
    const { layers, chains } = await stack(4);
    const s = new Snapshots(store, { mergeDepth: 2 });
    const top = chains[3]!;
    const merged = path.join(snapDir(s, top), 'merged');
    expect(await s.ensure(top, layers)).toEqual([merged]);
    expect((await fsp.readdir(path.join(merged, 'etc'))).sort()).toEqual([
      'step-0',
      'step-1',
      'step-2',
      'step-3',
    ]);
    expect(await s.meta(top)).toEqual({ kind: 'diff', parent: chains[2], merged: true });
    // The diff itself stays where a running step may have mounted it.
    expect(await fsp.readdir(path.join(snapDir(s, top), 'fs', 'etc'))).toEqual(['step-3']);
    // A step on top of it stacks on the merged tree; ensuring again changes nothing.
    const tree = await s.scratch('test');
    const next = chainId([...layers.map((l) => l.diffId), chains[0]!]) as Digest;
    await s.commit(next, tree, { kind: 'diff', parent: top });
    expect(await s.lowerDirs(next)).toEqual([path.join(snapDir(s, next), 'fs'), merged]);
    expect(await s.ensure(top, layers)).toEqual([merged]);
  });

  test('a missing link in the chain makes ensure unpack a full snapshot', async () => {
    const { layers, chains } = await stack(3);
    const s = new Snapshots(store);
    await s.remove(chains[1]!);
    expect(await s.lowerDirs(chains[2]!)).toBeUndefined();
    const got = await s.ensure(chains[2]!, layers);
    expect(got).toEqual([path.join(snapDir(s, chains[2]!), 'fs')]);
    expect(await s.meta(chains[2]!)).toEqual({ kind: 'full' });
  });

  test('a snapshot another build committed while this one unpacked stays, as it may be mounted', async () => {
    const { layers, chains } = await stack(1);
    const s = new Snapshots(store);
    const fsDir = path.join(snapDir(s, chains[0]!), 'fs');
    const before = await fsp.stat(fsDir);
    // As if this build looked before the other one committed.
    jest.spyOn(s, 'lowerDirs').mockResolvedValueOnce(undefined);
    expect(await s.ensure(chains[0]!, layers)).toEqual([fsDir]);
    expect((await fsp.stat(fsDir)).ino).toBe(before.ino);
    expect((await s.list()).scratch).toEqual([]);
  });

  test('the default depth keeps the mount option far below a page', () => {
    // About twenty bytes a lower dir through the links, plus the upper and work dirs.
    expect(MERGE_DEPTH * 'l/0123456789ab/merged:'.length).toBeLessThan(2048);
  });
});

describe('commit', () => {
  const tree = async (s: Snapshots, file: string): Promise<string> => {
    const t = await s.scratch('test');
    await fsp.writeFile(path.join(t, file), file);
    return t;
  };

  test('a second commit of a chain leaves the first in place, as a build may have it mounted', async () => {
    const s = new Snapshots(store);
    const chain = chainId([`sha256:${'a'.repeat(64)}` as Digest]) as Digest;
    await s.commit(chain, await tree(s, 'first'), { kind: 'full' });
    const fsDir = path.join(snapDir(s, chain), 'fs');
    const before = await fsp.stat(fsDir);
    const second = await tree(s, 'second');
    // As if the first build committed just after this one looked and found nothing.
    jest.spyOn(s, 'meta').mockResolvedValueOnce(undefined);
    await s.commit(chain, second, { kind: 'full' });
    expect(await fsp.readdir(fsDir)).toEqual(['first']);
    expect((await fsp.stat(fsDir)).ino).toBe(before.ino);
    await expect(fsp.access(second)).rejects.toThrow();
    expect((await s.list()).scratch).toEqual([]);
  });

  test('two commits of one chain at once: one wins whole, the other tree is dropped', async () => {
    const s = new Snapshots(store);
    const chain = chainId([`sha256:${'b'.repeat(64)}` as Digest]) as Digest;
    const trees = [await tree(s, 'one'), await tree(s, 'two')];
    await Promise.all(trees.map((t) => s.commit(chain, t, { kind: 'full' })));
    const got = await fsp.readdir(path.join(snapDir(s, chain), 'fs'));
    expect(['one', 'two']).toContain(got.join());
    expect((await s.list()).scratch).toEqual([]);
  });

  test('a directory a crash left without meta.json is cleared for the commit', async () => {
    const s = new Snapshots(store);
    const chain = chainId([`sha256:${'c'.repeat(64)}` as Digest]) as Digest;
    await fsp.mkdir(path.join(snapDir(s, chain), 'fs'), { recursive: true });
    await fsp.writeFile(path.join(snapDir(s, chain), 'fs', 'junk'), '');
    await s.commit(chain, await tree(s, 'good'), { kind: 'full' });
    expect(await s.meta(chain)).toEqual({ kind: 'full' });
    expect(await fsp.readdir(path.join(snapDir(s, chain), 'fs'))).toEqual(['good']);
  });
});

describe('mountLowers', () => {
  test('gives short links, relative to the snapshots directory, to the same dirs', async () => {
    const { chains } = await stack(3);
    const s = new Snapshots(store);
    const lower = (await s.lowerDirs(chains[2]!))!;
    const m = await s.mountLowers(lower);
    expect(m.cwd).toBe(s.dir);
    expect(m.lower).toEqual(
      chains
        .slice()
        .reverse()
        .map((c) => `l/${linkName(digestHex(c))}/fs`),
    );
    for (const [i, rel] of m.lower.entries())
      expect(await fsp.realpath(path.join(m.cwd, rel))).toBe(await fsp.realpath(lower[i]!));
    // Asking again reuses the links.
    expect(await s.mountLowers(lower)).toEqual(m);
  });

  test('never follows a link name another snapshot holds; takes over a stale one', async () => {
    const { chains } = await stack(2);
    const s = new Snapshots(store);
    const lower = (await s.lowerDirs(chains[1]!))!;
    const [topHex, bottomHex] = [digestHex(chains[1]!), digestHex(chains[0]!)];
    const links = path.join(s.dir, 'l');
    await fsp.mkdir(links, { recursive: true });
    // A clash: the top's link name already points at the bottom snapshot, which exists.
    await fsp.symlink(path.join('..', bottomHex), path.join(links, linkName(topHex)));
    // A stale link: the bottom's name points at a snapshot that is gone.
    await fsp.symlink(path.join('..', 'f'.repeat(64)), path.join(links, linkName(bottomHex)));
    const m = await s.mountLowers(lower);
    expect(m.lower).toEqual([path.join(topHex, 'fs'), `l/${linkName(bottomHex)}/fs`]);
    expect(await fsp.readlink(path.join(links, linkName(bottomHex)))).toBe(`../${bottomHex}`);
  });

  test('leaves dirs outside the snapshots as they are', async () => {
    const s = new Snapshots(store);
    expect((await s.mountLowers(['/some/where/else'])).lower).toEqual(['/some/where/else']);
  });

  test('remove takes the snapshot’s link with it', async () => {
    const { chains } = await stack(1);
    const s = new Snapshots(store);
    await s.mountLowers((await s.lowerDirs(chains[0]!))!);
    const link = path.join(s.dir, 'l', linkName(digestHex(chains[0]!)));
    expect(await fsp.readlink(link)).toBeDefined();
    await s.remove(chains[0]!);
    await expect(fsp.lstat(link)).rejects.toThrow();
  });

  test('the links are not listed as snapshots or scratch', async () => {
    const { chains } = await stack(2);
    const s = new Snapshots(store);
    await s.mountLowers((await s.lowerDirs(chains[1]!))!);
    const { snapshots, scratch } = await s.list();
    expect(snapshots.map((x) => x.chain).sort()).toEqual([...chains].sort());
    expect(scratch).toEqual([]);
  });
});
