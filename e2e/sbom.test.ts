/**
 * SBOMs of a built template: `strata build` attaches an SPDX 2.3 and a CycloneDX 1.6 document
 * to the image it makes; both are valid by their official schemas for the code's validator and
 * for Debian's python3-jsonschema; push carries them to docker-registry 2.8 (the referrers
 * fallback tag) and pull to a fresh store; `strata sbom` reads them from the registry without
 * fetching a layer, and makes one from the layers of a template that has none attached.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateSbom } from '@strata/sbom';
import { SLOW, cleanupTmp, minbaseRootfs, strataJson, strataOk } from './helpers';
import { EXAMPLES, buildJson, readImage, storeWithBase } from './fixtures/build/harness';
import { Proxy, Registry, startProxy, startRegistry } from './registry-fixtures';

const CHECKER = path.join(__dirname, 'support', 'validate-sbom.py');
const SPDX_SCHEMAS = path.join(__dirname, '..', 'schemas', 'spdx');
const CDX_SCHEMAS = path.join(
  path.dirname(
    require.resolve('@cyclonedx/cyclonedx-library/package.json', {
      paths: [path.join(__dirname, '..', 'packages', 'sbom')],
    }),
  ),
  'res',
  'schema',
);

interface InspectJson {
  digest: string;
  artifacts: Array<{ digest: string; artifactType: string; subject: string }>;
}
interface SbomJson {
  file: string;
  format: string;
  source: 'attached' | 'computed';
  subject: string;
  artifact?: string;
}
interface SpdxDoc {
  packages: Array<{
    SPDXID: string;
    name: string;
    versionInfo?: string;
    licenseDeclared?: string;
    sourceInfo?: string;
    checksums?: Array<{ algorithm: string; checksumValue: string }>;
    externalRefs?: Array<{ referenceType: string; referenceLocator: string }>;
  }>;
  relationships: Array<{
    spdxElementId: string;
    relationshipType: string;
    relatedSpdxElement: string;
  }>;
}

let work: string;
let store: string;
let reg: Registry;
let proxy: Proxy;
let image: ReturnType<typeof readImage>;
let base: ReturnType<typeof readImage>;

beforeAll(async () => {
  let sources: string;
  ({ work, store, sources } = await storeWithBase());
  fs.cpSync(path.join(EXAMPLES, 'middleware'), path.join(work, 'middleware'), { recursive: true });
  await buildJson(
    ['--apt-sources', sources, '-t', 'middleware:v1', path.join(work, 'middleware')],
    store,
  );
  image = readImage(store, 'middleware:v1');
  base = readImage(store, 'base:v1');
  reg = await startRegistry();
  proxy = await startProxy(reg.host);
}, SLOW);

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  cleanupTmp();
});

function independentlyValid(format: 'spdx' | 'cyclonedx', file: string): string {
  return execFileSync(
    'python3',
    [CHECKER, format, format === 'spdx' ? SPDX_SCHEMAS : CDX_SCHEMAS, file],
    { encoding: 'utf8' },
  );
}

async function sbomFile(
  ref: string,
  format: 'spdx' | 'cyclonedx',
  s: string,
  extra: string[] = [],
): Promise<{ r: SbomJson; text: string }> {
  const out = path.join(work, `${format}-${Math.random().toString(36).slice(2)}.json`);
  const r = await strataJson<SbomJson>(['sbom', ref, '--format', format, '-o', out, ...extra], {
    store: s,
  });
  return { r, text: fs.readFileSync(out, 'utf8') };
}

test('build attaches an SPDX and a CycloneDX SBOM to the image it makes, with the image as their subject', async () => {
  const s = await strataJson<InspectJson>(['inspect', 'middleware:v1'], { store });
  const types = s.artifacts.map((a) => [a.artifactType, a.subject]).sort();
  expect(types).toEqual([
    ['application/spdx+json', image.digest],
    ['application/vnd.cyclonedx+json', image.digest],
  ]);
});

test.each(['spdx', 'cyclonedx'] as const)(
  'the attached %s SBOM is valid by its official schema for both validators, and is what the layers give',
  async (format) => {
    const { r, text } = await sbomFile('middleware:v1', format, store);
    expect(r).toMatchObject({ source: 'attached', subject: image.digest });
    expect(await validateSbom(format, text)).toEqual([]);
    expect(independentlyValid(format, r.file)).toMatch(/^valid /);
    const computed = await sbomFile('middleware:v1', format, store, ['--compute']);
    expect(computed.r.source).toBe('computed');
    expect(computed.text).toBe(text);
  },
  SLOW,
);

test('the SPDX SBOM names each package with its purl, licences, files checksum and the layer that installed it, and the base chain', async () => {
  const doc = JSON.parse((await sbomFile('middleware:v1', 'spdx', store)).text) as SpdxDoc;
  const ca = doc.packages.find((p) => p.name === 'ca-certificates');
  expect(ca?.externalRefs?.[0]?.referenceLocator).toMatch(
    /^pkg:deb\/debian\/ca-certificates@[^?]+\?arch=all&distro=debian-12$/,
  );
  expect(ca?.checksums?.[0]?.algorithm).toBe('SHA256');
  // ca-certificates' copyright file is machine-readable: SPDX ids, no LicenseRef for them.
  expect(ca?.licenseDeclared).toMatch(/GPL-2\.0-or-later/);
  const installLayer = image.manifest.layers.length - 2;
  const layerOf = (id: string) =>
    doc.relationships.find((x) => x.relationshipType === 'CONTAINS' && x.relatedSpdxElement === id)
      ?.spdxElementId;
  expect(layerOf(ca?.SPDXID ?? '')).toMatch(new RegExp(`^SPDXRef-Layer-${installLayer}-`));
  const bash = doc.packages.find((p) => p.name === 'bash');
  expect(layerOf(bash?.SPDXID ?? '')).toMatch(/^SPDXRef-Layer-0-/);
  const descends = doc.relationships.filter((x) => x.relationshipType === 'DESCENDANT_OF');
  expect(descends).toHaveLength(1);
  const basePkg = doc.packages.find((p) => p.SPDXID === descends[0]?.relatedSpdxElement);
  expect(basePkg?.versionInfo).toBe(base.digest);
});

test('push carries the SBOMs to docker-registry 2.8; strata sbom reads one there without fetching a layer', async () => {
  const remote = `${reg.host}/acme/middleware:v1`;
  await strataOk(['push', 'middleware:v1', remote], { store });
  const local = await sbomFile('middleware:v1', 'spdx', store);
  proxy.records.length = 0;
  const viaProxy = `${proxy.host}/acme/middleware:v1`;
  const { r, text } = await sbomFile(viaProxy, 'spdx', store);
  expect(r.source).toBe('attached');
  expect(text).toBe(local.text);
  const layerDigests = image.manifest.layers.map((l: { digest: string }) => l.digest);
  const blobGets = proxy.records.filter((x) => x.method === 'GET' && /\/blobs\//.test(x.url));
  // One blob: the SBOM's own. No layer of the template.
  expect(blobGets).toHaveLength(1);
  expect(blobGets.filter((x) => layerDigests.some((d: string) => x.url.endsWith(d)))).toEqual([]);
});

test(
  'pull brings the SBOMs to a fresh store',
  async () => {
    const fresh = path.join(work, 'fresh-store');
    await strataOk(['pull', `${reg.host}/acme/middleware:v1`, '-t', 'mw:pulled'], { store: fresh });
    for (const format of ['spdx', 'cyclonedx'] as const) {
      const { r, text } = await sbomFile('mw:pulled', format, fresh);
      expect(r.source).toBe('attached');
      expect(text).toBe((await sbomFile('middleware:v1', format, store)).text);
    }
  },
  SLOW,
);

test('a template with none attached gets one made from its layers, and stderr says so', async () => {
  // A template made from a plain rootfs tar: only a build attaches SBOMs (and base:v1 was built).
  const { minbaseTar } = await minbaseRootfs();
  await strataOk(['template', 'create', minbaseTar, '-t', 'plain:1', '--name', 'plain'], { store });
  const r = await strataOk(['sbom', 'plain:1'], { store });
  expect(r.stderr).toMatch(/made from the layers of plain:1 \(none is attached\)/);
  const doc = JSON.parse(r.stdout) as SpdxDoc;
  expect(doc.packages.some((p) => p.name === 'bash')).toBe(true);
  const file = path.join(work, 'plain.spdx.json');
  fs.writeFileSync(file, r.stdout);
  expect(independentlyValid('spdx', file)).toMatch(/^valid /);
});
