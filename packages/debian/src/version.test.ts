import { execFileSync } from 'node:child_process';
import { compareDebianVersions } from './version';

/**
 * Versions in dpkg's order, as chains: `<` before a greater version, `=` between equal ones.
 * Every pair of a chain is compared, both ways round and each version with itself.
 */
const CHAINS = [
  '1.0~~ < 1.0~ < 1.0~rc1 < 1.0 = 0:1.0 < 1.0-1 < 1.0-1.1',
  '1.0 < 1.0B < 1.0a < 1.0+ < 1.0+b1',
  '1.0 < 1.1 = 1.001 < 1.9 < 1.10 < 2.0 < 1:1.0',
  '1.2.3 < 1.2.3.0',
  '3.0~alpha < 3.0~beta',
  '2.36-9+deb12u9 < 2.36-9+deb12u10 < 7.88.1-10+deb12u5 < 7.88.1-10+deb12u12',
  '1:9.2p1-2+deb12u3 < 1:9.2p1-2+deb12u5',
];

/** The versions of a chain, each with its rank in it (equal versions share one). */
function ranked(chain: string): Array<[string, number]> {
  const words = chain.split(' ');
  const out: Array<[string, number]> = [[words[0] as string, 0]];
  for (let i = 1; i + 1 < words.length; i += 2) {
    const below = out[out.length - 1]?.[1] ?? 0;
    out.push([words[i + 1] as string, words[i] === '<' ? below + 1 : below]);
  }
  return out;
}

describe('compareDebianVersions', () => {
  test.each(CHAINS)('%s', (chain) => {
    const versions = ranked(chain);
    for (const [a, ra] of versions) {
      for (const [b, rb] of versions) {
        const want = ra < rb ? -1 : ra > rb ? 1 : 0;
        expect([a, b, compareDebianVersions(a, b)]).toEqual([a, b, want]);
      }
    }
  });

  test('sorts as dpkg --compare-versions does, every pair', () => {
    const sorted = [
      ...new Set([...CHAINS.flatMap((c) => ranked(c).map(([v]) => v)), ...MORE]),
    ].sort(compareDebianVersions);
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
