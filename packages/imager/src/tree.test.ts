import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Digest, sha256, UnsafeEntryError } from '@strata/oci';
import { FileTree, readTrees, TarSource } from './tree';
import { compareSizes, compareTrees, comparePackages } from './diff';
import { TarSpec, tarOf } from '@strata/layer/testing';

/** A layer as the tree reads it: its tar, streamed in small chunks so entries straddle them. */
function layer(entries: TarSpec[]): { diffId: Digest; tar: TarSource & { opened: number } } {
  const tar = tarOf(entries);
  const src = {
    opened: 0,
    openTar: async () => {
      src.opened++;
      const chunks: Buffer[] = [];
      for (let i = 0; i < tar.length; i += 700) chunks.push(tar.subarray(i, i + 700));
      return Readable.from(chunks);
    },
  };
  return { diffId: sha256(tar), tar: src };
}

async function treeOf(...layers: TarSpec[][]): Promise<FileTree> {
  const t = new FileTree();
  for (const l of layers) await t.apply(layer(l).tar);
  return t;
}

const hex = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const paths = (t: FileTree) => [...t.paths()].sort();

test('files carry their size, mode, owner and the sha256 of their data; symlinks their target', async () => {
  const t = await treeOf([
    { path: './' },
    { path: 'etc/' },
    { path: 'etc/motd', body: 'hello\n', mode: 0o600, uid: 1000, gid: 100 },
    { path: 'etc/empty' },
    { path: 'etc/link', link: '../usr/motd' },
    { path: 'dev/null', type: 'char', dev: [1, 3] },
  ]);
  expect(t.get('etc/motd')).toEqual({
    type: 'file',
    size: 6,
    mode: 0o600,
    uid: 1000,
    gid: 100,
    link: '',
    digest: hex('hello\n'),
  });
  expect(t.get('etc/empty')?.digest).toBe(hex(''));
  expect(t.get('etc/link')).toMatchObject({ type: 'symlink', link: '../usr/motd', size: 0 });
  expect(t.get('dev/null')).toMatchObject({ type: 'char', device: '1:3' });
  // dev/ had no entry of its own: it is implied, as a flatten makes it.
  expect(t.get('dev')).toMatchObject({ type: 'dir', mode: 0o755 });
  expect(paths(t)).toEqual(['dev', 'dev/null', 'etc', 'etc/empty', 'etc/link', 'etc/motd']);
});

test('a whiteout removes a path and its subtree from the layers below, not from its own layer', async () => {
  const t = await treeOf(
    [{ path: 'a/' }, { path: 'a/x', body: '1' }, { path: 'a/d/' }, { path: 'a/d/y', body: '2' }],
    [{ path: 'a/.wh.d' }, { path: 'a/new', body: '3' }, { path: 'a/.wh.new' }],
  );
  expect(paths(t)).toEqual(['a', 'a/new', 'a/x']);
});

test('an opaque directory hides what lower layers put in it, and keeps what its own layer does', async () => {
  const t = await treeOf(
    [
      { path: 'o/' },
      { path: 'o/old', body: 'x' },
      { path: 'o/sub/' },
      { path: 'o/sub/deep', body: 'y' },
    ],
    // The marker after the layer's own entries still hides only the lower ones, sub/deep included.
    [
      { path: 'o/' },
      { path: 'o/sub/' },
      { path: 'o/sub/mine', body: 'z' },
      { path: 'o/.wh..wh..opq' },
    ],
  );
  expect(paths(t)).toEqual(['o', 'o/sub', 'o/sub/mine']);
});

test('a non-directory replaces a directory with its whole subtree; a directory over one keeps it', async () => {
  const t = await treeOf(
    [{ path: 'd/' }, { path: 'd/f', body: 'x' }, { path: 'k/' }, { path: 'k/f', body: 'y' }],
    [
      { path: 'd', link: 'elsewhere' },
      { path: 'k/', mode: 0o700 },
    ],
  );
  expect(paths(t)).toEqual(['d', 'k', 'k/f']);
  expect(t.get('k')?.mode).toBe(0o700);
});

test('a hardlink reads as the file it links to, across layers, and counts once in the sizes', async () => {
  const t = await treeOf(
    [{ path: 'bin/' }, { path: 'bin/a', body: 'data', mode: 0o755 }],
    [{ path: 'bin/b', type: 'link', link: 'bin/a' }],
  );
  expect(t.get('bin/b')).toMatchObject({
    type: 'file',
    size: 4,
    digest: hex('data'),
    hardlink: true,
  });
  expect(compareSizes(new FileTree(), t, 1).total).toEqual({ path: '', old: 0, new: 4, delta: 4 });
  await expect(treeOf([{ path: 'x', type: 'link', link: 'nothing' }])).rejects.toThrow(
    UnsafeEntryError,
  );
});

test('entries under a symlink and hostile paths are refused', async () => {
  await expect(
    treeOf([
      { path: 'l', link: '/etc' },
      { path: 'l/passwd', body: 'x' },
    ]),
  ).rejects.toThrow(/parent "l" is a symlink/);
  await expect(treeOf([{ path: '../escape', body: 'x' }])).rejects.toThrow(UnsafeEntryError);
  await expect(treeOf([{ path: 'a/.wh..wh.x' }])).rejects.toThrow(UnsafeEntryError);
});

test('a truncated layer fails the read', async () => {
  const tar = tarOf([{ path: 'f', body: 'x'.repeat(2000) }]).subarray(0, 1024);
  const t = new FileTree();
  await expect(t.apply({ openTar: async () => Readable.from([tar]) })).rejects.toThrow(/truncated/);
});

test('compareTrees lists added, removed and changed paths with what changed', async () => {
  const base: TarSpec[] = [
    { path: 'etc/' },
    { path: 'etc/same', body: 's' },
    { path: 'etc/content', body: 'old' },
    { path: 'etc/mode', body: 'm' },
    { path: 'etc/owner', body: 'o' },
    { path: 'etc/link', link: 'a' },
    { path: 'etc/gone', body: 'g' },
    { path: 'etc/kind', body: 'k' },
  ];
  const a = await treeOf(base);
  const b = await treeOf(base, [
    { path: 'etc/content', body: 'new' },
    { path: 'etc/mode', body: 'm', mode: 0o755 },
    { path: 'etc/owner', body: 'o', uid: 7, gid: 8 },
    { path: 'etc/link', link: 'b' },
    { path: 'etc/.wh.gone' },
    { path: 'etc/kind/' },
    { path: 'etc/added', body: 'a' },
    // Rewritten with the same bytes and metadata: no change.
    { path: 'etc/same', body: 's' },
  ]);
  const d = compareTrees(a, b);
  expect(d.added.map((f) => f.path)).toEqual(['etc/added']);
  expect(d.removed).toEqual([
    { path: 'etc/gone', type: 'file', size: 1, mode: 0o644, uid: 0, gid: 0, digest: hex('g') },
  ]);
  expect(d.changed.map((c) => [c.path, c.changes])).toEqual([
    ['etc/content', ['content']],
    ['etc/kind', ['type', 'content', 'mode']],
    ['etc/link', ['link']],
    ['etc/mode', ['mode']],
    ['etc/owner', ['owner']],
  ]);
  expect(compareTrees(b, b)).toEqual({ added: [], removed: [], changed: [] });
});

test('readTrees reads the layers both stacks share once, and each stack sees only its own', async () => {
  const shared = layer([{ path: 'usr/' }, { path: 'usr/lib/' }, { path: 'usr/lib/x', body: 'xx' }]);
  const onlyA = layer([{ path: 'usr/lib/.wh.x' }]);
  const onlyB = layer([{ path: 'usr/share/' }, { path: 'usr/share/y', body: 'yyy' }]);
  const [a, b] = await readTrees([shared, onlyA], [shared, onlyB]);
  expect(shared.tar.opened).toBe(1);
  expect(paths(a)).toEqual(['usr', 'usr/lib']);
  expect(paths(b)).toEqual(['usr', 'usr/lib', 'usr/lib/x', 'usr/share', 'usr/share/y']);
  const s = compareSizes(a, b, 2);
  expect(s.total).toEqual({ path: '', old: 0, new: 5, delta: 5 });
  expect(s.dirs).toEqual([
    { path: 'usr', old: 0, new: 5, delta: 5 },
    { path: 'usr/lib', old: 0, new: 2, delta: 2 },
    { path: 'usr/share', old: 0, new: 3, delta: 3 },
  ]);
  expect(compareSizes(a, b, 1).dirs.map((x) => x.path)).toEqual(['usr']);
});

test('comparePackages: added, removed, and upgrades and downgrades by dpkg version order', () => {
  const p = (name: string, version: string, architecture = 'amd64') => ({
    name,
    version,
    architecture,
    source: name,
  });
  const d = comparePackages(
    [p('keep', '1.0'), p('up', '1.9'), p('down', '1:0.5'), p('gone', '2'), p('multi', '1', 'i386')],
    [p('keep', '1.0'), p('up', '1.10'), p('down', '2.0'), p('new', '0.1'), p('multi', '1')],
  );
  expect(d.added.map((x) => `${x.name}:${x.architecture}`)).toEqual(['multi:amd64', 'new:amd64']);
  expect(d.removed.map((x) => `${x.name}:${x.architecture}`)).toEqual(['gone:amd64', 'multi:i386']);
  expect(d.changed).toEqual([
    { name: 'down', architecture: 'amd64', old: '1:0.5', new: '2.0', direction: 'downgrade' },
    { name: 'up', architecture: 'amd64', old: '1.9', new: '1.10', direction: 'upgrade' },
  ]);
});

test('the shared layers are hashed only where a same-size file changed above them', async () => {
  const shared = layer([
    { path: 'etc/' },
    { path: 'etc/same-size', body: 'aaaa' },
    { path: 'etc/rewritten', body: 'keep' },
    { path: 'etc/grown', body: 'x' },
    { path: 'etc/linked', type: 'link', link: 'etc/same-size' },
  ]);
  const upper = layer([
    { path: 'etc/same-size', body: 'bbbb' },
    { path: 'etc/rewritten', body: 'keep' },
    { path: 'etc/grown', body: 'longer' },
  ]);
  const [a, b] = await readTrees([shared], [shared, upper]);
  expect(shared.tar.opened).toBe(2); // once for the trees, once for the digests they need
  expect(a.get('etc/same-size')?.digest).toBe(hex('aaaa'));
  expect(a.get('etc/rewritten')?.digest).toBe(hex('keep'));
  expect(a.get('etc/linked')?.digest).toBeUndefined(); // one node in both trees: never needed
  const d = compareTrees(a, b);
  expect(d.changed.map((c) => [c.path, c.changes])).toEqual([
    ['etc/grown', ['content']],
    ['etc/same-size', ['content']],
  ]);

  const only = layer([{ path: 'etc/' }, { path: 'etc/f', body: 'data' }]);
  const [c, e] = await readTrees([only], [only, layer([{ path: 'opt/' }])]);
  expect(only.tar.opened).toBe(1);
  expect(compareTrees(c, e).added.map((f) => f.path)).toEqual(['opt']);
});
