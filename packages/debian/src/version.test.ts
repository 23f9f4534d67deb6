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

  test('sorts as dpkg --compare-versions does, every pair', () => {
    const sorted = [...new Set([...PAIRS.flatMap(([a, b]) => [a, b]), ...MORE])].sort(
      compareDebianVersions,
    );
    // dpkg orders each neighbour; its order being total, ranks along the chain give every pair.
    const steps = execFileSync('sh', ['-c', NEIGHBOURS, 'sh', ...sorted], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(steps).toHaveLength(sorted.length - 1);
    const rank = [0];
    for (const [i, s] of steps.entries()) rank.push((rank[i] ?? 0) + (s === 'lt' ? 1 : 0));
    expect(steps.filter((s) => s !== 'lt' && s !== 'eq')).toEqual([]);
    for (const [i, a] of sorted.entries()) {
      for (const [j, b] of sorted.entries()) {
        const want = Math.sign((rank[i] ?? 0) - (rank[j] ?? 0));
        expect([a, b, Math.sign(compareDebianVersions(a, b))]).toEqual([a, b, want]);
      }
    }
  });
});

/** Prints lt, eq or gt for each neighbouring pair of its arguments, as dpkg compares them. */
const NEIGHBOURS = `
a=$1; shift
for b in "$@"; do
  if dpkg --compare-versions "$a" lt "$b"; then echo lt
  elif dpkg --compare-versions "$a" eq "$b"; then echo eq
  else echo gt; fi
  a=$b
done`;

/** More versions for the dpkg comparison: epochs, revisions, tildes, letters and long numbers. */
const MORE = [
  '0',
  '0~',
  '0~~',
  '0.0',
  '1',
  '1.0-0',
  '1.00',
  '1.0~rc1-1',
  '1.0-1~bpo12+1',
  '1.0-1+b1',
  '1.0-10',
  '1.0-2',
  '1.0+dfsg-1',
  '1.0-1-1',
  '1.0-a',
  '1.0-A',
  '1.0a~',
  '1.0a.1',
  '1.0.0',
  '1:0',
  '2:0.1',
  '10:1',
  '3.0~beta1',
  '20230311',
  '20230311.1',
  '99999999999999999999',
  '100000000000000000000',
  '1.0-0ubuntu1',
  '2.0~git20200101.abc-1',
];
