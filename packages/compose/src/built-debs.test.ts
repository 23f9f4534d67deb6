import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { MediaTypes } from '@strata/oci';
import type { Descriptor, Digest } from '@strata/oci';
import { Store } from '@strata/store';
import { BuiltDeb, LocalDebs, builtDeb } from './built-debs';
import { sourceFileDescriptor, titleOf } from './debuild-source';

const execFileAsync = promisify(execFile);
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('LocalDebs: the source packages attached with the .debs', () => {
  let dir: string;
  let store: Store;
  let local: LocalDebs;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-localdebs-'));
    store = await Store.open(path.join(dir, 'store'));
    local = new LocalDebs({ store }, async () => dir);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const blob = async (name: string, bytes: Buffer | string): Promise<Descriptor> => {
    const b = await store.putBlob(Readable.from([Buffer.from(bytes)]));
    return sourceFileDescriptor(name, b.digest, b.size);
  };
  /** A source package `acme` at `version` that builds acme-tool: its .dsc and tarball blobs. */
  const sourcePackage = async (version: string): Promise<Descriptor[]> => {
    const tarball = `acme ${version} source\n`;
    const tar = `acme_${version}.tar.xz`;
    const dsc = `Format: 3.0 (native)\nSource: acme\nBinary: acme-tool\nVersion: ${version}\nChecksums-Sha256:\n ${sha(tarball)} ${tarball.length} ${tar}\n`;
    return [await blob(`acme_${version}.dsc`, dsc), await blob(tar, tarball)];
  };
  const deb = (version: string, sourceVersion?: string): BuiltDeb => ({
    blob: {
      mediaType: MediaTypes.debianPackage,
      digest: `sha256:${sha(version)}` as Digest,
      size: 1,
    },
    filename: `acme-tool_${version}_amd64.deb`,
    package: 'acme-tool',
    version,
    ...(sourceVersion !== undefined ? { sourceVersion } : {}),
    architecture: 'amd64',
  });
  const titles = async () => (await local.sources()).map(titleOf);

  test('carries the source package each kept .deb was built from, not one whose .deb was replaced', async () => {
    // Inherited from a FROM template: 1.0 and its source.
    local.add([deb('1.0')]);
    local.addSources(await sourcePackage('1.0'));
    expect(await titles()).toEqual(['acme_1.0.dsc', 'acme_1.0.tar.xz']);
    // This build's DEBUILD makes 1.1 of the same package: 1.0's source goes with its .deb.
    local.add([deb('1.1')]);
    local.addSources(await sourcePackage('1.1'));
    expect(await titles()).toEqual(['acme_1.1.dsc', 'acme_1.1.tar.xz']);
  });

  test("a binNMU's .deb keeps the source package of its source version", async () => {
    local.add([deb('1.1+b1', '1.1')]);
    local.addSources([...(await sourcePackage('1.1')), ...(await sourcePackage('1.0'))]);
    expect(await titles()).toEqual(['acme_1.1.dsc', 'acme_1.1.tar.xz']);
  });

  test('no .debs, no sources', async () => {
    local.addSources(await sourcePackage('1.0'));
    expect(await local.sources()).toEqual([]);
  });
});

describe('builtDeb', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-builtdeb-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const debWith = async (name: string, fields: string): Promise<string> => {
    const tree = path.join(dir, name);
    fs.mkdirSync(path.join(tree, 'DEBIAN'), { recursive: true });
    fs.writeFileSync(
      path.join(tree, 'DEBIAN/control'),
      `Package: acme-tool\n${fields}Architecture: amd64\nMaintainer: A <a@example.org>\nDescription: acme\n`,
    );
    const file = path.join(dir, `${name}.deb`);
    await execFileAsync('dpkg-deb', ['--root-owner-group', '--build', tree, file]);
    return file;
  };
  const blob = { digest: `sha256:${'0'.repeat(64)}` as Digest, size: 1 };

  test("reads the source version from a binNMU's Source field, and only there", async () => {
    const binnmu = await builtDeb(
      await debWith('binnmu', 'Source: acme (1.1)\nVersion: 1.1+b1\n'),
      'acme-tool_1.1+b1_amd64.deb',
      blob,
    );
    expect(binnmu).toMatchObject({ package: 'acme-tool', version: '1.1+b1', sourceVersion: '1.1' });
    const plain = await builtDeb(
      await debWith('plain', 'Source: acme\nVersion: 1.1\n'),
      'acme-tool_1.1_amd64.deb',
      blob,
    );
    expect(plain.version).toBe('1.1');
    expect(plain.sourceVersion).toBeUndefined();
  });
});
