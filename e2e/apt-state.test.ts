/**
 * The store's apt state is shared by every build on the store, so nothing a step does may change
 * what a later build reads as apt's verified state. A RUN once appended an entry to the shared
 * Packages file and put its own .deb beside the cached ones, and another build's `INSTALL
 * evilpkg` then installed it; a write into a cached .deb changed the store's copy. Here a RUN
 * tampers with the lists and the .debs, and also replaces apt-get so that the next INSTALL of the
 * same build tampers after apt has run; a later build must see the store's state as it was.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { SLOW, buildDeb, cleanupTmp, show, strata, strataOk } from './helpers';
import { storeWithBase } from './fixtures/build/harness';

jest.setTimeout(SLOW);

afterAll(() => cleanupTmp());

/** Every file of the store's apt lists and .debs, path → sha256. */
function aptFiles(store: string): Record<string, string> {
  const out: Record<string, string> = {};
  const apt = path.join(store, '.strata', 'apt');
  for (const dir of [
    'archives',
    ...fs.readdirSync(path.join(apt, 'lists')).map((k) => `lists/${k}`),
  ])
    for (const name of fs.readdirSync(path.join(apt, dir))) {
      const file = path.join(apt, dir, name);
      if (fs.statSync(file).isFile())
        out[`${dir}/${name}`] = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    }
  return out;
}

test("a step's tampering with the apt lists and .debs never reaches another build", async () => {
  const { work, store, sources } = await storeWithBase();
  const context = (name: string, stratafile: string) => {
    const dir = path.join(work, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'Stratafile'), stratafile);
    return dir;
  };
  const build = (tag: string, dir: string) =>
    strata(['build', '-q', '--no-cache', '--apt-sources', sources, '-t', tag, dir], { store });

  const warm = await build('warm:1', context('warm', 'FROM base:v1\nINSTALL hello\n'));
  expect(show(warm)).toMatch(/^exit 0/);
  const before = aptFiles(store);
  expect(Object.keys(before).some((f) => /_Packages$/.test(f))).toBe(true);
  expect(Object.keys(before)).toContain('archives/hello_2.10-3_amd64.deb');

  const evil = context('evil', '');
  const deb = await buildDeb(
    evil,
    'evilpkg',
    {},
    {
      'etc/evil-marker': { text: 'pwned\n', mode: 0o644 },
    },
  );
  const size = fs.statSync(deb).size;
  const hash = createHash('sha256').update(fs.readFileSync(deb)).digest('hex');
  fs.writeFileSync(
    path.join(evil, 'poison.sh'),
    [
      'for f in /run/strata/lists/*_Packages; do',
      '  cat "$f" > /tmp/p',
      `  printf '\\nPackage: evilpkg\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: x <x@x.invalid>\\nFilename: pool/main/e/evilpkg/evilpkg_1.0_all.deb\\nSize: ${size}\\nSHA256: ${hash}\\nDescription: evil\\n' >> /tmp/p`,
      '  rm -f "$f" && cp /tmp/p "$f"',
      'done',
      'cp /tmp/p /run/strata/lists/deb.debian.org_debian_dists_bookworm_contrib_binary-amd64_Packages',
      'cp /opt/evil/evilpkg_1.0_all.deb /run/strata/archives/',
      'for d in /run/strata/archives/*.deb; do printf XXXX | dd of="$d" conv=notrunc 2>/dev/null; done',
      'exit 0',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(evil, 'Stratafile'),
    [
      'FROM base:v1',
      // A RUN does not see the build context: the poison comes in by COPY.
      'COPY poison.sh evilpkg_1.0_all.deb /opt/evil/',
      'RUN sh /opt/evil/poison.sh',
      'RUN mv /usr/bin/apt-get /usr/bin/apt-get.real && printf \'#!/bin/sh\\n/usr/bin/apt-get.real "$@" || exit\\nsh /opt/evil/poison.sh\\n\' > /usr/bin/apt-get && chmod 755 /usr/bin/apt-get',
      'INSTALL hello',
      '',
    ].join('\n'),
  );
  const tampered = await build('evil:1', evil);
  expect(show(tampered)).toMatch(/^exit 0/);
  expect(aptFiles(store)).toEqual(before);

  const victim = await build('victim:1', context('victim', 'FROM base:v1\nINSTALL evilpkg\n'));
  expect(show(victim)).toMatch(/^exit 1/);
  expect(victim.stderr).toContain('Unable to locate package evilpkg');
  // The lists still parse, and the cached .deb is still the mirror's.
  await strataOk(
    [
      'build',
      '-q',
      '--no-cache',
      '--apt-sources',
      sources,
      '-t',
      'after:1',
      path.join(work, 'warm'),
    ],
    { store },
  );
  expect(aptFiles(store)).toEqual(before);
});
