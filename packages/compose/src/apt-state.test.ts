import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AptState, aptStateDir } from './apt-state';

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
  await fsp.mkdir(shared.lists, { recursive: true });
  await fsp.mkdir(shared.archives, { recursive: true });
  await fsp.writeFile(path.join(shared.lists, 'InRelease'), 'old release');
  await fsp.writeFile(path.join(shared.lists, 'Packages'), 'old packages');
  await fsp.writeFile(path.join(shared.lists, 'lock'), '');
  await fsp.writeFile(path.join(shared.archives, 'a_1_amd64.deb'), 'a');
});
afterEach(() => fsp.rm(root, { recursive: true, force: true }));

const read = (dir: string) =>
  fsp
    .readdir(dir)
    .then(async (names) =>
      Object.fromEntries(
        await Promise.all(
          names.sort().map(async (n) => [n, await fsp.readFile(path.join(dir, n), 'utf8')]),
        ),
      ),
    );

/** What apt does to a file it updates: a new file renamed over the old name. */
async function aptWrites(file: string, text: string): Promise<void> {
  await fsp.writeFile(`${file}.new`, text);
  await fsp.rename(`${file}.new`, file);
}

test('a checkout links the shared files, but never apt’s lock files', async () => {
  const co = await apt.checkout('k', path.join(root, 'step'));
  expect(await read(co.lists)).toEqual({ InRelease: 'old release', Packages: 'old packages' });
  expect(await read(co.archives)).toEqual({ 'a_1_amd64.deb': 'a' });
  const [mine, theirs] = await Promise.all([
    fsp.stat(path.join(co.lists, 'Packages')),
    fsp.stat(path.join(shared.lists, 'Packages')),
  ]);
  expect(mine.ino).toBe(theirs.ino);
});

test('updated lists replace the shared ones as a set; new packages are added', async () => {
  const co = await apt.checkout('k', path.join(root, 'step'));
  await aptWrites(path.join(co.lists, 'InRelease'), 'new release');
  await fsp.rm(path.join(co.lists, 'Packages'));
  await fsp.writeFile(path.join(co.lists, 'Packages.new-name'), 'new packages');
  await fsp.writeFile(path.join(co.archives, 'b_1_amd64.deb'), 'b');
  await apt.checkin('k', co);
  expect(await read(shared.lists)).toEqual({
    InRelease: 'new release',
    'Packages.new-name': 'new packages',
    lock: '',
  });
  expect(await read(shared.archives)).toEqual({ 'a_1_amd64.deb': 'a', 'b_1_amd64.deb': 'b' });
});

test('a step that changed nothing does not bring back the lists another step replaced', async () => {
  const idle = await apt.checkout('k', path.join(root, 'idle'));
  const busy = await apt.checkout('k', path.join(root, 'busy'));
  await aptWrites(path.join(busy.lists, 'Packages'), 'newer packages');
  await apt.checkin('k', busy);
  await apt.checkin('k', idle);
  expect((await read(shared.lists)).Packages).toBe('newer packages');
});

test('changes made in the copy never reach the shared files before checkin', async () => {
  const co = await apt.checkout('k', path.join(root, 'step'));
  await aptWrites(path.join(co.lists, 'Packages'), 'new packages');
  expect((await read(shared.lists)).Packages).toBe('old packages');
  const other = await apt.checkout('k', path.join(root, 'other'));
  expect((await read(other.lists)).Packages).toBe('old packages');
});
