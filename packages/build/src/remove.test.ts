import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DebianPackage } from '@strata/oci';
import { essentialAmong, notInstalled, statusOfLowers } from './remove';

const installed: DebianPackage[] = [
  { name: 'curl', version: '7.88.1-10', architecture: 'amd64', source: 'curl' },
  { name: 'tzdata', version: '2024a-0', architecture: 'all', source: 'tzdata' },
];

test('notInstalled names what apt would silently skip, and leaves patterns to apt', () => {
  expect(notInstalled(installed, ['curl', 'mosquito', 'tzdata:all', 'curl:arm64', 'lib*'])).toEqual(
    ['mosquito', 'curl:arm64'],
  );
});

const STATUS = `Package: e2fsprogs
Status: install ok installed
Protected: yes
Version: 1.47.0-2

Package: dash
Essential: yes
Status: install ok installed
Version: 0.5.12-2

Package: curl
Status: install ok installed
Version: 7.88.1-10

Package: logsave
Status: install ok installed
Important: yes
Version: 1.47.0-2

Package: bash
Essential: yes
Status: deinstall ok config-files
Version: 5.2.15-2
`;

test('essentialAmong finds Essential, Protected and Important installed packages, with the field', () => {
  expect(
    essentialAmong(STATUS, ['curl', 'e2fsprogs', 'dash:amd64', 'bash', 'da*', 'logsave']),
  ).toEqual([
    { name: 'e2fsprogs', field: 'Protected' },
    { name: 'dash:amd64', field: 'Essential' },
    { name: 'logsave', field: 'Important' },
  ]);
});

test('statusOfLowers reads the topmost lower dir that has the dpkg status', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-remove-'));
  try {
    const dirs = ['top', 'mid', 'bottom'].map((n) => path.join(root, n));
    for (const [i, dir] of dirs.entries()) {
      fs.mkdirSync(path.join(dir, 'var/lib/dpkg'), { recursive: true });
      if (i > 0) fs.writeFileSync(path.join(dir, 'var/lib/dpkg/status'), path.basename(dir));
    }
    expect(await statusOfLowers(dirs)).toBe('mid');
    expect(await statusOfLowers(dirs.slice(0, 1))).toBeUndefined();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
