import { parsePackagesIndex } from './packages-index';

test('parsePackagesIndex keeps the highest version per name and architecture', () => {
  const text = [
    'Package: curl\nVersion: 7.88.1-10+deb12u5\nArchitecture: amd64\n',
    'Package: curl\nVersion: 7.88.1-10+deb12u12\nArchitecture: amd64\n',
    'Package: curl\nVersion: 8.0-1\nArchitecture: arm64\n',
    'Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n',
    'Package: tzdata\nVersion: 2025b-0+deb12u1\nArchitecture: all\nDescription: x\n multi\n line\n',
  ].join('\n');
  const m = parsePackagesIndex(text);
  expect(Object.fromEntries(m)).toEqual({
    'curl:amd64': '7.88.1-10+deb12u12',
    'curl:arm64': '8.0-1',
    'tzdata:all': '2025b-0+deb12u1',
  });
});

// Found by fuzzing: `\s*` ran across the line end, so an empty field took the next field's name
// as its value (here: version "Package:").
test('an empty field never takes the next line as its value', () => {
  expect(parsePackagesIndex('Version: \nPackage: curl').size).toBe(0);
  expect(parsePackagesIndex('Package:\nVersion: 1.0\nArchitecture:\n').size).toBe(0);
  expect(
    Object.fromEntries(parsePackagesIndex('Package: curl\nArchitecture:\nVersion: 1.0')),
  ).toEqual({
    'curl:all': '1.0',
  });
});
