import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { indexState, releaseDate } from './release';
import { makeSources } from './sources';

test('releaseDate reads the Date field of a Release file (clear-signed or not)', () => {
  const release =
    'Origin: Debian\nSuite: stable\nDate: Sat, 10 May 2025 08:47:33 UTC\nValid-Until: x\n';
  expect(releaseDate(release)).toBe(Date.UTC(2025, 4, 10, 8, 47, 33) / 1000);
  expect(releaseDate(`-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n${release}`)).toBe(
    Date.UTC(2025, 4, 10, 8, 47, 33) / 1000,
  );
  expect(releaseDate('Origin: Debian\n')).toBeUndefined();
  expect(releaseDate('Date: not a date\n')).toBeUndefined();
});

test('indexState dates a mirror state by the newest Release file of its suites', async () => {
  const mirror = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-apt-'));
  try {
    const write = (rel: string, text: string): void => {
      fs.mkdirSync(path.dirname(path.join(mirror, rel)), { recursive: true });
      fs.writeFileSync(path.join(mirror, rel), text);
    };
    write('dists/one/Release', 'Date: Sat, 10 May 2025 08:47:33 UTC\n');
    write('dists/two/InRelease', 'Date: Sun, 11 May 2025 09:00:00 +0000\n');
    write('flat/Packages', 'Package: x\n');
    const uri = `file://${mirror}`;
    const both = makeSources(`deb ${uri} one main\ndeb ${uri} two main\n`, 'test');
    const s = await indexState(both);
    expect(s.date).toBe(Date.UTC(2025, 4, 11, 9, 0, 0) / 1000);
    expect(s.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const hex = (t: string): string => createHash('sha256').update(t).digest('hex');
    expect(s.releases).toEqual([
      hex('Date: Sat, 10 May 2025 08:47:33 UTC\n'),
      hex('Date: Sun, 11 May 2025 09:00:00 +0000\n'),
    ]);

    // A flat repository has no date and no Release file; a changed Release file is a new state.
    const flat = await indexState(makeSources(`deb ${uri} flat/\n`, 'flat'));
    expect(flat.date).toBeUndefined();
    expect(flat.releases).toBeUndefined();
    expect(
      (await indexState(makeSources(`deb ${uri} one main\ndeb ${uri} flat/\n`, 'mixed'))).releases,
    ).toBeUndefined();
    write('dists/one/Release', 'Date: Mon, 12 May 2025 00:00:00 UTC\n');
    const moved = await indexState(both);
    expect(moved.date).toBe(Date.UTC(2025, 4, 12) / 1000);
    expect(moved.digest).not.toBe(s.digest);
  } finally {
    fs.rmSync(mirror, { recursive: true, force: true });
  }
});
