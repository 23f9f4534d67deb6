import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  EmulatorMissingError,
  binfmtHandler,
  hostDebianArchitecture,
  parseBinfmtEntry,
  requireBootstrapEmulation,
  requireEmulation,
} from './binfmt';

/** What Debian's qemu-user-static registers for aarch64, as /proc shows it. */
const AARCH64 = `enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: PF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
`;

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-binfmt-'));
});

afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A binfmt_misc directory as the kernel lays it out: `status`, and one file per handler. */
function binfmtDir(status: string, handlers: Record<string, string>): string {
  fs.writeFileSync(path.join(dir, 'status'), `${status}\n`);
  for (const [name, text] of Object.entries(handlers)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

async function missing(p: Promise<unknown>): Promise<EmulatorMissingError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(EmulatorMissingError);
  return e as EmulatorMissingError;
}

test('Debian architectures map to the qemu-user handlers Debian registers', () => {
  expect(binfmtHandler('arm64')).toBe('qemu-aarch64');
  expect(binfmtHandler('armhf')).toBe('qemu-arm');
  expect(binfmtHandler('armel')).toBe('qemu-arm');
  expect(binfmtHandler('i386')).toBe('qemu-i386');
  expect(binfmtHandler('ppc64el')).toBe('qemu-ppc64le');
  expect(binfmtHandler('amd64')).toBe('qemu-x86_64');
  expect(binfmtHandler('hurd-i386')).toBeUndefined();
});

test('a handler file parses into enabled, interpreter and flags', () => {
  expect(parseBinfmtEntry(AARCH64)).toEqual({
    enabled: true,
    interpreter: '/usr/libexec/qemu-binfmt/aarch64-binfmt-P',
    flags: 'PF',
  });
  expect(parseBinfmtEntry(AARCH64.replace('enabled', 'disabled')).enabled).toBe(false);
});

test('the host architecture runs natively, whatever binfmt_misc holds', async () => {
  expect(hostDebianArchitecture('x64')).toBe('amd64');
  expect(hostDebianArchitecture('arm64')).toBe('arm64');
  expect(hostDebianArchitecture('arm')).toBe('armhf');
  const empty = fs.mkdtempSync(path.join(dir, 'unmounted-'));
  expect(await requireEmulation(hostDebianArchitecture(), { binfmtDir: empty })).toEqual({
    native: true,
  });
  expect(await requireEmulation('arm64', { binfmtDir: empty, host: 'arm64' })).toEqual({
    native: true,
  });
  // i386 on amd64 and armhf on arm64 run on the CPU itself where no handler is registered.
  expect(await requireEmulation('i386', { binfmtDir: empty, host: 'amd64' })).toEqual({
    native: true,
  });
  expect(await requireEmulation('armhf', { binfmtDir: empty, host: 'arm64' })).toEqual({
    native: true,
  });
});

test('an enabled handler with the F flag runs the architecture', async () => {
  const d = binfmtDir('enabled', { 'qemu-aarch64': AARCH64 });
  expect(await requireEmulation('arm64', { binfmtDir: d, host: 'amd64' })).toEqual({
    native: false,
    handler: 'qemu-aarch64',
  });
});

test('binfmt_misc not mounted: the error names the architecture and says to mount it', async () => {
  const empty = fs.mkdtempSync(path.join(dir, 'unmounted-'));
  const e = await missing(requireEmulation('arm64', { binfmtDir: empty, host: 'amd64' }));
  expect(e.architecture).toBe('arm64');
  expect(e.code).toBe('UNAVAILABLE');
  expect(e.message).toMatch(/arm64.*binfmt_misc is not mounted/);
  expect(e.hint).toMatch(/mount -t binfmt_misc binfmt_misc/);
  expect(e.hint).toMatch(/qemu-user-static/);
});

test('no handler, a disabled one, or one without F: each a clear error with its fix', async () => {
  const none = await missing(
    requireEmulation('armhf', { binfmtDir: binfmtDir('enabled', {}), host: 'amd64' }),
  );
  expect(none.architecture).toBe('armhf');
  expect(none.message).toMatch(/armhf.*no binfmt_misc handler qemu-arm is registered/);
  expect(none.hint).toMatch(/qemu-user-static and binfmt-support.*scripts\/setup\.sh/);

  const off = await missing(
    requireEmulation('arm64', {
      binfmtDir: binfmtDir('enabled', { 'qemu-aarch64': AARCH64.replace('enabled', 'disabled') }),
      host: 'amd64',
    }),
  );
  expect(off.message).toMatch(/arm64.*qemu-aarch64 is disabled/);
  expect(off.hint).toMatch(/echo 1 > .*qemu-aarch64/);

  const noF = await missing(
    requireEmulation('arm64', {
      binfmtDir: binfmtDir('enabled', { 'qemu-aarch64': AARCH64.replace('PF', 'P') }),
      host: 'amd64',
    }),
  );
  expect(noF.message).toMatch(/lacks the F flag/);

  const global = await missing(
    requireEmulation('arm64', {
      binfmtDir: binfmtDir('disabled', { 'qemu-aarch64': AARCH64 }),
      host: 'amd64',
    }),
  );
  expect(global.message).toMatch(/binfmt_misc is disabled/);

  const unknown = await missing(requireEmulation('hurd-i386', { host: 'amd64' }));
  expect(unknown.message).toMatch(/no emulator for hurd-i386/);
});

test('mmdebstrap needs arch-test for a foreign architecture, and not for the host one', async () => {
  const d = binfmtDir('enabled', { 'qemu-aarch64': AARCH64 });
  const noTools = fs.mkdtempSync(path.join(dir, 'bin-'));
  const e = await missing(
    requireBootstrapEmulation('arm64', { binfmtDir: d, host: 'amd64', path: noTools }),
  );
  expect(e.message).toMatch(/arch-test/);
  await requireBootstrapEmulation('amd64', { binfmtDir: d, host: 'amd64', path: noTools });
  // scripts/setup.sh installs Debian's arch-test.
  await requireBootstrapEmulation('arm64', {
    binfmtDir: d,
    host: 'amd64',
    path: `${noTools}:/usr/bin`,
  });
});

test('this machine (set up by scripts/setup.sh) runs arm64 and armhf through qemu-user', async () => {
  expect(await requireEmulation('arm64', { host: 'amd64' })).toEqual({
    native: false,
    handler: 'qemu-aarch64',
  });
  expect(await requireEmulation('armhf', { host: 'amd64' })).toEqual({
    native: false,
    handler: 'qemu-arm',
  });
});
