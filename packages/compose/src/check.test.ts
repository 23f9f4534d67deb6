import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatPlatform, parsePlatform } from '@strata/oci';
import type { Descriptor, PlatformSelector } from '@strata/oci';
import { ManifestNotFoundError, RegistryError } from '@strata/registry';
import { Store } from '@strata/store';
import { createTemplate } from '@strata/template';
import { BaseUnresolvedError, checkTemplate } from './check';
import { build } from './engine';
import { writePlatformIndex } from './image-writer';

/**
 * Templates whose Stratafiles start FROM registry references. The registry is a lookup table
 * of store tags here: what is tested is what the check makes of each answer (the registry
 * itself, and the CLI that reaches it, are in e2e/check-registry.test.ts).
 */
describe('checkTemplate with bases from a registry', () => {
  const PLATFORM = '127.0.0.1:5000/acme/platform:1.0';
  const MIDDLEWARE = '127.0.0.1:5000/acme/middleware:2.0';
  let dir: string;
  let store: Store;
  let mwFile: string;
  let appFile: string;
  /** What each registry reference resolves to now: a store tag, or an error to throw. */
  const registry = new Map<string, string | Error>();
  const resolveRemote = async (ref: string): Promise<Descriptor> => {
    const now = registry.get(ref);
    if (now === undefined) throw new Error(`unexpected registry reference ${ref}`);
    if (now instanceof Error) throw now;
    return store.resolve(now);
  };

  async function template(tag: string, marker: string): Promise<void> {
    const root = path.join(dir, `root-${marker}`);
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\nVERSION_CODENAME=bookworm\n');
    fs.writeFileSync(path.join(root, 'etc/marker'), `${marker}\n`);
    await createTemplate(store, {
      source: { kind: 'dir', path: root },
      tag,
      name: 'acme-platform',
    });
  }

  function stratafile(name: string, lines: string[]): string {
    const file = path.join(dir, name, 'Stratafile');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-check-registry-'));
    store = await Store.open(path.join(dir, 'store'));
    await template('platform:1', 'one');
    await template('platform:2', 'two');
    registry.set(PLATFORM, 'platform:1');
    mwFile = stratafile('mw', [`FROM ${PLATFORM}`, 'FEATURE middleware']);
    await build(store, { file: mwFile, tag: 'middleware:2', resolveRemote, writeLock: false });
    registry.set(MIDDLEWARE, 'middleware:2');
    appFile = stratafile('app', [`FROM ${MIDDLEWARE}`, 'FEATURE app']);
    await build(store, { file: appFile, tag: 'app:1', resolveRemote, writeLock: false });
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(() => registry.set(PLATFORM, 'platform:1'));

  /** The check of a template against its Stratafile, asking the registry above. */
  const check = (tag: string, file: string) =>
    checkTemplate(store, tag, { file, noPackages: true, resolveRemote });

  test('is up to date while the registry answers as at the build', async () => {
    const mw = await check('middleware:2', mwFile);
    expect([mw.upToDate, mw.reasons, mw.notes]).toEqual([true, [], []]);
    const app = await check('app:1', appFile);
    expect([app.upToDate, app.reasons, app.notes]).toEqual([true, [], []]);
  });

  test('without a way to reach the registry it fails rather than say up to date', async () => {
    await expect(
      checkTemplate(store, 'middleware:2', { file: mwFile, noPackages: true }),
    ).rejects.toThrow(`${PLATFORM} is in a registry, and this check cannot reach registries`);
  });

  test('a moved FROM tag is stale', async () => {
    registry.set(PLATFORM, 'platform:2');
    const r = await check('middleware:2', mwFile);
    expect(r.upToDate).toBe(false);
    expect(r.reasons.map((x) => x.message)).toEqual([
      expect.stringMatching(new RegExp(`^FROM ${PLATFORM.replace(/\./g, '\\.')} moved: `)),
    ]);
  });

  test('an ancestor recorded by its registry reference is resolved there', async () => {
    registry.set(PLATFORM, 'platform:2');
    const r = await check('app:1', appFile);
    expect(r.notes).toEqual([]);
    expect(r.reasons.map((x) => x.message)).toEqual([
      expect.stringMatching(new RegExp(`^ancestor ${PLATFORM.replace(/\./g, '\\.')} moved: `)),
    ]);
  });

  test('a registry that cannot be reached fails the check with its reason and hint', async () => {
    registry.set(
      PLATFORM,
      new RegistryError('UNAVAILABLE', '127.0.0.1:5000: connect ECONNREFUSED', undefined, [], {
        hint: 'is the registry running?',
      }),
    );
    for (const [tag, file, what] of [
      ['middleware:2', mwFile, `mw/Stratafile:1:1: FROM ${PLATFORM}`],
      ['app:1', appFile, `app/Stratafile:1:1: ancestor ${PLATFORM}`],
    ] as const) {
      const e = (await check(tag, file).catch((x: unknown) => x)) as BaseUnresolvedError;
      expect(e).toBeInstanceOf(BaseUnresolvedError);
      expect(e.message).toContain(
        `${what} could not be checked: 127.0.0.1:5000: connect ECONNREFUSED`,
      );
      expect([e.code, e.hint]).toEqual(['UNAVAILABLE', 'is the registry running?']);
      // What --json reports as file, line and column (the FROM the base was reached by).
      expect([e.loc.file, e.loc.line, e.loc.column]).toEqual([file, 1, 1]);
    }
  });

  test("a tag the registry no longer has is stale, with the registry's words", async () => {
    registry.set(
      PLATFORM,
      new ManifestNotFoundError('127.0.0.1:5000', 'acme/platform', '1.0', true, ['1.1']),
    );
    const r = await check('middleware:2', mwFile);
    expect(r.upToDate).toBe(false);
    expect(r.reasons.map((x) => x.message)).toEqual([
      `FROM ${PLATFORM} no longer resolves: 127.0.0.1:5000/acme/platform has no tag 1.0 (its tags: 1.1)`,
    ]);
  });

  test('checks the platform asked for, selecting as every other command does', async () => {
    const opts = { file: appFile, noPackages: true, resolveRemote };
    const app = await store.resolve('app:1');
    const have = (await store.platformOf(app)) as PlatformSelector;
    const other = have.architecture === 'arm64' ? 'linux/amd64' : 'linux/arm64';
    await expect(
      checkTemplate(store, 'app:1', { ...opts, platform: parsePlatform(other) }),
    ).rejects.toThrow(`app:1 is an image for ${formatPlatform(have)}, not for ${other}`);
    // A multi-platform template of the same image under two platforms.
    const config = await store.readConfig((await store.readManifest(app)).config);
    const mp = await writePlatformIndex(store, [
      { descriptor: app, config },
      { descriptor: app, config: { ...config, architecture: 'riscv64' } },
    ]);
    await store.tag('mp:1', mp);
    await expect(
      checkTemplate(store, 'mp:1', { ...opts, platform: parsePlatform('linux/arm/v7') }),
    ).rejects.toThrow(
      `mp:1 has no image for linux/arm/v7 (its platforms: ${formatPlatform(have)}, linux/riscv64)`,
    );
    await expect(checkTemplate(store, 'mp:1', opts)).rejects.toThrow(/^mp:1 holds 2 rootfs images/);
    const r = await checkTemplate(store, 'mp:1', { ...opts, platform: have });
    expect(r.digest).toBe(mp.digest);
  });
});
