import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NATIVE_DPKG_DIR, nativeDpkg, parseLdd } from './native-dpkg';
import { runTool } from './spawn';

describe('parseLdd', () => {
  test('keeps the libraries resolved to a file, not the vDSO or the loader', () => {
    const text = [
      '/usr/bin/dpkg:',
      '\tlinux-vdso.so.1 (0x00007ffd6b7f5000)',
      '\tlibmd.so.0 => /lib/x86_64-linux-gnu/libmd.so.0 (0x00007f27a4a5e000)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f27a4600000)',
      '\t/lib64/ld-linux-x86-64.so.2 (0x00007f27a4a80000)',
      '/usr/bin/dpkg-deb:',
      '\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f27a4a40000)',
      '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f27a4600000)',
    ].join('\n');
    expect([...parseLdd(text)]).toEqual([
      ['libmd.so.0', '/lib/x86_64-linux-gnu/libmd.so.0'],
      ['libc.so.6', '/lib/x86_64-linux-gnu/libc.so.6'],
      ['libz.so.1', '/lib/x86_64-linux-gnu/libz.so.1'],
    ]);
  });
});

describe('nativeDpkg', () => {
  let cache: string;
  beforeAll(async () => {
    cache = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-native-dpkg-'));
  });
  afterAll(() => fsp.rm(cache, { recursive: true, force: true }));

  test("makes a kit of the host's dpkg that loads from its mount point, once", async () => {
    const kit = await nativeDpkg(cache);
    if (kit === undefined) throw new Error('no kit: is patchelf installed (scripts/setup.sh)?');
    const host = (
      await runTool('dpkg-query', ['--showformat=${Version}', '--show', 'dpkg'])
    ).trim();
    expect(kit.version).toBe(host);
    expect(kit.wrapper).toBe(`${NATIVE_DPKG_DIR}/dpkg-wrapper`);
    for (const bin of ['dpkg', 'path/dpkg-deb']) {
      const file = path.join(kit.dir, bin);
      expect((await runTool('patchelf', ['--print-interpreter', file])).trim()).toBe(
        `${NATIVE_DPKG_DIR}/ld.so`,
      );
      expect((await runTool('patchelf', ['--print-rpath', file])).trim()).toBe(
        `${NATIVE_DPKG_DIR}/lib`,
      );
      // Run through the kit's own loader and libraries, as it runs inside a root.
      const out = await runTool(path.join(kit.dir, 'ld.so'), [
        '--library-path',
        path.join(kit.dir, 'lib'),
        file,
        '--version',
      ]);
      expect(out).toContain(`version ${host} `);
    }
    const wrapper = await fsp.readFile(path.join(kit.dir, 'dpkg-wrapper'), 'utf8');
    expect(wrapper).toContain(`exec ${NATIVE_DPKG_DIR}/dpkg --force-architecture "$@"`);
    expect(wrapper).toContain('exec dpkg "$@"');

    const made = (await fsp.stat(path.join(kit.dir, 'dpkg'))).mtimeMs;
    expect(await nativeDpkg(cache)).toEqual(kit);
    expect((await fsp.stat(path.join(kit.dir, 'dpkg'))).mtimeMs).toBe(made);
    // Nothing half-made is left beside it.
    expect(await fsp.readdir(cache)).toEqual([path.basename(kit.dir)]);
  });
});
