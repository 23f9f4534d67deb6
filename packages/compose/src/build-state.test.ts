import { makeSources } from '@strata/debian';
import type { DebianPackage, Digest, LayerRecord } from '@strata/oci';
import {
  StageState,
  packageDelta,
  recordAptSources,
  shadowedBy,
  shadowedPackages,
} from './build-state';

test('recordAptSources keeps each deb entry once, in first use order, without credentials', () => {
  const state = { aptSources: ['deb http://base.example/debian bookworm main'] } as StageState;
  recordAptSources(
    state,
    makeSources(
      'deb http://user:secret@mirror.example/debian bookworm main contrib\n' +
        'deb http://base.example/debian bookworm main\n' +
        'deb-src http://mirror.example/debian bookworm main\n',
      'test',
    ),
  );
  expect(state.aptSources).toEqual([
    'deb http://base.example/debian bookworm main',
    'deb http://mirror.example/debian bookworm main contrib',
  ]);
  expect(JSON.stringify(state.aptSources)).not.toContain('secret');
});

const pkg = (name: string, version: string): DebianPackage => ({
  name,
  version,
  architecture: 'amd64',
  source: name,
});
const diff = (n: number) => `sha256:${String(n).repeat(64)}` as Digest;

test('packageDelta names removed packages with their versions, and gives the removed and replaced ones', () => {
  const d = packageDelta(
    [pkg('a', '1'), pkg('b', '1'), pkg('c', '1')],
    [pkg('a', '1'), pkg('b', '2'), pkg('d', '1')],
  );
  expect(d.added).toEqual(['b=2', 'd=1']);
  expect(d.removed).toEqual(['c=1']);
  expect(d.gone.map((p) => `${p.name}=${p.version}`)).toEqual(['b=1', 'c=1']);
});

test("a shadowed package is held by the topmost layer that added its version, else by the base's", () => {
  const lower: Array<{ diffId: Digest; record: LayerRecord }> = [
    { diffId: diff(1), record: { diffId: diff(1), createdBy: 'base' } },
    {
      diffId: diff(2),
      record: { diffId: diff(2), createdBy: 'INSTALL b', packagesAdded: ['b=1'] },
    },
    { diffId: diff(3), record: { diffId: diff(3), createdBy: 'RUN x' } },
  ];
  expect(shadowedBy([pkg('b', '1'), pkg('c', '1')], lower).map((p) => [p.name, p.layer])).toEqual([
    ['b', diff(2)],
    ['c', diff(1)],
  ]);
  // What the final rootfs has again at that version is not shadowed; each is listed once.
  const state = {
    packages: [pkg('c', '1')],
    shadowed: [
      { ...pkg('b', '1'), layer: diff(2) },
      { ...pkg('c', '1'), layer: diff(1) },
      { ...pkg('b', '1'), layer: diff(2) },
      { ...pkg('a', '3'), layer: diff(1) },
    ],
  } as unknown as StageState;
  expect(shadowedPackages(state).map((p) => `${p.name}=${p.version}`)).toEqual(['a=3', 'b=1']);
});
