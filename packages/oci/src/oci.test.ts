import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  allSchemas,
  chainId,
  parseDigest,
  parseJson,
  parseReference,
  redact,
  sha256,
  validateManifest,
  validateTemplateMetadata,
  withDefaultTag,
  formatReference,
  InvalidArgumentError,
  StrataError,
  UnsafeEntryError,
} from './index';

test('digests are validated', () => {
  const d = sha256('x');
  expect(parseDigest(d)).toBe(d);
  expect(() => parseDigest('sha256:abc')).toThrow(StrataError);
  expect(() => parseDigest('md5:' + 'a'.repeat(32))).toThrow('not a valid sha256 digest');
});

test('chain IDs follow the image spec', () => {
  const a = sha256('a');
  const b = sha256('b');
  expect(chainId([a])).toBe(a);
  expect(chainId([a, b])).toBe(sha256(`${a} ${b}`));
  expect(chainId([])).toBeUndefined();
});

test.each([
  ['base', { repository: 'base' }],
  ['acme/base:1.0', { repository: 'acme/base', tag: '1.0' }],
  [
    'localhost:5000/acme/base:v1',
    { registry: 'localhost:5000', repository: 'acme/base', tag: 'v1' },
  ],
  [
    'registry.example/x@' + sha256('m'),
    { registry: 'registry.example', repository: 'x', digest: sha256('m') },
  ],
])('parses reference %s', (input, expected) => {
  expect(parseReference(input)).toEqual(expected);
  expect(formatReference(parseReference(input))).toBe(input);
});

test.each(['', 'a/UPPER', 'a//b', 'x:', 'x@sha256:12', 'a/../b'])(
  'rejects reference %p',
  (input) => {
    expect(() => parseReference(input)).toThrow(StrataError);
  },
);

// Found by fuzzing: hosts that pass the registry pattern but that no URL can name; the client
// failed on them with a bare TypeError ("Invalid URL").
test.each(['0.a.0/x', 'reg.example:99999/x', '[1:2:3:4:5:6:7:8:9]/x', 'a.0/x'])(
  'rejects reference %p, whose registry no URL can name',
  (input) => {
    expect(() => parseReference(input)).toThrow(InvalidArgumentError);
  },
);

test('default tag', () => {
  expect(formatReference(withDefaultTag(parseReference('base')))).toBe('base:latest');
});

test('credentials are redacted from messages', () => {
  expect(redact('GET https://bob:s3cret@reg.example/v2/')).toBe(
    'GET https://***:***@reg.example/v2/',
  );
  expect(redact('Authorization: Bearer abc.def')).toBe('Authorization: Bearer ***');
  expect(new StrataError('UNAVAILABLE', 'https://u:p@h/x').message).not.toContain('p@');
});

test('credentials in a reference without a scheme are redacted, a tag with a digest is not', () => {
  expect(redact('invalid image reference "alice:Pa55w0rdXYZ@127.0.0.1:5845/base:1": x')).toBe(
    'invalid image reference "***:***@127.0.0.1:5845/base:1": x',
  );
  expect(redact('alice:p@ss:w0rd@reg.example/base')).toBe('***:***@reg.example/base');
  expect(redact('FROM alice:Pa55w0rdXYZ@localhost:5000/x AS a')).toBe(
    'FROM ***:***@localhost:5000/x AS a',
  );
  const digest = `sha256:${'a'.repeat(64)}`;
  for (const ok of [
    `reg.example:5000/ns/base:1@${digest}`,
    `base:1@${digest}`,
    `"base:1@sha256:abc" is invalid`,
    'https://***:***@reg.example/x',
  ]) {
    expect(redact(ok)).toBe(ok);
  }
  const e = (() => {
    try {
      parseReference('alice:Pa55w0rdXYZ@127.0.0.1:5845/base:1');
    } catch (x) {
      return x as Error;
    }
    return undefined;
  })();
  expect(e?.message).toContain('***:***@127.0.0.1:5845/base:1');
  expect(e?.message).not.toContain('Pa55w0rdXYZ');
  expect(e?.message).toMatch(/credentials do not belong in a reference; use `strata login`$/);
});

test('redact takes linear time on a long message without credentials', () => {
  // A registry's error body is quoted in messages: 100 KB of it must not take seconds.
  const start = Date.now();
  expect(redact('a_'.repeat(50000))).toBe('a_'.repeat(50000));
  expect(redact('_a:b'.repeat(25000))).toHaveLength(100000);
  expect(Date.now() - start).toBeLessThan(2000);
});

test('a JSON syntax error gives the position, never the text around it', () => {
  const msg = (text: string): string => {
    try {
      parseJson(text, 'index.json');
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  };
  expect(msg('root:*:20299:0:99999:7:::')).toBe('invalid index.json: not valid JSON');
  expect(msg('{"secret":1')).toBe('invalid index.json: not valid JSON at position 11');
  expect(msg('{"secret":')).toBe(
    'invalid index.json: not valid JSON: it ends early, at position 10',
  );
  expect(msg('{"secret":}')).not.toContain('secret');
});

test('errors carry codes', () => {
  const e = new UnsafeEntryError('../x', 'climbs out');
  expect(e.code).toBe('UNSAFE_ENTRY');
  expect(e.message).toContain('"../x"');
});

test('manifest validation reports problems', () => {
  const r = validateManifest({ schemaVersion: 2, config: {}, layers: [] });
  expect(r.ok).toBe(false);
});

test('template metadata rejects unknown keys', () => {
  const meta = {
    schemaVersion: 1,
    name: 'x',
    created: '2026-01-01T00:00:00Z',
    features: [],
    architecture: 'amd64',
    distribution: {},
    packages: [],
    exclusions: [],
    layers: [],
  };
  expect(validateTemplateMetadata(meta).ok).toBe(true);
  expect(validateTemplateMetadata({ ...meta, surprise: 1 }).ok).toBe(false);
});

test('the standalone validators are generated from the current schemas', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { generate } = require('../../../scripts/write-schemas.js');
  const onDisk = fs.readFileSync(path.join(__dirname, 'validators.generated.ts'), 'utf8');
  expect(onDisk === generate(allSchemas)).toBe(true);
});

test('published schemas in /schemas match the code', () => {
  const dir = path.resolve(__dirname, '../../../schemas');
  for (const [file, schema] of Object.entries(allSchemas)) {
    const onDisk = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    expect(onDisk).toEqual(schema);
  }
});
