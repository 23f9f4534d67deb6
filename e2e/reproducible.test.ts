/**
 * With SOURCE_DATE_EPOCH set, the same rootfs gives the same template: same manifest digest in a
 * fresh store, in the same store under another tag, and from a second process.
 */
import * as path from 'node:path';
import {
  blobPath,
  cleanupTmp,
  type Fixture,
  manifestOf,
  minbaseRootfs,
  runOk,
  SLOW,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

const EPOCH = 1700000000;

let fx: Fixture;
beforeAll(async () => {
  fx = await minbaseRootfs();
}, SLOW);
afterAll(cleanupTmp);

it(
  'creating the same template twice with SOURCE_DATE_EPOCH gives the same manifest digest',
  async () => {
    const env = { SOURCE_DATE_EPOCH: String(EPOCH) };
    const args = [
      'template',
      'create',
      fx.rootfs,
      '--name',
      'repro',
      '--feature',
      'a',
      '--feature',
      'b',
    ];
    const a = tmpDir('strata-e2e-store-');
    const b = tmpDir('strata-e2e-store-');
    await strataOk([...args, '-t', 'repro:1'], { store: a, env });
    await strataOk([...args, '-t', 'repro:1'], { store: b, env });
    await strataOk([...args, '-t', 'repro:2'], { store: a, env });
    const d1 = manifestOf(a, 'repro:1');
    expect(manifestOf(b, 'repro:1').digest).toBe(d1.digest);
    expect(manifestOf(a, 'repro:2').digest).toBe(d1.digest);

    // The build date is the epoch, and no layer entry is newer than it.
    const meta = await strataJson<{ created: string }>(['inspect', 'repro:1'], { store: a });
    expect(new Date(meta.created).getTime()).toBe(EPOCH * 1000);
    const layer = d1.manifest.layers[0]!;
    const list = await runOk(
      'sh',
      [
        '-c',
        'zstd -dc "$1" | tar --list --verbose --full-time --numeric-owner -f -',
        'sh',
        blobPath(a, layer.digest),
      ],
      { env: { TZ: 'UTC' } },
    );
    const newest = Math.max(
      ...list.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const m = /\s(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s/.exec(l);
          if (!m) throw new Error(`cannot read the date of ${l}`);
          return Date.parse(`${m[1]!.replace(' ', 'T')}Z`);
        }),
    );
    expect(newest).toBeLessThanOrEqual(EPOCH * 1000);
    expect(path.basename(blobPath(a, layer.digest))).toMatch(/^[0-9a-f]{64}$/);
  },
  SLOW,
);

it(
  'a different SOURCE_DATE_EPOCH gives a different digest (the epoch really is used)',
  async () => {
    const store = tmpDir('strata-e2e-store-');
    const args = ['template', 'create', fx.rootfs, '--name', 'repro'];
    await strataOk([...args, '-t', 'e:1'], { store, env: { SOURCE_DATE_EPOCH: String(EPOCH) } });
    await strataOk([...args, '-t', 'e:2'], {
      store,
      env: { SOURCE_DATE_EPOCH: String(EPOCH + 86400) },
    });
    expect(manifestOf(store, 'e:2').digest).not.toBe(manifestOf(store, 'e:1').digest);
  },
  SLOW,
);
