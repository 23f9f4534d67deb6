import { Readable } from 'node:stream';
import { InvalidDocumentError } from '@strata/oci';
import {
  clearsignedText,
  deb822Paragraphs,
  parseDsc,
  releaseChecksums,
  scanSourcesIndex,
} from './source-index';

const H1 = 'a'.repeat(64);
const H2 = 'b'.repeat(64);
const H3 = 'c'.repeat(64);

const SOURCES = `Package: libcap-ng
Binary: libcap-ng-dev, libcap-ng0, libcap-ng-utils, python3-cap-ng
Version: 0.8.3-1
Directory: pool/main/libc/libcap-ng
Checksums-Sha256:
 ${H1} 1634 libcap-ng_0.8.3-1.dsc
 ${H2} 455383 libcap-ng_0.8.3.orig.tar.gz
 ${H3} 10488 libcap-ng_0.8.3-1.debian.tar.xz

Package: libcap-ng
Version: 0.8.2-1
Directory: pool/main/libc/libcap-ng
Checksums-Sha256:
 ${H1} 1 libcap-ng_0.8.2-1.dsc

Package: zlib
Version: 1:1.2.13.dfsg-1
Directory: pool/main/z/zlib
Checksums-Sha256:
 ${H3} 2 zlib_1.2.13.dfsg-1.dsc
`;

/** A stream that cuts its text at awkward places, as a network read does. */
function chunked(text: string, size: number): Readable {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
  return Readable.from(parts.map((p) => Buffer.from(p)));
}

describe('Sources indices', () => {
  test('finds the wanted packages, each version by name=version, whatever the chunking', async () => {
    for (const size of [1, 7, 64, 100000]) {
      const found = await scanSourcesIndex(
        chunked(SOURCES, size),
        new Set(['libcap-ng', 'zlib']),
        'test',
      );
      expect([...found.keys()].sort()).toEqual([
        'libcap-ng=0.8.2-1',
        'libcap-ng=0.8.3-1',
        'zlib=1:1.2.13.dfsg-1',
      ]);
      const p = found.get('libcap-ng=0.8.3-1');
      expect(p?.directory).toBe('pool/main/libc/libcap-ng');
      expect(p?.dsc).toEqual({ name: 'libcap-ng_0.8.3-1.dsc', sha256: H1, size: 1634 });
      expect(p?.files.map((f) => f.name)).toEqual([
        'libcap-ng_0.8.3-1.debian.tar.xz',
        'libcap-ng_0.8.3-1.dsc',
        'libcap-ng_0.8.3.orig.tar.gz',
      ]);
    }
  });

  test('parses only what is wanted', async () => {
    const found = await scanSourcesIndex(chunked(SOURCES, 50), new Set(['zlib']), 'test');
    expect([...found.keys()]).toEqual(['zlib=1:1.2.13.dfsg-1']);
  });

  test('refuses a file name that could leave the folder, a bad checksum line, a bad Directory', async () => {
    const bad = [
      SOURCES.replace('libcap-ng_0.8.3.orig.tar.gz', '../../etc/passwd'),
      SOURCES.replace(`${H2} 455383`, `${H2.slice(1)} 455383`),
      SOURCES.replace('Directory: pool/main/libc/libcap-ng', 'Directory: ../pool'),
      SOURCES.replace(` ${H1} 1634 libcap-ng_0.8.3-1.dsc\n`, ''),
    ];
    for (const text of bad) {
      await expect(
        scanSourcesIndex(chunked(text, 64), new Set(['libcap-ng']), 'test'),
      ).rejects.toBeInstanceOf(InvalidDocumentError);
    }
  });

  test('deb822Paragraphs splits on blank lines across chunks', async () => {
    const got: string[] = [];
    for await (const p of deb822Paragraphs(chunked('A: 1\n\n\nB: 2\nC: 3\n\nD: 4', 3))) got.push(p);
    expect(got).toEqual(['A: 1', 'B: 2\nC: 3', 'D: 4']);
  });
});

describe('.dsc and Release files', () => {
  const DSC = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Format: 3.0 (quilt)
Source: libcap-ng
Binary: libcap-ng-dev, libcap-ng0,
 libcap-ng-utils
Version: 0.8.3-1
Checksums-Sha256:
 ${H2} 455383 libcap-ng_0.8.3.orig.tar.gz
 ${H3} 10488 libcap-ng_0.8.3-1.debian.tar.xz
- -----not a signature line
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCgAdFiEE
-----END PGP SIGNATURE-----
`;

  test('a clearsigned .dsc: its files, without the armour, dash-escaping undone', () => {
    expect(clearsignedText(DSC)).toContain('\n-----not a signature line\n');
    expect(clearsignedText(DSC)).not.toContain('SIGNATURE-----');
    const dsc = parseDsc(DSC, 'test.dsc');
    expect(dsc.source).toBe('libcap-ng');
    expect(dsc.version).toBe('0.8.3-1');
    expect(dsc.binaries).toEqual(['libcap-ng-dev', 'libcap-ng0', 'libcap-ng-utils']);
    expect(dsc.files).toEqual([
      { name: 'libcap-ng_0.8.3-1.debian.tar.xz', sha256: H3, size: 10488 },
      { name: 'libcap-ng_0.8.3.orig.tar.gz', sha256: H2, size: 455383 },
    ]);
  });

  test('a .dsc without checksums or a source name is refused', () => {
    expect(() => parseDsc('Source: x\nVersion: 1\n', 'x.dsc')).toThrow(InvalidDocumentError);
    expect(() => parseDsc(`Version: 1\nChecksums-Sha256:\n ${H1} 1 x.tar\n`, 'x.dsc')).toThrow(
      InvalidDocumentError,
    );
  });

  test('a Release file lists each index by path with its sha256 and size', () => {
    const release = `Origin: Debian
Date: Sat, 11 Jul 2026 10:16:37 UTC
MD5Sum:
 9de2ebf49f09705996b7fb88d05ce061 50724597 main/source/Sources
SHA256:
 ${H1} 50724597 main/source/Sources
 ${H2.toUpperCase()} 12729667 main/source/Sources.gz
`;
    const sums = releaseChecksums(release);
    expect(sums.get('main/source/Sources.gz')).toEqual({
      name: 'main/source/Sources.gz',
      sha256: H2,
      size: 12729667,
    });
    expect(sums.size).toBe(2);
  });
});
