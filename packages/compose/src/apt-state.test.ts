import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { AptState, type AptTrust, aptStateDir } from './apt-state';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A Packages index with one stanza per .deb: `name_version_arch.deb` → its content. */
function packages(debs: Record<string, string>): string {
  return Object.entries(debs)
    .map(([file, content]) => {
      const [name, version, arch] = file.replace(/\.deb$/, '').split('_');
      return `Package: ${name}\nVersion: ${version!.replace('%3a', ':')}\nArchitecture: ${arch}\nFilename: pool/main/${file}\nSize: ${content.length}\nSHA256: ${sha(content)}\nDescription: a test package\n`;
    })
    .join('\n');
}

/** An InRelease that gives each index (path → content) its hash. */
function inRelease(indices: Record<string, string>, date = 'Sat, 01 Jan 2000'): string {
  return `Origin: Test\nDate: ${date}\nSHA256:\n${Object.entries(indices)
    .map(([p, c]) => ` ${sha(c)} ${c.length} ${p}`)
    .join('\n')}\n`;
}

const PKGS = 'm_dists_s_main_binary-amd64_Packages';
const REL = 'm_dists_s_InRelease';
const oldPackages = packages({ 'a_1_amd64.deb': 'a' });
const oldRelease = inRelease({ 'main/binary-amd64/Packages': oldPackages });
const newPackages = packages({ 'a_1_amd64.deb': 'a', 'b_1%3a2_amd64.deb': 'b' });
const newRelease = inRelease({ 'main/binary-amd64/Packages': newPackages }, 'Sun, 02 Jan 2000');
/** What the build fetched itself: both the old and the new mirror state are genuine. */
const trust: AptTrust = { releases: [sha(oldRelease), sha(newRelease)] };

let root: string;
let apt: AptState;
let shared: { lists: string; archives: string };
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-apt-'));
  apt = new AptState(root);
  shared = {
    lists: path.join(aptStateDir(root), 'lists', 'k'),
    archives: path.join(aptStateDir(root), 'archives'),
  };
  // A store that has run one verified checkout already.
  await apt.checkout('k', path.join(root, 'first'));
  await fsp.writeFile(path.join(shared.lists, REL), oldRelease);
  await fsp.writeFile(path.join(shared.lists, PKGS), oldPackages);
  await fsp.writeFile(path.join(shared.lists, 'lock'), '');
  await fsp.writeFile(path.join(shared.archives, 'a_1_amd64.deb'), 'a');
});
afterEach(() => fsp.rm(root, { recursive: true, force: true }));

const read = (dir: string) =>
  fsp.readdir(dir).then(async (names) =>
    Object.fromEntries(
      await Promise.all(
        names
          .filter((n) => !n.startsWith('.tmp-'))
          .sort()
          .map(async (n) => [n, await fsp.readFile(path.join(dir, n), 'utf8')]),
      ),
    ),
  );

/** What apt does to a file it updates: a new file renamed over the old name. */
async function aptWrites(file: string, text: string): Promise<void> {
  await fsp.writeFile(`${file}.new`, text);
  await fsp.rename(`${file}.new`, file);
}

/** A step's view, read as a step would: its symlinks resolved through its snapshot. */
async function checkout(name: string) {
  const co = await apt.checkout('k', path.join(root, name), '/run/strata/apt-snapshot');
  for (const d of ['lists', 'archives'] as const)
    for (const n of await fsp.readdir(co[d])) {
      const to = await fsp.readlink(path.join(co[d], n));
      expect(to).toBe(`/run/strata/apt-snapshot/${d}/${n}`);
    }
  return co;
}

/** The state the next step would get. */
async function next() {
  const co = await apt.checkout('k', path.join(root, `next-${Math.random()}`));
  return { lists: await read(co.lists), archives: await read(co.archives) };
}

const untouched = {
  lists: { [REL]: oldRelease, [PKGS]: oldPackages },
  archives: { 'a_1_amd64.deb': 'a' },
};

test("a step's view is symlinks into a snapshot of the shared files, never apt's lock files", async () => {
  const co = await checkout('step');
  expect((await fsp.readdir(co.lists)).sort()).toEqual([REL, PKGS]);
  expect(await read(path.join(co.snapshot, 'lists'))).toEqual(untouched.lists);
  const [mine, theirs] = await Promise.all([
    fsp.stat(path.join(co.snapshot, 'lists', PKGS)),
    fsp.stat(path.join(shared.lists, PKGS)),
  ]);
  expect(mine.ino).toBe(theirs.ino);
  expect(await fsp.readdir(co.cache)).toEqual([]);
});

test('verified lists replace the shared ones as a set; a .deb they list is added', async () => {
  const co = await checkout('step');
  await aptWrites(path.join(co.lists, REL), newRelease);
  await aptWrites(path.join(co.lists, PKGS), newPackages);
  await fsp.writeFile(path.join(co.archives, 'b_1%3a2_amd64.deb'), 'b');
  await apt.checkin('k', co, trust);
  expect(await next()).toEqual({
    lists: { [REL]: newRelease, [PKGS]: newPackages },
    archives: { 'a_1_amd64.deb': 'a', 'b_1%3a2_amd64.deb': 'b' },
  });
});

test('a step that changed nothing does not bring back the lists another step replaced', async () => {
  const idle = await checkout('idle');
  const busy = await checkout('busy');
  await aptWrites(path.join(busy.lists, REL), newRelease);
  await aptWrites(path.join(busy.lists, PKGS), newPackages);
  await apt.checkin('k', busy, trust);
  await apt.checkin('k', idle, trust);
  expect((await next()).lists[PKGS]).toBe(newPackages);
});

test('an entry appended to a Packages file, and the .deb it lists, are never shared', async () => {
  const co = await checkout('step');
  const evil = packages({ 'evil_1_all.deb': 'evil' });
  await fsp.rm(path.join(co.lists, PKGS));
  await fsp.writeFile(path.join(co.lists, PKGS), `${oldPackages}\n${evil}`);
  await fsp.writeFile(path.join(co.archives, 'evil_1_all.deb'), 'evil');
  await apt.checkin('k', co, trust);
  expect(await next()).toEqual(untouched);
});

test('a Packages file the Release file does not list is never shared', async () => {
  const co = await checkout('step');
  const evil = packages({ 'evil_1_all.deb': 'evil' });
  await fsp.writeFile(path.join(co.lists, 'm_dists_s_contrib_binary-amd64_Packages'), evil);
  await fsp.writeFile(path.join(co.archives, 'evil_1_all.deb'), 'evil');
  await apt.checkin('k', co, trust);
  expect(await next()).toEqual(untouched);
});

test('lists with a Release file the build did not fetch, or of a RUN, are never shared', async () => {
  const evil = packages({ 'evil_1_all.deb': 'evil' });
  const forged = inRelease({ 'main/binary-amd64/Packages': evil });
  for (const t of [trust, undefined]) {
    const co = await checkout(`step-${t ? 'apt' : 'run'}`);
    await aptWrites(path.join(co.lists, REL), forged);
    await aptWrites(path.join(co.lists, PKGS), evil);
    await fsp.writeFile(path.join(co.archives, 'evil_1_all.deb'), 'evil');
    await apt.checkin('k', co, t);
    expect(await next()).toEqual(untouched);
  }
});

test('a changed copy of a cached .deb never replaces the shared one', async () => {
  const co = await checkout('step');
  // Through the symlink the step meets its read-only snapshot; a file of its own is what it can write.
  await fsp.rm(path.join(co.archives, 'a_1_amd64.deb'));
  await fsp.writeFile(path.join(co.archives, 'a_1_amd64.deb'), 'A');
  await apt.checkin('k', co, trust);
  expect(await next()).toEqual(untouched);
});

test('a .deb no verified index lists, or lists under another name, is never shared', async () => {
  const co = await checkout('step');
  await fsp.writeFile(path.join(co.archives, 'c_1_amd64.deb'), 'c');
  // The genuine a_1, under the name of another package or version.
  await fsp.writeFile(path.join(co.archives, 'b_1%3a2_amd64.deb'), 'a');
  await fsp.writeFile(path.join(co.archives, 'a_2_amd64.deb'), 'a');
  await apt.checkin('k', co, trust);
  expect(await next()).toEqual(untouched);
});

test('apt state from before verification is dropped, not trusted', async () => {
  await fsp.rm(path.join(aptStateDir(root), '.verified-v1'));
  expect(await next()).toEqual({ lists: {}, archives: {} });
});
