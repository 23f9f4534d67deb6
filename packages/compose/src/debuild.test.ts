import { buildDependsOf } from './debuild-key';

test('the names in Build-Depends, -Arch and -Indep, with alternatives, versions, arches and profiles stripped', () => {
  const control = [
    'Source: agent',
    'Build-Depends: debhelper-compat (= 13),',
    ' libfoo-dev:native (>= 1.2) [amd64] <!nocheck>,',
    ' libbar-dev | libbaz-dev',
    'Build-Depends-Arch: libarch-dev',
    'Build-Depends-Indep: python3-sphinx <!nodoc>',
    '',
    'Package: agent',
    'Depends: not-a-build-dep',
    '',
  ].join('\n');
  expect(buildDependsOf(control)).toEqual([
    'debhelper-compat',
    'libarch-dev',
    'libbar-dev',
    'libbaz-dev',
    'libfoo-dev',
    'python3-sphinx',
  ]);
  expect(buildDependsOf('Source: x\n')).toEqual([]);
});
