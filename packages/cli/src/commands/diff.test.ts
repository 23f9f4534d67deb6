import type { DiffReport } from '@strata/imager';
import { formatDiff } from './diff';

const side = {
  ref: 'a:1',
  digest: 'sha256:00' as DiffReport['a']['digest'],
  platform: 'linux/amd64',
};

test('Metadata counts changes, not the lines they take (a base chain takes two)', () => {
  const r: DiffReport = {
    a: side,
    b: { ...side, ref: 'b:1' },
    identical: false,
    packages: { added: [], removed: [], changed: [] },
    files: { added: [], removed: [], changed: [] },
    sizes: { depth: 1, total: { path: '', old: 0, new: 0, delta: 0 }, dirs: [] },
    metadata: {
      features: { added: [], removed: [] },
      exclusions: { added: [], removed: [], changed: [] },
      baseChain: { old: [], new: [{ ref: 'base:1', digest: 'sha256:11' }] },
      labels: { added: {}, removed: {}, changed: {} },
      env: { added: {}, removed: {}, changed: {} },
    },
  } as unknown as DiffReport;
  const lines = formatDiff(r);
  expect(lines).toContain('Metadata: 1 change');
  expect(lines.filter((l) => l.includes('base chain') || l.includes('-> base:1'))).toHaveLength(2);
});

test('a file name with a newline or a terminal escape is shown quoted, on its own line', () => {
  const name = 'etc/\x1b[31mRED\nfake';
  const file = { path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1 };
  const r = {
    a: side,
    b: { ...side, ref: 'b:1' },
    identical: false,
    packages: { added: [], removed: [], changed: [] },
    files: { added: [file], removed: [], changed: [] },
    sizes: { depth: 1, total: { path: '', old: 0, new: 1, delta: 1 }, dirs: [] },
    metadata: {
      features: { added: [], removed: [] },
      exclusions: { added: [], removed: [], changed: [] },
      labels: { added: {}, removed: {}, changed: {} },
      env: { added: {}, removed: {}, changed: {} },
    },
  } as unknown as DiffReport;
  const added = formatDiff(r).filter((l) => l.startsWith('  + '));
  expect(added).toHaveLength(1);
  expect(added[0]).toContain('"etc/\\u001b[31mRED\\nfake"');
  expect(added[0]).not.toMatch(/[\x1b\n]/); // eslint-disable-line no-control-regex
});
