import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { tempOwner, tempPathFor } from './atomic';
import { withFileLock } from './lock';
import { Store } from './store';
import { withTempStore } from './testing';

let store: Store;
withTempStore('kill-leftovers', (t) => ({ store } = t));

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

test('tempOwner reads the writer pid of temp names, broken locks and ingests', () => {
  expect(tempOwner(path.basename(tempPathFor('/s/index.json')))).toBe(process.pid);
  expect(tempOwner('.lease.tmp-4242-0-mxbkp501')).toBe(4242);
  expect(tempOwner('index.lock.stale-77')).toBe(77);
  expect(tempOwner(`blob-12-${'ab'.repeat(4)}`)).toBe(12);
  expect(tempOwner('index.json')).toBeUndefined();
  expect(tempOwner('f4cc894e817bbe40498ae1636227d5ee0b5b2ec6a7ccc563f06838c4492595ae')).toBe(
    undefined,
  );
});

test('a lock file names its holder from the moment it exists', async () => {
  const lock = path.join(store.root, '.strata', 'test.lock');
  await withFileLock(lock, async () => {
    expect(JSON.parse(await fsp.readFile(lock, 'utf8'))).toMatchObject({ pid: process.pid });
  });
  await expect(fsp.access(lock)).rejects.toThrow();
  // The holder's own temp file is gone too.
  expect((await fsp.readdir(path.dirname(lock))).filter((n) => n.includes('test.lock'))).toEqual(
    [],
  );
});

test('a lock whose holder was killed is broken at once, whatever it left beside it', async () => {
  const dead = deadPid();
  const lock = path.join(store.root, '.strata', 'index.lock');
  await fsp.writeFile(lock, JSON.stringify({ pid: dead, since: new Date().toISOString() }));
  await fsp.writeFile(`${path.dirname(lock)}/.index.lock.tmp-${dead}-0-mxbkp501`, '');
  let ran = false;
  await withFileLock(lock, async () => void (ran = true), { timeoutMs: 0 });
  expect(ran).toBe(true);
});

test('gc removes the temp files of killed writers all over the store, and keeps live ones', async () => {
  const dead = deadPid();
  const own = path.join(store.root, '.strata');
  const deadFiles = [
    path.join(store.root, `.index.json.tmp-${dead}-0-mxbkp501`),
    path.join(own, `.registry-sources.json.tmp-${dead}-0-mxbl0e9i`),
    path.join(own, `index.lock.stale-${dead}`),
    path.join(own, 'ingest', `.blob.tmp-${dead}-3-mxbkp501`),
    path.join(own, 'roots', `.x.json.tmp-${dead}-1-mxbkp501`),
  ];
  for (const f of deadFiles) await fsp.writeFile(f, 'x');
  const live = path.join(own, `.registry-sources.json.tmp-${process.pid}-0-mxbl0e9i`);
  await fsp.writeFile(live, 'x');
  const r = await store.gc();
  expect(r.partials.count).toBe(deadFiles.length);
  for (const f of deadFiles) await expect(fsp.access(f)).rejects.toThrow();
  await fsp.access(live);
});

test('a lease its writer was killed while writing does not keep the store busy', async () => {
  const dead = deadPid();
  await fsp.writeFile(path.join(store.root, '.strata', 'leases', `.lease.tmp-${dead}-0-a`), '');
  expect(await store.busy()).toBe(false);
  expect(await fsp.readdir(path.join(store.root, '.strata', 'leases'))).toEqual([]);
});
