import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError, sha256 } from '@strata/oci';
import { formatSources, hostSources, makeSources, parseSources } from './sources';

test('one-line sources: deb lines with options; deb-src and comments dropped', () => {
  const text = [
    '# the main archive',
    'deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] http://deb.debian.org/debian/ bookworm main contrib # trailing',
    'deb-src http://deb.debian.org/debian bookworm main',
    '   ',
    'deb file:///srv/flat ./',
  ].join('\n');
  expect(parseSources(text)).toEqual([
    {
      uri: 'http://deb.debian.org/debian',
      suite: 'bookworm',
      components: ['main', 'contrib'],
      options: { arch: 'amd64', 'signed-by': '/usr/share/keyrings/debian.gpg' },
    },
    { uri: 'file:///srv/flat', suite: './', components: [], options: {} },
  ]);
  expect(() => parseSources('deb http://x\n')).toThrow(InvalidArgumentError);
  expect(() => parseSources('rpm http://x y z\n')).toThrow(
    /cannot parse line "rpm http:\/\/x y z"/,
  );
});

test('deb822 sources: one entry per URI and suite, disabled and deb-src stanzas dropped', () => {
  const text = `# comment
Types: deb deb-src
URIs: http://deb.debian.org/debian/ http://mirror.example/debian
Suites: bookworm
  bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
Arch: amd64

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
`;
  const options = { 'signed-by': '/usr/share/keyrings/debian-archive-keyring.gpg', arch: 'amd64' };
  expect(parseSources(text)).toEqual([
    { uri: 'http://deb.debian.org/debian', suite: 'bookworm', components: ['main'], options },
    {
      uri: 'http://deb.debian.org/debian',
      suite: 'bookworm-updates',
      components: ['main'],
      options,
    },
    { uri: 'http://mirror.example/debian', suite: 'bookworm', components: ['main'], options },
    {
      uri: 'http://mirror.example/debian',
      suite: 'bookworm-updates',
      components: ['main'],
      options,
    },
  ]);
});

test('both formats come out as the same one-line text, which is what the digest covers', () => {
  const oneLine = makeSources(
    'deb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n',
    'one-line',
  );
  const deb822 = makeSources(
    'Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: bookworm\nComponents: main\nSigned-By: /k.gpg\n',
    'deb822',
  );
  expect(oneLine.text).toBe('deb [signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n');
  expect(deb822.text).toBe(oneLine.text);
  expect(deb822.digest).toBe(sha256(oneLine.text));
  expect(deb822.origin).toBe('deb822');
  expect(formatSources(parseSources(oneLine.text))).toBe(oneLine.text);
  expect(() => makeSources('deb-src http://x bookworm main\n', 'only-src')).toThrow(
    'only-src: no deb sources',
  );
});

test("the host's sources: sources.list, then sources.list.d's .list and .sources by name", async () => {
  const etc = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-sources-'));
  try {
    fs.mkdirSync(path.join(etc, 'sources.list.d'));
    fs.writeFileSync(path.join(etc, 'sources.list'), 'deb http://a.example/debian bookworm main\n');
    fs.writeFileSync(
      path.join(etc, 'sources.list.d', 'b.sources'),
      'Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n',
    );
    fs.writeFileSync(
      path.join(etc, 'sources.list.d', 'a.list'),
      'deb http://c.example/debian bookworm contrib\n',
    );
    fs.writeFileSync(path.join(etc, 'sources.list.d', 'z.list.save'), 'deb http://no x y\n');
    const s = await hostSources(etc);
    expect(s.origin).toBe('the build host');
    expect(s.text).toBe(
      [
        'deb http://a.example/debian bookworm main',
        'deb http://c.example/debian bookworm contrib',
        'deb http://b.example/debian bookworm main',
        '',
      ].join('\n'),
    );
    fs.rmSync(path.join(etc, 'sources.list'));
    expect((await hostSources(etc)).entries).toHaveLength(2);
    await expect(hostSources(path.join(etc, 'nothing'))).rejects.toThrow(
      'the build host: no deb sources',
    );
  } finally {
    fs.rmSync(etc, { recursive: true, force: true });
  }
});
