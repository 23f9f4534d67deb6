/**
 * Fuzzing of the `WWW-Authenticate` header parser: a registry (or anything that answers on its
 * address) sends this header, and parseChallenges reads it before any credentials are sent.
 */
import fc from 'fast-check';
import {
  FUZZ_TIMEOUT_MS,
  anyText,
  fuzzParams,
  mutatedText,
  parsesOrThrowsTyped,
} from '@strata/oci/testing';
import { Challenge, parseChallenges } from './challenge';

const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const token = fc.oneof(
  fc.constantFrom(
    'Bearer',
    'Basic',
    'realm',
    'service',
    'scope',
    'error',
    '__proto__',
    'constructor',
  ),
  fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}$/),
);
const paramValue = fc.oneof(
  fc.constantFrom(
    'https://auth.example/token',
    'repository:team/base:pull,push',
    'registry.example',
    'a "quoted" \\ value, with commas',
    '',
  ),
  anyText(20),
);

/** Challenges with unique parameter names, in RFC 7235 form. */
const challenges = fc.array(
  fc.record({
    scheme: token,
    params: fc.uniqueArray(fc.tuple(token, paramValue, fc.boolean()), {
      selector: ([k]) => k.toLowerCase(),
      maxLength: 4,
    }),
  }),
  { minLength: 1, maxLength: 3 },
);

/** The header text: quoted-string values escape `"` and `\`; token values go bare. */
function formatChallenges(cs: Array<{ scheme: string; params: Array<[string, string, boolean]> }>) {
  return cs
    .map(
      (c) =>
        `${c.scheme}${c.params.length ? ' ' : ''}${c.params
          .map(([k, v, bare]) =>
            bare && TOKEN.test(v) ? `${k}=${v}` : `${k}="${v.replace(/["\\]/g, '\\$&')}"`,
          )
          .join(', ')}`,
    )
    .join(', ');
}

const sample =
  'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"';

describe('WWW-Authenticate under fuzzing', () => {
  test(
    'any header parses (or is refused with a typed error), within the time bound',
    () => {
      const header = fc.oneof(
        mutatedText(fc.constant(sample), ['"', '\\', ',', '=', ' ', 'Basic', 'Bearer ', 'realm=']),
        anyText(120),
        challenges.map(formatChallenges),
      );
      fc.assert(
        fc.property(fc.oneof(header, fc.array(header, { maxLength: 3 })), (h) => {
          const r = parsesOrThrowsTyped(() => parseChallenges(h));
          if (!r.ok) return;
          for (const c of r.value) {
            expect(c.scheme).toMatch(TOKEN);
            expect(c.scheme).toBe(c.scheme.toLowerCase());
            for (const [k, v] of Object.entries(c.params)) {
              expect(k).toBe(k.toLowerCase());
              expect(typeof v).toBe('string');
            }
          }
        }),
        fuzzParams('WWW-Authenticate'),
      );
    },
    FUZZ_TIMEOUT_MS,
  );

  test('well-formed challenges parse back to their schemes and parameters', () => {
    fc.assert(
      fc.property(challenges, (cs) => {
        const want: Challenge[] = cs.map((c) => {
          const params: Record<string, string> = Object.create(null);
          for (const [k, v] of c.params) params[k.toLowerCase()] = v;
          return { scheme: c.scheme.toLowerCase(), params };
        });
        const got = parseChallenges(formatChallenges(cs));
        expect(got.map((c) => c.scheme)).toEqual(want.map((c) => c.scheme));
        got.forEach((c, i) => {
          expect(Object.entries(c.params)).toEqual(Object.entries((want[i] as Challenge).params));
        });
      }),
      fuzzParams('WWW-Authenticate (well-formed)', 1000),
    );
  });
});
