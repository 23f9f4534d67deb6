import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LockFile, readLockFile, updatedLock, writeLockFile } from './lockfile';

test('a lock that says the same already is not written again; a changed one is', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-lock-'));
  try {
    const file = path.join(dir, 'Stratafile.lock');
    const doc: LockFile = { lockfileVersion: 1, stages: [] };
    await writeLockFile(file, doc);
    const first = await fsp.stat(file);
    await writeLockFile(file, doc);
    expect((await fsp.stat(file)).ino).toBe(first.ino);
    const moved: LockFile = {
      lockfileVersion: 1,
      stages: [{ name: 'a', from: { ref: 'scratch' }, steps: [] }],
    };
    await writeLockFile(file, moved);
    expect(await readLockFile(file)).toEqual(moved);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a rebuild keeps the entries of stages it did not build, but not of stages the file lost', () => {
  const stage = (name: string): LockFile['stages'][number] => ({
    name,
    from: { ref: 'scratch' },
    steps: [],
  });
  const old: LockFile = { lockfileVersion: 1, stages: [stage('a'), stage('b'), stage('c')] };
  // `--target a` of a file of three stages.
  expect(updatedLock(old, [stage('A')], 3).stages.map((s) => s.name)).toEqual(['A', 'b', 'c']);
  // The whole file, which has lost its last stage.
  expect(updatedLock(old, [stage('A'), stage('B')], 2).stages.map((s) => s.name)).toEqual([
    'A',
    'B',
  ]);
  expect(updatedLock(undefined, [stage('A')], 2).stages.map((s) => s.name)).toEqual(['A']);
});
