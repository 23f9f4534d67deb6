import { parseDeb822 } from './deb822';

test('deb822: paragraphs of lower-cased fields, continuation lines joined by newlines', () => {
  const text = [
    'Package: base-files',
    'Status: install ok installed',
    'Description: Debian base system miscellaneous files',
    ' This package contains the basic filesystem hierarchy.',
    ' .',
    '\tA tab continues too.',
    '   ',
    'Package: libc6',
    'Conffiles:',
    ' /etc/ld.so.conf.d/x86_64-linux-gnu.conf 593ad12389ab2b6f952e7ede67b8fbbf',
    'no colon here',
    '',
    '',
    'Package:   dash  ',
  ].join('\n');
  expect(parseDeb822(text).map((p) => Object.fromEntries(p))).toEqual([
    {
      package: 'base-files',
      status: 'install ok installed',
      description:
        'Debian base system miscellaneous files\nThis package contains the basic filesystem hierarchy.\n.\nA tab continues too.',
    },
    {
      package: 'libc6',
      conffiles: '\n/etc/ld.so.conf.d/x86_64-linux-gnu.conf 593ad12389ab2b6f952e7ede67b8fbbf',
    },
    { package: 'dash' },
  ]);
  expect(parseDeb822('\n\n')).toEqual([]);
});
