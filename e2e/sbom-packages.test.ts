/**
 * Which packages an SBOM lists, and as whose, through the CLI: a package that a RUN left
 * unpacked (`dpkg --unpack`) ships its files, so the SBOM and diff list it with its state; one
 * installed from a .deb of the build context is not Debian's, so it gets no Debian purl and the
 * SBOM says where it came from (the build records it in the layer's metadata).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateSbom } from '@strata/sbom';
import { SLOW, cleanupTmp, strata, strataOk } from './helpers';
import { buildJson, readImage, storeWithBase } from './fixtures/build/harness';

interface SpdxDoc {
  packages: Array<{
    name: string;
    comment?: string;
    externalRefs?: Array<{ referenceType: string; referenceLocator: string }>;
  }>;
}

let work: string;
let store: string;

/** A .deb of one file, made with dpkg-deb. */
function makeDeb(dir: string, name: string, version: string): string {
  const root = path.join(dir, `${name}-pkg`);
  fs.mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(root, 'usr/share', name), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'DEBIAN/control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: Acme <dev@acme.example>\nDescription: ${name}\n`,
  );
  fs.writeFileSync(path.join(root, 'usr/share', name, 'file'), `${name}\n`);
  const deb = path.join(dir, `${name}_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, deb], { stdio: 'pipe' });
  fs.rmSync(root, { recursive: true });
  return deb;
}

beforeAll(async () => {
  let sources: string;
  ({ work, store, sources } = await storeWithBase());
  const ctx = path.join(work, 'ctx');
  fs.mkdirSync(path.join(ctx, 'debs'), { recursive: true });
  makeDeb(path.join(ctx, 'debs'), 'acme-local', '1.0');
  makeDeb(ctx, 'acme-unpacked', '2.0');
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    [
      'FROM base:v1',
      'INSTALL ./debs/acme-local_1.0_all.deb',
      'COPY acme-unpacked_2.0_all.deb /opt/u.deb',
      'RUN dpkg --unpack /opt/u.deb && rm /opt/u.deb',
      '',
    ].join('\n'),
  );
  await buildJson(['--apt-sources', sources, '-t', 'pkgs:v1', ctx], store);
}, SLOW);

afterAll(() => cleanupTmp());

test(
  'a package left unpacked and one from a local .deb: both in the SBOM, the one with its state, the other without a Debian purl',
  async () => {
    const out = path.join(work, 'sbom.spdx.json');
    await strataOk(['sbom', 'pkgs:v1', '-o', out], { store });
    const text = fs.readFileSync(out, 'utf8');
    expect(await validateSbom('spdx', text)).toEqual([]);
    const doc = JSON.parse(text) as SpdxDoc;
    const pkg = (n: string) => doc.packages.find((p) => p.name === n);
    expect(pkg('acme-unpacked')?.comment).toContain('dpkg state: unpacked');
    const local = pkg('acme-local');
    expect(local?.externalRefs?.[0]?.referenceLocator).toBe('pkg:deb/acme-local@1.0?arch=all');
    expect(local?.comment).toContain('installed from a local .deb in the build context');
    // A package apt took from the mirror keeps its Debian purl.
    const other = doc.packages.find((p) =>
      p.externalRefs?.[0]?.referenceLocator.includes('debian-'),
    );
    expect(other).toBeDefined();
    // The INSTALL's layer record names what came from the context's .debs, and only that.
    const config = readImage(store, 'pkgs:v1').config as {
      strata: { layers: Array<{ createdBy: string; localDebs?: string[] }> };
    };
    const records = config.strata.layers.filter((l) => l.localDebs !== undefined);
    expect(records.map((l) => [l.createdBy, l.localDebs])).toEqual([
      ['INSTALL ./debs/acme-local_1.0_all.deb', ['acme-local=1.0']],
    ]);
  },
  SLOW,
);

test(
  'diff counts the package that a RUN left unpacked as added',
  async () => {
    // diff exits 1 when the two differ, as diff(1) does.
    const r = await strata(['diff', 'base:v1', 'pkgs:v1', '--json'], { store });
    expect(r.code).toBe(1);
    const d = JSON.parse(r.stdout) as { packages: { added: Array<{ name: string }> } };
    expect(d.packages.added.map((p) => p.name).sort()).toEqual(['acme-local', 'acme-unpacked']);
  },
  SLOW,
);
