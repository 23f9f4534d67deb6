import type { DebianPackage } from '@strata/oci';
import { notInstalled } from './package-args';

const installed: DebianPackage[] = [
  { name: 'curl', version: '7.88.1-10', architecture: 'amd64', source: 'curl' },
  { name: 'tzdata', version: '2024a-0', architecture: 'all', source: 'tzdata' },
];

test('notInstalled names what apt would silently skip, and leaves patterns to apt', () => {
  expect(notInstalled(installed, ['curl', 'mosquito', 'tzdata:all', 'curl:arm64', 'lib*'])).toEqual(
    ['mosquito', 'curl:arm64'],
  );
});
