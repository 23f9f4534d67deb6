import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkCopyTarget, checkLocalDebs, notADeb, packageAt } from './copy-target';
import { CopyInstruction, InstallInstruction, parseStratafile } from './stratafile';

const F = '/ctx/Stratafile';
let dir: string;
let lower: string[];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-copy-target-'));
  // Two lower dirs, topmost first: the upper one adds a user and hides /srv/gone.
  const top = path.join(dir, 'top');
  const bottom = path.join(dir, 'bottom');
  fs.mkdirSync(path.join(top, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(bottom, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(bottom, 'srv'), { recursive: true });
  fs.writeFileSync(path.join(bottom, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.writeFileSync(
    path.join(top, 'etc/passwd'),
    'root:x:0:0::/root:/bin/sh\napp:x:100:100::/:/bin/sh\n',
  );
  fs.writeFileSync(path.join(bottom, 'etc/group'), 'root:x:0:\napp:x:100:\n');
  fs.writeFileSync(path.join(bottom, 'srv/gone'), 'a file');
  fs.symlinkSync('usr/lib', path.join(bottom, 'lib'));
  lower = [top, bottom];
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function copyOf(line: string): CopyInstruction {
  const ins = parseStratafile(`FROM base:1\n${line}\n`, F).stages[0]?.steps[0];
  if (ins?.kind !== 'COPY') throw new Error('not a COPY');
  return ins;
}

test('a --chown user the template lacks fails at the flag, before the copy runs', async () => {
  await expect(
    checkCopyTarget(copyOf('COPY --chown=nosuchuser conf/app.conf /etc/'), lower, true),
  ).rejects.toThrow(`${F}:2:6: --chown user nosuchuser is not in the template's /etc/passwd`);
  await expect(
    checkCopyTarget(copyOf('COPY --chown=app:nogroup conf/app.conf /etc/'), lower, true),
  ).rejects.toThrow(`${F}:2:6: --chown group nogroup is not in the template's /etc/group`);
});

test('a --chown the template has, numeric ids and a user from an upper layer pass', async () => {
  for (const line of [
    'COPY --chown=app conf/app.conf /etc/',
    'COPY --chown=app:app conf/app.conf /etc/',
    'COPY --chown=1000:1000 conf/app.conf /etc/',
    'COPY --chown=root conf/app.conf /etc/',
  ])
    await expect(checkCopyTarget(copyOf(line), lower, true)).resolves.toBeUndefined();
});

test('a destination under a file fails at the destination, naming the file in the way', async () => {
  await expect(checkCopyTarget(copyOf('COPY x /etc/passwd/x'), lower, false)).rejects.toThrow(
    `${F}:2:8: COPY to /etc/passwd/x: /etc/passwd is a file in the way`,
  );
  await expect(checkCopyTarget(copyOf('COPY x y /srv/gone/'), lower, true)).rejects.toThrow(
    /\/srv\/gone is a file in the way/,
  );
  // A file may be replaced by a single source; a symlinked folder and a new path are fine.
  for (const [line, many] of [
    ['COPY x /etc/passwd', false],
    ['COPY x /lib/x/', true],
    ['COPY x /new/dir/', true],
  ] as const)
    await expect(checkCopyTarget(copyOf(line), lower, many)).resolves.toBeUndefined();
});

test("an INSTALL that apt cannot find a package of fails at that package's column", () => {
  const ins = parseStratafile('FROM base:1\nINSTALL curl nosuchpkg-xyz\n', F).stages[0]?.steps[0];
  if (ins?.kind !== 'INSTALL') throw new Error('not an INSTALL');
  const at = (reason: string) => packageAt(ins as InstallInstruction, reason);
  expect(at('E: Unable to locate package nosuchpkg-xyz')).toMatchObject({ line: 2, column: 14 });
  expect(at("E: Package 'curl' has no installation candidate")).toMatchObject({ column: 9 });
  expect(at('E: Sub-process /usr/bin/dpkg returned an error code (1)')).toBeUndefined();
});

test('a local .deb that is not a Debian package is refused at its place on the line', async () => {
  const ctx = path.join(dir, 'ctx');
  fs.mkdirSync(path.join(ctx, 'debs'), { recursive: true });
  fs.writeFileSync(path.join(ctx, 'debs/bad.deb'), 'not a package at all\n');
  fs.writeFileSync(path.join(ctx, 'debs/other.deb'), '!<arch>\nsomething-else   0  0 0 644 1 `\n');
  // What dpkg-deb writes: the ar magic, then debian-binary first.
  fs.writeFileSync(
    path.join(ctx, 'debs/good.deb'),
    '!<arch>\ndebian-binary   1700000000  0     0     100644  4         `\n2.0\n',
  );
  const ins = parseStratafile('FROM base:1\nINSTALL curl ./debs/good.deb ./debs/bad.deb\n', F)
    .stages[0]?.steps[0] as InstallInstruction;
  await expect(
    checkLocalDebs(ins, [{ written: './debs/good.deb', path: 'debs/good.deb' }], ctx),
  ).resolves.toBeUndefined();
  await expect(
    checkLocalDebs(ins, [{ written: './debs/bad.deb', path: 'debs/bad.deb' }], ctx),
  ).rejects.toThrow(`${F}:2:30: ./debs/bad.deb: not a Debian package (not an ar archive)`);
  expect(await notADeb(path.join(ctx, 'debs/other.deb'))).toBe(
    'its first member is "something-else", not debian-binary',
  );
});
