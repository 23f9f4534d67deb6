import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LockFile, readLockFile, writeLockFile } from './lockfile';

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
