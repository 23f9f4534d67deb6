import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stageEsp } from './esp';

let root: string;
let out: string;

beforeEach(() => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-esp-'));
  root = path.join(base, 'root');
  out = path.join(base, 'out');
  fs.mkdirSync(out, { recursive: true });
  fs.mkdirSync(path.join(root, 'boot'), { recursive: true });
  fs.writeFileSync(path.join(root, 'boot/vmlinuz-6.1.0-99'), 'kernel\n');
  fs.mkdirSync(path.join(root, 'usr/lib/systemd/boot/efi'), { recursive: true });
  for (const a of ['x64', 'aa64', 'arm', 'ia32'])
    fs.writeFileSync(path.join(root, `usr/lib/systemd/boot/efi/systemd-boot${a}.efi`), `${a}\n`);
});

afterEach(() => fs.rmSync(path.dirname(root), { recursive: true, force: true }));

it.each([
  ['amd64', 'x64'],
  ['arm64', 'aa64'],
  ['armhf', 'arm'],
  ['i386', 'ia32'],
])('stages systemd-boot for %s as EFI/BOOT/BOOT<%s>.EFI', (arch, efi) => {
  stageEsp(root, out, arch, 'PARTUUID=x', { ptable: 'gpt', line: 1 });
  const upper = efi.toUpperCase();
  expect(fs.readFileSync(path.join(out, `EFI/BOOT/BOOT${upper}.EFI`), 'utf8')).toBe(`${efi}\n`);
  expect(fs.readFileSync(path.join(out, `EFI/systemd/systemd-boot${efi}.efi`), 'utf8')).toBe(
    `${efi}\n`,
  );
});

it('refuses an architecture Debian builds no systemd-boot for, by its Debian name', () => {
  expect(() => stageEsp(root, out, 'armel', undefined, { ptable: 'gpt', line: 1 })).toThrow(
    'bootimg-efi: no systemd-boot for the armel architecture',
  );
});
