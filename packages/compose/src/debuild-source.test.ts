import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { DigestMismatchError, MediaTypes, NotFoundError, SizeMismatchError } from '@strata/oci';
import type { Digest } from '@strata/oci';
import { Store } from '@strata/store';
import { DebuildEntry, readDebuildCache, writeDebuildCache } from './cache';
import { sourceFileDescriptor, storeSourcePackage } from './debuild-source';

const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

describe('storeSourcePackage', () => {
  let dir: string;
  let store: Store;
  const tarball = Buffer.from('a source tarball\n');
  const dscOf = (sum: string, size: number) =>
    `Format: 3.0 (native)\nSource: acme\nBinary: acme-tool\nVersion: 2.0\nChecksums-Sha256:\n ${sum} ${size} acme_2.0.tar.xz\n`;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-debsrc-'));
    store = await Store.open(path.join(dir, 'store'));
    fs.mkdirSync(path.join(dir, 'src'));
    fs.writeFileSync(path.join(dir, 'src', 'acme_2.0.tar.xz'), tarball);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const writeDsc = (text: string) => {
    fs.writeFileSync(path.join(dir, 'src', 'acme_2.0.dsc'), text);
    return Buffer.from(text);
  };

  test('keeps the .dsc and each file it lists as titled source-file blobs, sorted by name', async () => {
    const dsc = writeDsc(dscOf(sha(tarball), tarball.length));
    const got = await storeSourcePackage(store, path.join(dir, 'src'), 'acme_2.0.dsc');
    expect(got.name).toBe('acme');
    expect(got.version).toBe('2.0');
    expect(
      got.files.map((f) => [f.annotations?.['org.opencontainers.image.title'], f.digest]),
    ).toEqual([
      ['acme_2.0.dsc', `sha256:${sha(dsc)}`],
      ['acme_2.0.tar.xz', `sha256:${sha(tarball)}`],
    ]);
    expect(got.files.every((f) => f.mediaType === MediaTypes.debianSourceFile)).toBe(true);
    expect(await store.readBlob(got.files[1]!.digest, got.files[1]!.size)).toEqual(tarball);
  });

  test('refuses a file whose bytes or size are not what the .dsc says, and keeps no blob of it', async () => {
    writeDsc(dscOf('0'.repeat(64), tarball.length));
    await expect(
      storeSourcePackage(store, path.join(dir, 'src'), 'acme_2.0.dsc'),
    ).rejects.toBeInstanceOf(DigestMismatchError);
    expect(await store.hasBlob(`sha256:${sha(tarball)}` as Digest)).toBe(false);
    writeDsc(dscOf(sha(tarball), tarball.length + 1));
    await expect(
      storeSourcePackage(store, path.join(dir, 'src'), 'acme_2.0.dsc'),
    ).rejects.toBeInstanceOf(SizeMismatchError);
  });

  test('a file the .dsc lists that is not beside it is named', async () => {
    fs.rmSync(path.join(dir, 'src', 'acme_2.0.tar.xz'));
    writeDsc(dscOf(sha(tarball), tarball.length));
    const e = await storeSourcePackage(store, path.join(dir, 'src'), 'acme_2.0.dsc').catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(NotFoundError);
    expect((e as Error).message).toBe('acme_2.0.dsc lists acme_2.0.tar.xz, which is not beside it');
  });
});

describe('the DEBUILD cache entry', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-debsrc-cache-'));
    store = await Store.open(path.join(dir, 'store'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('is a hit only with its source files in the store; gc keeps them with the entry', async () => {
    const deb = await store.putBlob(Readable.from([Buffer.from('a .deb')]));
    const dsc = await store.putBlob(Readable.from([Buffer.from('a .dsc')]));
    const key = `sha256:${'1'.repeat(64)}` as Digest;
    const entry: DebuildEntry = {
      key,
      kind: 'debuild',
      source: './acme',
      debs: [
        {
          blob: { mediaType: MediaTypes.debianPackage, ...deb },
          filename: 'acme_2.0_all.deb',
          package: 'acme',
          version: '2.0',
          architecture: 'all',
        },
      ],
      sources: [sourceFileDescriptor('acme_2.0.dsc', dsc.digest, dsc.size)],
    };
    await writeDebuildCache(store, entry);
    expect(await readDebuildCache(store, key)).toEqual(entry);
    await store.gc();
    expect(await store.hasBlob(dsc.digest)).toBe(true);
    // An entry that keeps no source package (as DEBUILD made before it kept one) is a miss.
    await writeDebuildCache(store, { ...entry, sources: [] });
    expect(await readDebuildCache(store, key)).toBeUndefined();
  });
});
