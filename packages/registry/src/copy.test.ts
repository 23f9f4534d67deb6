import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDigest, parseReference } from '@strata/oci';
import { Store } from '@strata/store';
import { defaultLocalTag, push } from './copy';
import { fallbackTag, isFallbackTag } from './fallback-tag';

const hex = 'c'.repeat(64);

test("a pull by digest is tagged digest-sha256-<hex>, not the registry's referrers tag", () => {
  const tag = defaultLocalTag(parseReference(`127.0.0.1:5000/acme/app@sha256:${hex}`));
  expect(tag).toBe(`127.0.0.1:5000/acme/app:digest-sha256-${hex}`);
  expect(isFallbackTag(tag.split(':').at(-1) as string)).toBe(false);
  expect(defaultLocalTag(parseReference('127.0.0.1:5000/acme/app:1.0'))).toBe(
    '127.0.0.1:5000/acme/app:1.0',
  );
});

test('isFallbackTag knows the fallback tags, and only them', () => {
  expect(isFallbackTag(fallbackTag(parseDigest(`sha256:${hex}`)))).toBe(true);
  for (const t of ['1.0', `sha256-${hex.slice(1)}`, `digest-sha256-${hex}`, `sha256-${hex}x`])
    expect(isFallbackTag(t)).toBe(false);
});

describe('push refuses a target before it reaches the registry', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-copy-'));
  });
  afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

  // Port 9 on loopback: nothing listens, so a push that got as far as the registry would fail
  // with a connection error instead of these.
  test('a target with a digest, even beside a tag', async () => {
    const store = await Store.open(dir);
    for (const target of [
      `127.0.0.1:9/acme/app@sha256:${hex}`,
      `127.0.0.1:9/acme/app:1@sha256:${hex}`,
    ])
      await expect(push(store, 'app:1', parseReference(target))).rejects.toThrow(
        /carries a digest: a push names a tag/,
      );
  });

  test("a tag of the referrers fallback's form", async () => {
    await expect(
      push(await Store.open(dir), 'app:1', parseReference(`127.0.0.1:9/acme/app:sha256-${hex}`)),
    ).rejects.toThrow(/referrers tags .* would be overwritten/);
  });
});
