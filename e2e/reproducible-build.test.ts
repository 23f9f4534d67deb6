/**
 * Bit for bit: the same Stratafile against the same mirror state, built in two fresh stores,
 * gives the same digest. A two-stage Stratafile with BOOTSTRAP (mmdebstrap), INSTALL (an
 * ldconfig trigger, Python byte-compiling), REMOVE, RUN, COPY and a bundled buildchroot is built
 * twice without SOURCE_DATE_EPOCH, so the date is the mirror's (the newest Release `Date:`);
 * in the long run, a multi-platform index (amd64, and arm64 under qemu-user) is built twice with it.
 *
 * When two builds differ, the failure names the layer (its image, index and step) and the paths
 * in it that differ, and how: compareBuilds reads both stores' layers entry by entry.
 *
 * `STRATA_LONG=1` also installs more in the last stage: man-db (its index databases), ca-certificates
 * (the certificate bundle and links) and systemd (an /etc/machine-id, which the layer keeps empty).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareBuilds, describeReproReport } from '@strata/imager';
import { Store } from '@strata/store';
import {
  cleanupTmp,
  foreignMinbaseTar,
  minbaseRootfs,
  SLOW,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

jest.setTimeout(SLOW);

const LONG = process.env.STRATA_LONG === '1';
afterAll(cleanupTmp);

/** How `tag` differs between two stores: '' when the two are the same, bit for bit. */
async function differences(storeA: string, storeB: string, tag: string): Promise<string> {
  const side = async (root: string) => {
    const s = await Store.open(root);
    return { descriptor: await s.resolve(tag), image: s.image.bind(s), index: s.index.bind(s) };
  };
  return describeReproReport(await compareBuilds(await side(storeA), await side(storeB)));
}

function context(stratafile: string, files: Record<string, string> = {}): string {
  const dir = tmpDir('strata-e2e-repro-ctx-');
  fs.writeFileSync(path.join(dir, 'Stratafile'), stratafile);
  for (const [name, body] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), body);
  return dir;
}

describe('a two-stage Stratafile with BOOTSTRAP, built in two fresh stores', () => {
  const STRATAFILE = [
    'FROM scratch AS base',
    'BOOTSTRAP --variant=minbase bookworm',
    'INSTALL less libexpat1',
    '',
    'FROM base AS buildchroot',
    'RUN echo buildchroot > /etc/strata-role',
    '',
    'FROM base',
    'BUILDCHROOT buildchroot',
    `INSTALL python3-minimal${LONG ? ' man-db ca-certificates systemd' : ''}`,
    'REMOVE less',
    'RUN echo product > /etc/strata-role && ldconfig',
    'COPY app.conf /etc/app/app.conf',
    '',
  ].join('\n');
  const stores = [tmpDir('strata-e2e-store-'), tmpDir('strata-e2e-store-')];
  let started: number;
  let outputs: string[];

  beforeAll(async () => {
    started = Date.now();
    // Two contexts (each build writes its lock next to its Stratafile), built side by side.
    outputs = await Promise.all(
      stores.map(async (store) => {
        const ctx = context(STRATAFILE, { 'app.conf': 'level = 3\n' });
        return (await strataOk(['build', '-t', 'repro:1', ctx], { store })).stderr;
      }),
    );
  }, SLOW);

  test('gives the same digest, dated by the mirror state', async () => {
    expect(await differences(stores[0]!, stores[1]!, 'repro:1')).toBe('');
    for (const out of outputs) expect(out).not.toMatch(/dated by the clock/);
    const meta = await strataJson<{ created: string }>(['inspect', 'repro:1'], {
      store: stores[0]!,
    });
    expect(Date.parse(meta.created)).toBeLessThan(started);
  });
});

// Two platforms, arm64 under qemu-user, in two stores: the long run's (`npm run test:long`).
if (LONG) {
  describe('a multi-platform index, built in two fresh stores', () => {
    const STRATAFILE = [
      'ARG TARGETARCH',
      'FROM base:${TARGETARCH} AS tools',
      'RUN uname -m > /etc/buildchroot-arch',
      '',
      'FROM base:${TARGETARCH}',
      'BUILDCHROOT tools',
      'RUN uname -m > /etc/strata-arch && ldconfig',
      'COPY app.conf /etc/app/app.conf',
      '',
    ].join('\n');
    const stores = [tmpDir('strata-e2e-store-'), tmpDir('strata-e2e-store-')];
    const env = { SOURCE_DATE_EPOCH: '1700000000' };

    beforeAll(async () => {
      const [fx, arm64Tar] = await Promise.all([minbaseRootfs(), foreignMinbaseTar('arm64')]);
      await Promise.all(
        stores.map(async (store) => {
          for (const [tar, tag] of [
            [fx.minbaseTar, 'base:amd64'],
            [arm64Tar, 'base:arm64'],
          ] as const)
            await strataOk(['template', 'create', tar, '-t', tag, '--name', 'base'], {
              store,
              env,
            });
          const ctx = context(STRATAFILE, { 'app.conf': 'level = 3\n' });
          await strataOk(['build', '--platform', 'linux/amd64,linux/arm64', '-t', 'app:1', ctx], {
            store,
            env,
          });
        }),
      );
    }, SLOW);

    test('gives the same index digest, each platform and buildchroot included', async () => {
      expect(await differences(stores[0]!, stores[1]!, 'app:1')).toBe('');
    });
  });
}
