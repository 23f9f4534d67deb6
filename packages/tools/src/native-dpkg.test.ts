import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { NATIVE_DPKG_DIR, dpkgSeries, kitRefusal, nativeDpkg, parseLdd } from './native-dpkg';
import { runTool } from './spawn';

test("dpkgSeries: a dpkg version's release series", () => {
  expect(dpkgSeries('1.21.22')).toBe('1.21');
  expect(dpkgSeries('1.21.23')).toBe('1.21');
  expect(dpkgSeries('1.22.6+b1')).toBe('1.22');
  expect(dpkgSeries('1.22.21ubuntu3')).toBe('1.22');
  expect(dpkgSeries('2')).toBe('2');
  expect(dpkgSeries('1:1.21.1')).toBe('1.21');
  expect(dpkgSeries('1.21')).toBe('1.21');
});

test("kitRefusal: the host's dpkg unpacks into a root whose dpkg is of its series, only", () => {
  const kit = { version: '1.21.22' };
  expect(kitRefusal(kit, '1.21.22')).toBeUndefined();
  expect(kitRefusal(kit, '1.21.23')).toBeUndefined();
  expect(kitRefusal(kit, '1.22.21')).toBe(
    "this root's dpkg 1.22.21 is not of the host's dpkg 1.21.22 series: unpacking under emulation",
  );
  expect(kitRefusal(kit, undefined)).toBe('this root has no dpkg: unpacking under emulation');
});

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
    // A kit a killed build left half-made an hour ago goes; the kit is made whole or not at all.
    const stale = path.join(cache, '.tmp-killed');
    await fsp.mkdir(stale);
    await fsp.utimes(stale, new Date(Date.now() - 7200_000), new Date(Date.now() - 7200_000));
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

  test("the wrapper hands --unpack to the host's dpkg while the root's dpkg is of its series", async () => {
    const kit = await nativeDpkg(cache);
    if (kit === undefined) throw new Error('no kit');
    // The root's dpkg and dpkg-query, as the wrapper finds them on PATH inside a root.
    const bin = await fsp.mkdtemp(path.join(cache, 'bin-'));
    const fake = async (name: string, body: string) =>
      fsp.writeFile(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    await fake('dpkg', 'echo "root dpkg $*"');
    const wrapper = path.join(kit.dir, 'dpkg-wrapper');
    const run = async (rootVersion: string, args: string[]) => {
      await fake('dpkg-query', `echo -n ${rootVersion}`);
      return promisify(execFile)('/bin/sh', [wrapper, ...args], {
        env: { PATH: `${bin}:/usr/bin:/bin` },
      }).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
      );
    };
    const series = dpkgSeries(kit.version);
    // Configuring and everything else: the root's own dpkg.
    expect(await run(`${series}.99`, ['--configure', '-a'])).toEqual({
      code: 0,
      out: 'root dpkg --configure -a\n',
    });
    // A root whose dpkg is of another series (a dist-upgrade in the step) unpacks with it.
    expect(await run('9.1.0', ['--status-fd', '3', '--unpack', 'a.deb'])).toEqual({
      code: 0,
      out: "strata: this root's dpkg is now 9.1.0: unpacking with it\nroot dpkg --status-fd 3 --unpack a.deb\n",
    });
    // Of the series: the host's dpkg at NATIVE_DPKG_DIR, which exists only inside a step.
    const native = await run(`${series}.99`, ['--unpack', 'a.deb']);
    expect(native.out).not.toContain('root dpkg');
    expect(native.code).toBe(127);
  });
});
