/**
 * Fuzzing of the image reference parser: every reference a user types (pull, push, tag, FROM)
 * goes through parseReference.
 */
import fc from 'fast-check';
import { FUZZ_TIMEOUT_MS, anyText, fuzzParams, mutatedText, parsesOrThrowsTyped } from './testing';
import { formatReference, parseReference } from './reference';

const DIGEST = `sha256:${'a1'.repeat(32)}`;

const component = fc.stringMatching(/^[a-z0-9]{1,4}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,4}){0,2}$/);
const registry = fc.oneof(
  fc.constantFrom('localhost', 'localhost:5000', '127.0.0.1:5000', '[::1]:5000', 'docker.io'),
  fc
    .tuple(
      fc.stringMatching(/^[a-z0-9]{1,8}(?:\.[a-z][a-z0-9-]{0,5}[a-z0-9]){1,2}$/),
      fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
    )
    .map(([host, port]) => (port === undefined ? host : `${host}:${port}`)),
);
const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}$/);

/** References in Docker's grammar, of every shape. */
const validReference = fc
  .record({
    registry: fc.option(registry, { nil: undefined }),
    path: fc.array(component, { minLength: 1, maxLength: 3 }),
    tag: fc.option(tag, { nil: undefined }),
    digest: fc.option(fc.constant(DIGEST), { nil: undefined }),
  })
  // Without a registry, a first component with a dot would name one (Docker's rule).
  .filter((r) => r.registry !== undefined || !(r.path[0] as string).includes('.'))
  .map(
    (r) =>
      `${r.registry ? `${r.registry}/` : ''}${r.path.join('/')}` +
      `${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`,
  );

const input = fc.oneof(
  validReference,
  mutatedText(validReference, ['/', ':', '@', 'sha256:', '.', '[', ']', ':99999', '..', 'A', '__']),
  anyText(80),
);

describe('parseReference under fuzzing', () => {
  test(
    'returns a reference that formats back to itself, or throws a typed error',
    () => {
      fc.assert(
        fc.property(input, (text) => {
          const out = parsesOrThrowsTyped(() => parseReference(text));
          if (!out.ok) return;
          const ref = out.value;
          // What parses formats back to a reference that parses the same.
          expect(parseReference(formatReference(ref))).toEqual(ref);
          // The registry is a host the client can build its URLs from.
          if (ref.registry !== undefined) {
            expect(() => new URL(`https://${ref.registry}/v2/`)).not.toThrow();
          }
        }),
        fuzzParams('parseReference'),
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  test('valid references always parse', () => {
    fc.assert(
      fc.property(validReference, (text) => {
        expect(formatReference(parseReference(text))).toBe(text);
      }),
      fuzzParams('parseReference (valid)', 500),
    );
  });
});
