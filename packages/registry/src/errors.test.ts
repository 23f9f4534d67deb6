import { ManifestNotFoundError, RegistryAuthError, RegistryError, isUnreachable } from './errors';

describe('ManifestNotFoundError says what is missing', () => {
  const missing = (reference: string, found: boolean, tags?: string[]) =>
    new ManifestNotFoundError('reg.example:5000', 'acme/base', reference, found, tags).message;

  test('an unknown repository', () => {
    expect(missing('2.0', false)).toBe('reg.example:5000 has no repository acme/base');
  });

  test('an unknown tag, with the tags there are in version order', () => {
    expect(missing('2.1', true, ['2.0', '1.10', '1.9'])).toBe(
      'reg.example:5000/acme/base has no tag 2.1 (its tags: 1.9, 1.10, 2.0)',
    );
  });

  test("the referrers fallback's sha256-<hex> tags are not offered as tags", () => {
    const fallback = `sha256-${'b'.repeat(64)}`;
    expect(missing('2.1', true, ['2.0', fallback])).toBe(
      'reg.example:5000/acme/base has no tag 2.1 (its tags: 2.0)',
    );
    expect(missing('2.1', true, [fallback])).toBe(
      'reg.example:5000/acme/base has no tag 2.1 (it has no tags at all)',
    );
  });

  test('a long tag list is cut short and counted', () => {
    const tags = Array.from({ length: 25 }, (_, i) => `v${i + 1}`);
    expect(missing('v0', true, tags)).toBe(
      `reg.example:5000/acme/base has no tag v0 (its tags: ${tags.slice(0, 20).join(', ')}, … 25 in all)`,
    );
  });

  test('a repository without tags, one whose tags cannot be listed, and a digest', () => {
    expect(missing('1', true, [])).toBe(
      'reg.example:5000/acme/base has no tag 1 (it has no tags at all)',
    );
    expect(missing('1', true)).toBe('reg.example:5000/acme/base has no tag 1');
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(missing(digest, true, ['1'])).toBe(
      `reg.example:5000/acme/base has no manifest ${digest}`,
    );
  });

  test('is a NOT_FOUND with the 404 it stands for', () => {
    const e = new ManifestNotFoundError('r:1', 'a/b', 't', true, []);
    expect([e.code, e.status]).toEqual(['NOT_FOUND', 404]);
  });
});

describe('isUnreachable: the registry is not there, as against what it answered', () => {
  const net = (code: string) =>
    new RegistryError('UNAVAILABLE', `127.0.0.1:5000: GET /v2/: ${code}`, undefined, [], {
      cause: Object.assign(new Error(code), { code }),
    });

  test('refused, reset, timed out and DNS failures, wrapped or not', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'])
      expect([code, isUnreachable(net(code))]).toEqual([code, true]);
    expect(isUnreachable(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
  });

  test('an answer, a certificate or anything else is not', () => {
    expect(isUnreachable(new RegistryError('NOT_FOUND', 'HTTP 404', 404))).toBe(false);
    expect(isUnreachable(new RegistryAuthError('HTTP 401', 401))).toBe(false);
    expect(isUnreachable(new RegistryError('UNAVAILABLE', 'HTTP 503', 503))).toBe(false);
    expect(isUnreachable(net('DEPTH_ZERO_SELF_SIGNED_CERT'))).toBe(false);
    expect(isUnreachable(new Error('bad manifest'))).toBe(false);
    expect(isUnreachable(undefined)).toBe(false);
  });
});

test('a refused login has a code of its own, not the UNAVAILABLE of a registry that is down', () => {
  // A script retries UNAVAILABLE; UNAUTHORIZED needs new credentials instead.
  expect(new RegistryAuthError('reg.example requires a login', 401).code).toBe('UNAUTHORIZED');
});
