/**
 * A template carries its buildchroot: one OCI index holds the rootfs image and the buildchroot
 * image, which share the base layers; derived templates inherit it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { minbaseRootfs, run, SLOW } from './helpers';
import { strataOk, tmpDir } from './registry-fixtures';

jest.setTimeout(SLOW);

const store = tmpDir('bc-store');
const s = (...args: string[]) => strataOk(['--store', store, ...args]);

interface Summary {
  digest: string;
  mediaType: string;
  features: string[];
  images?: Array<{ role: string; digest: string; layers: Array<{ digest: string }> }>;
  sharedLayers?: Array<{ digest: string }>;
  layers: Array<{ digest: string }>;
}
const inspect = async (ref: string) =>
  JSON.parse((await s('--json', 'inspect', ref)).stdout) as Summary;

async function listTar(file: string): Promise<string[]> {
  const r = await run('tar', ['-tf', file]);
  expect(r.code).toBe(0);
  return r.stdout.split('\n');
}

beforeAll(async () => {
  const fx = await minbaseRootfs();
  await s(
    'template',
    'create',
    fx.rootfs,
    '-t',
    'base:1',
    '--name',
    'base',
    '--feature',
    'minbase',
  );
});

test('BUILDCHROOT bundles both images, sharing the base layer, and derived templates inherit it', async () => {
  const ctx = tmpDir('bc-ctx');
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    [
      'FROM base:1 AS buildchroot',
      'RUN echo cross-compiler > /usr/local/bin/fake-cc',
      '',
      'FROM base:1',
      'RUN echo product > /etc/product',
      'BUILDCHROOT buildchroot',
      '',
    ].join('\n'),
  );
  await s('build', '-q', '-t', 'product:1', ctx);
  const base = await inspect('base:1');
  const product = await inspect('product:1');
  expect(product.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  expect(product.images?.map((i) => i.role)).toEqual(['rootfs', 'buildchroot']);
  expect(product.sharedLayers?.map((l) => l.digest)).toEqual([base.layers[0]!.digest]);
  expect(product.features).toEqual(['minbase']);

  // skopeo reads the index as a multi-image reference; each member is a plain image.
  const raw = await run('skopeo', ['inspect', '--raw', `oci:${store}:product:1`]);
  expect(JSON.parse(raw.stdout).manifests).toHaveLength(2);

  const out = tmpDir('bc-out');
  await s(
    'flatten',
    'product:1',
    '--rootfs',
    path.join(out, 'rootfs.tar'),
    '--buildchroot',
    path.join(out, 'bc.tar'),
  );
  const rootfs = await listTar(path.join(out, 'rootfs.tar'));
  const bc = await listTar(path.join(out, 'bc.tar'));
  expect(rootfs).toContain('etc/product');
  expect(rootfs).not.toContain('usr/local/bin/fake-cc');
  expect(bc).toContain('usr/local/bin/fake-cc');
  expect(bc).not.toContain('etc/product');

  // A derived template that does not declare a buildchroot inherits its parent's.
  const child = tmpDir('bc-child');
  fs.writeFileSync(path.join(child, 'Stratafile'), 'FROM product:1\nRUN echo child > /etc/child\n');
  await s('build', '-q', '-t', 'child:1', child);
  const derived = await inspect('child:1');
  const bcOf = (x: Summary) => x.images?.find((i) => i.role === 'buildchroot')?.digest;
  expect(bcOf(derived)).toBe(bcOf(product));
  expect(derived.images?.find((i) => i.role === 'rootfs')?.layers).toHaveLength(3);
});

test('inspect shows the base chain, the direct base first, with references and digests', async () => {
  const mid = tmpDir('chain-mid');
  fs.writeFileSync(path.join(mid, 'Stratafile'), 'FROM base:1\nRUN echo mid > /etc/mid\n');
  await s('build', '-q', '-t', 'mid:1', mid);
  const top = tmpDir('chain-top');
  fs.writeFileSync(path.join(top, 'Stratafile'), 'FROM mid:1\nRUN echo top > /etc/top\n');
  await s('build', '-q', '-t', 'top:1', top);
  const baseDigest = (await inspect('base:1')).digest;
  const midDigest = (await inspect('mid:1')).digest;

  const text = (await s('inspect', 'top:1')).stdout.split('\n');
  const at = text.findIndex((l) => l.startsWith('Base:'));
  expect(at).toBeGreaterThan(0);
  expect(text[at]).toMatch(new RegExp(`^Base: +mid:1 ${midDigest}( |$)`));
  expect(text[at + 1]).toMatch(new RegExp(`^ {15}base:1 ${baseDigest} \\(base\\)$`));
  expect((await s('inspect', 'mid:1')).stdout).toMatch(
    new RegExp(`\nBase: +base:1 ${baseDigest} \\(base\\)\n`),
  );
  expect((await s('inspect', 'base:1')).stdout).toContain('\nBase:          (none)\n');
});
