import { execFileSync } from 'node:child_process';
import { compareDebianVersions } from './version';

const PAIRS: Array<[string, string, number]> = [
  ['1.0', '1.0', 0],
  ['1.0', '1.1', -1],
  ['1.10', '1.9', 1],
  ['1.0~rc1', '1.0', -1],
  ['1.0~~', '1.0~', -1],
  ['1.0', '1.0+b1', -1],
  ['1:1.0', '2.0', 1],
  ['0:1.0', '1.0', 0],
  ['1.0-1', '1.0-1.1', -1],
  ['1.0-1', '1.0', 1],
  ['7.88.1-10+deb12u5', '7.88.1-10+deb12u12', -1],
  ['1:9.2p1-2+deb12u3', '1:9.2p1-2+deb12u5', -1],
  ['2.36-9+deb12u10', '2.36-9+deb12u9', 1],
  ['1.0a', '1.0', 1],
  ['1.0a', '1.0+', -1],
  ['1.001', '1.1', 0],
  ['1.0a', '1.0B', 1],
  ['1.2.3', '1.2.3.0', -1],
  ['3.0~beta', '3.0~alpha', 1],
];

describe('compareDebianVersions', () => {
  test.each(PAIRS)('%s vs %s', (a, b, want) => {
    expect(compareDebianVersions(a, b)).toBe(want);
    expect(compareDebianVersions(b, a)).toBe(want === 0 ? 0 : -want);
  });

  test('agrees with dpkg --compare-versions', () => {
    const versions = [...new Set(PAIRS.flatMap(([a, b]) => [a, b]))];
    for (const a of versions) {
      for (const b of versions) {
        let lt = false;
        try {
          execFileSync('dpkg', ['--compare-versions', a, 'lt', b]);
          lt = true;
        } catch {
          lt = false;
        }
        expect([a, b, compareDebianVersions(a, b) < 0]).toEqual([a, b, lt]);
      }
    }
  });
});
