/**
 * Fuzzing of the Stratafile parser, the entry point of `strata build` and `strata check`: the
 * examples' Stratafiles mutated, Stratafiles made of random instructions, and random text.
 * parseStratafile must return or throw a ParseError (a StrataError), quickly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { ParseError } from '@strata/oci';
import {
  FUZZ_TIMEOUT_MS,
  anyText,
  fuzzParams,
  mutatedText,
  parsesOrThrowsTyped,
} from '@strata/oci/testing';
import { INSTRUCTIONS } from './ast';
import { parseStratafile } from './parser';

const EXAMPLES = path.join(__dirname, '..', '..', '..', '..', 'examples');

const examples: string[] = fs
  .readdirSync(EXAMPLES)
  .map((d) => path.join(EXAMPLES, d, 'Stratafile'))
  .filter((f) => fs.existsSync(f))
  .map((f) => fs.readFileSync(f, 'utf8'));

/** Multi-stage files that use the instructions the examples do not. */
const samples = [
  ...examples,
  [
    'ARG SUITE=bookworm',
    'FROM scratch AS base',
    'ARG SUITE',
    'BOOTSTRAP --variant=minbase --include=ca-certificates $SUITE',
    'SOURCES apt/product.sources',
    'UPGRADE',
    'FROM base AS buildchroot',
    'INSTALL build-essential debhelper',
    'FROM base',
    'BUILDCHROOT buildchroot',
    'DEBUILD --arch=arm64 --profiles=nocheck src/agent src/agent.dsc',
    'EXCLUDE /usr/share/locale/**',
    'COPY ["release notes.txt", "/usr/share/doc/"]',
    'INSTALL --recommends curl',
    'ENV A="a b" B=${A:-x} C=$A \\',
    '  D=1',
    'LABEL "k ey"=v',
    'RUN ["/bin/sh", "-c", "echo $HOME"]',
    'REMOVE --strict-remove tzdata',
  ].join('\n'),
];

const PIECES = [
  ...INSTRUCTIONS,
  ' ',
  '\n',
  '\\\n',
  '\\',
  '"',
  "'",
  '$',
  '${',
  '}',
  '${A:-',
  '${A:+x}',
  '#',
  ' AS ',
  '--from=',
  '--chmod=',
  '--chown=',
  '=',
  'scratch',
  '[',
  ']',
  '\t',
  '\r\n',
  '\0',
];

const word = fc.oneof(
  fc.constantFrom(...PIECES, 'base:1', 'x', '$SUITE', '/etc/x', 'a=b', '--variant=minbase'),
  anyText(12),
);
/** Lines of an instruction keyword (any case) and random words. */
const randomFile = fc
  .array(
    fc.tuple(
      fc.constantFrom(...INSTRUCTIONS, 'from', 'Run', 'NOPE', '#', ''),
      fc.array(word, { maxLength: 5 }),
      fc.constantFrom('\n', '\n', '\\\n', '\r\n'),
    ),
    { maxLength: 10 },
  )
  .map((lines) => lines.map(([k, ws, end]) => `${[k, ...ws].join(' ')}${end}`).join(''));

const stratafile = fc.oneof(
  { arbitrary: mutatedText(fc.constantFrom(...samples), PIECES), weight: 5 },
  { arbitrary: randomFile, weight: 3 },
  { arbitrary: anyText(200), weight: 1 },
);

const buildArgs = fc.dictionary(
  fc.constantFrom('SUITE', 'BASE', 'MIDDLEWARE', 'RELEASE', 'A', ''),
  anyText(10),
  { maxKeys: 3 },
);

describe('parseStratafile under fuzzing', () => {
  test('the samples parse', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const s of samples)
      expect(parseStratafile(s, 'Stratafile').stages.length).toBeGreaterThan(0);
  });

  test(
    'returns a Stratafile or throws a ParseError, within the time bound',
    () => {
      let parsed = 0;
      let refused = 0;
      fc.assert(
        fc.property(stratafile, buildArgs, (text, args) => {
          const r = parsesOrThrowsTyped(() => parseStratafile(text, 'Stratafile', args));
          if (r.ok) {
            parsed++;
            for (const st of r.value.stages) {
              for (const i of [st.from, ...st.steps]) expect(typeof i.text).toBe('string');
            }
          } else {
            refused++;
            expect(r.error).toBeInstanceOf(ParseError);
          }
        }),
        fuzzParams('Stratafile'),
      );
      expect(parsed).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );
});
