/**
 * mmdebstrap mounts /proc, /sys, /dev/pts and /dev/shm into the tree it makes. A strata killed
 * mid-BOOTSTRAP (kill -9 of a CI job) once left those mounts on the host, under the store's
 * snapshot directory. They belong in a mount namespace of mmdebstrap's own: none may show on the
 * host while it runs, and none may be left after a kill -9.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, SLOW, cleanupTmp, pidAlive, tmpDir } from './helpers';
import { sourcesFile } from './fixtures/build/harness';

jest.setTimeout(SLOW);
afterAll(cleanupTmp);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Mount points on the host (this test's mount namespace) under `dir`. */
function hostMountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(`${dir}/`));
}

function mmdebstrapRunning(): boolean {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .some((p) => {
      try {
        // mmdebstrap is a perl script: `perl /usr/bin/mmdebstrap …` (unshare only names it).
        const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
        return argv.slice(0, 2).some((a) => path.basename(a) === 'mmdebstrap');
      } catch {
        return false;
      }
    });
}

test('a BOOTSTRAP keeps its mounts off the host, and a kill -9 of strata leaves none', async () => {
  const work = tmpDir('strata-bootstrap-mounts-');
  const store = path.join(work, 'store');
  const ctx = path.join(work, 'ctx');
  fs.mkdirSync(ctx);
  fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM scratch\nBOOTSTRAP bookworm\n');
  const child = spawn(
    process.execPath,
    [CLI, '--store', store, 'build', '--apt-sources', sourcesFile(work), '-t', 'b:1', ctx],
    { stdio: 'ignore' },
  );
  const seen = new Set<string>();
  let ranFor = 0;
  // Watch until mmdebstrap has worked for 20 s (it is installing by then), or the build ends.
  while (child.exitCode === null && ranFor < 20_000) {
    for (const m of hostMountsUnder(store)) seen.add(m);
    if (mmdebstrapRunning()) ranFor += 100;
    await sleep(100);
  }
  expect(ranFor).toBeGreaterThan(0);
  expect(child.exitCode).toBeNull();
  process.kill(child.pid!, 'SIGKILL');
  await new Promise((r) => child.once('exit', r));
  // mmdebstrap, told to stop (SIGTERM), cleans up and ends; its namespace ends with it.
  for (let i = 0; i < 600 && mmdebstrapRunning(); i++) await sleep(100);
  expect(mmdebstrapRunning()).toBe(false);
  expect(pidAlive(child.pid!)).toBe(false);
  expect([...seen]).toEqual([]);
  expect(hostMountsUnder(store)).toEqual([]);
});
