/**
 * A failing step and an interrupted build leave nothing behind: no mount, no process, no tag,
 * and a store that still passes fsck.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, SLOW, cleanupTmp, isOneLineError, strata } from './helpers';
import { mountsUnder, processesUsing, storeWithBase } from './fixtures/build/harness';

let work: string;
let store: string;
let sources: string;

beforeAll(async () => {
  ({ work, store, sources } = await storeWithBase());
}, SLOW);

afterAll(() => cleanupTmp());

async function assertClean(): Promise<void> {
  expect(await mountsUnder(store)).toEqual([]);
  expect(processesUsing(store)).toEqual([]);
  const fsck = await strata(['fsck'], { store });
  expect(fsck.code).toBe(0);
  const tmp = path.join(store, '.strata', 'snapshots');
  expect(fs.readdirSync(tmp).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
}

test(
  'a failing RUN exits non-zero naming Stratafile:LINE:COL, and leaves nothing behind',
  async () => {
    const ctx = path.join(work, 'fail');
    fs.mkdirSync(ctx);
    fs.writeFileSync(
      path.join(ctx, 'Stratafile'),
      'FROM base:v1\nRUN echo ok > /etc/ok\n  RUN false\n',
    );
    const r = await strata(['build', '-q', '--apt-sources', sources, '-t', 'fail:v1', ctx], {
      store,
    });
    expect(r.code).toBe(1);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('strata: error'));
    expect(isOneLineError(errors.join('\n'))).toBe(true);
    expect(errors[0]).toBe(
      `strata: error: ${path.join(ctx, 'Stratafile')}:3:3: RUN failed with exit code 1`,
    );
    const ls = await strata(['ls'], { store });
    expect(ls.stdout).not.toContain('fail:v1');
    await assertClean();
  },
  SLOW,
);

test(
  'SIGINT during an INSTALL: exit 130, no mount, no process, nothing tagged',
  async () => {
    const ctx = path.join(work, 'intr');
    fs.mkdirSync(ctx);
    // python3 is not in the shared .deb cache, so apt is busy downloading when the signal comes.
    fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nINSTALL python3\n');
    const child = spawn(
      process.execPath,
      [
        CLI,
        '--store',
        store,
        'build',
        '--no-cache',
        '--apt-sources',
        sources,
        '-t',
        'intr:v1',
        ctx,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    const started = new Promise<void>((resolve) => {
      const on = (b: Buffer) => {
        out += b.toString();
        if (/Get:|Unpacking|Reading package lists/.test(out)) resolve();
      };
      child.stdout.on('data', on);
      child.stderr.on('data', on);
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', (code) => resolve(code)),
    );
    await started;
    expect(await mountsUnder(store)).toEqual([]); // the step's mounts live in its own namespace
    child.kill('SIGINT');
    const code = await exited;
    expect(code).toBe(130);
    expect(out).toMatch(/interrupted/);
    const ls = await strata(['ls'], { store });
    expect(ls.stdout).not.toContain('intr:v1');
    await new Promise((r) => setTimeout(r, 500));
    await assertClean();
  },
  SLOW,
);

test(
  "SIGINT while a large COPY's layer is packed: exit 130, nothing tagged, no layer cached",
  async () => {
    const ctx = path.join(work, 'intr-pack');
    fs.mkdirSync(ctx);
    // Random bytes do not compress: packing them keeps zstd and the store busy for seconds.
    const fd = fs.openSync(path.join(ctx, 'big.bin'), 'w');
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < 200; i++) {
      for (let j = 0; j < chunk.length; j += 4)
        chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
    fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nCOPY big.bin /opt/\n');
    const child = spawn(
      process.execPath,
      [
        CLI,
        '--store',
        store,
        'build',
        '--no-cache',
        '--apt-sources',
        sources,
        '-t',
        'intr-pack:v1',
        ctx,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', (code) => resolve(code)),
    );
    // The layer is being packed once a blob of some size is being written into the store.
    const ingest = path.join(store, '.strata', 'ingest');
    const packing = (): boolean => {
      try {
        return fs.readdirSync(ingest).some((n) => fs.statSync(path.join(ingest, n)).size > 4 << 20);
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 60_000;
    while (!packing() && Date.now() < deadline && child.exitCode === null)
      await new Promise((r) => setTimeout(r, 20));
    expect(packing()).toBe(true);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(out).toContain('build interrupted; nothing was tagged');
    expect(out).not.toMatch(/^built /m);
    const ls = await strata(['ls'], { store });
    expect(ls.stdout).not.toContain('intr-pack');
    // The rebuild runs the step again: the interrupted one cached nothing.
    const again = await strata(
      ['build', '--json', '--apt-sources', sources, '-t', 'intr-pack:v1', ctx],
      { store },
    );
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ stepsRun: 1, cacheHits: 0 });
    await assertClean();
  },
  SLOW,
);
