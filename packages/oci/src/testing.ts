/**
 * Support for the parser fuzz tests (`*.fuzz.test.ts`) of every package: `@strata/oci/testing`
 * (jest and `tsconfig.jest.json` map it to this file). It is not in the index, nor in the build.
 *
 * A fuzzed parser may return, or throw a StrataError; any other exception (a TypeError, a
 * RangeError, JSON.parse's SyntaxError leaking out) is a defect, and so is a case that takes
 * longer than its time bound.
 */
import { randomInt } from 'node:crypto';
import fc from 'fast-check';
import { isStrataError } from './errors';

/** `npm run test:long` sets STRATA_LONG=1: the long run's case counts instead of CI's. */
export const FUZZ_LONG = process.env.STRATA_LONG === '1';

/** Cases per parser: at least 2,000 in CI, 100,000 in the long run. */
export const FUZZ_RUNS = FUZZ_LONG ? 100_000 : 2_000;

/** A jest timeout for one fuzz test: the long run's counts take far longer than CI's. */
export const FUZZ_TIMEOUT_MS = FUZZ_LONG ? 4 * 60 * 60 * 1000 : 120_000;

/** Time bound of one case of a pure parser. Generous: the machine running CI is loaded. */
export const CASE_LIMIT_MS = 1_000;

/** The seed of `npm test`'s fuzz runs. */
const CI_SEED = 20261206;

/**
 * The seed: `STRATA_FUZZ_SEED` to replay one; else, in the long run, a fresh one for each test
 * file (jest loads this module once per file), and in `npm test` a fixed one, so that a CI run
 * is the same run each time and a red one replays as it is. Every property prints it.
 */
export const FUZZ_SEED = seedFromEnv(process.env.STRATA_FUZZ_SEED);

function seedFromEnv(v: string | undefined): number {
  if (v === undefined || v === '') return FUZZ_LONG ? randomInt(0x7fffffff) : CI_SEED;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new Error(`STRATA_FUZZ_SEED is not an integer: ${v}`);
  return n | 0;
}

/**
 * fast-check parameters for the property named `name`: the run's seed and case count, and a
 * report that prints the seed (and fast-check's replay path) when a case fails. The seed is
 * printed before the run too, so that a run that hangs can be replayed as well.
 */
export function fuzzParams<T>(name: string, numRuns = FUZZ_RUNS): fc.Parameters<T> {
  process.stderr.write(
    `fuzz ${name}: ${numRuns} cases, seed ${FUZZ_SEED} (replay: STRATA_FUZZ_SEED=${FUZZ_SEED})\n`,
  );
  return { seed: FUZZ_SEED, numRuns };
}

/** Fails unless `e` is one of the project's typed errors. */
export function expectTypedError(e: unknown, input?: unknown): void {
  if (isStrataError(e)) return;
  const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  throw new Error(
    `not a StrataError: ${what}${input === undefined ? '' : `\ninput: ${JSON.stringify(input)}`}`,
    { cause: e },
  );
}

function checkTime(started: bigint, limitMs: number): void {
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (ms > limitMs) throw new Error(`case took ${ms.toFixed(0)} ms, over its ${limitMs} ms bound`);
}

/**
 * Runs `parse` on one case: it must return (the result is handed back) or throw a StrataError
 * (undefined is handed back), within `limitMs`.
 */
export function parsesOrThrowsTyped<R>(
  parse: () => R,
  limitMs = CASE_LIMIT_MS,
): { ok: true; value: R } | { ok: false; error: unknown } {
  const started = process.hrtime.bigint();
  let out: { ok: true; value: R } | { ok: false; error: unknown };
  try {
    out = { ok: true, value: parse() };
  } catch (e) {
    expectTypedError(e);
    out = { ok: false, error: e };
  }
  checkTime(started, limitMs);
  return out;
}

/** The asynchronous form of {@link parsesOrThrowsTyped}. */
export async function parsesOrThrowsTypedAsync<R>(
  parse: () => Promise<R>,
  limitMs = CASE_LIMIT_MS,
): Promise<{ ok: true; value: R } | { ok: false; error: unknown }> {
  const started = process.hrtime.bigint();
  let out: { ok: true; value: R } | { ok: false; error: unknown };
  try {
    out = { ok: true, value: await parse() };
  } catch (e) {
    expectTypedError(e);
    out = { ok: false, error: e };
  }
  checkTime(started, limitMs);
  return out;
}

/**
 * Mutations of a valid input, to reach past the first check of a parser: flip, insert, delete,
 * duplicate or swap characters, truncate, or splice in a piece of `pieces` (keywords, delimiters
 * and other syntax the parser looks for).
 */
export function mutatedText(
  valid: fc.Arbitrary<string>,
  pieces: readonly string[] = [],
): fc.Arbitrary<string> {
  const piece =
    pieces.length > 0
      ? fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 8 }))
      : fc.string({ maxLength: 8 });
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: piece }),
    fc.record({
      kind: fc.constant('delete' as const),
      at: fc.nat(),
      n: fc.integer({ min: 1, max: 16 }),
    }),
    fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), text: piece }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('duplicate' as const),
      at: fc.nat(),
      n: fc.integer({ min: 1, max: 64 }),
    }),
    fc.record({
      kind: fc.constant('char' as const),
      at: fc.nat(),
      c: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    }),
  );
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 6 })).map(([text, edits]) => {
    let s = text;
    for (const e of edits) {
      const at = s.length === 0 ? 0 : e.at % (s.length + 1);
      switch (e.kind) {
        case 'insert':
          s = s.slice(0, at) + e.text + s.slice(at);
          break;
        case 'delete':
          s = s.slice(0, at) + s.slice(at + e.n);
          break;
        case 'replace':
          s = s.slice(0, at) + e.text + s.slice(at + e.text.length);
          break;
        case 'truncate':
          s = s.slice(0, at);
          break;
        case 'duplicate':
          s = s.slice(0, at + e.n) + s.slice(at, at + e.n) + s.slice(at + e.n);
          break;
        case 'char':
          s = s.slice(0, at) + e.c + s.slice(at + 1);
          break;
      }
    }
    return s;
  });
}

/** Mutations of valid bytes: flipped bits, changed, inserted and deleted bytes, truncation. */
export function mutatedBytes(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({
      kind: fc.constant('flip' as const),
      at: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
    fc.record({
      kind: fc.constant('set' as const),
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ maxLength: 600 }),
    }),
    fc.record({
      kind: fc.constant('delete' as const),
      at: fc.nat(),
      n: fc.integer({ min: 1, max: 600 }),
    }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  );
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([bytes, edits]) => {
    let b = Buffer.from(bytes);
    for (const e of edits) {
      const at = b.length === 0 ? 0 : e.at % (b.length + (e.kind === 'insert' ? 1 : 0) || 1);
      switch (e.kind) {
        case 'flip':
          if (b.length > 0) b[at % b.length] = (b[at % b.length] as number) ^ (1 << e.bit);
          break;
        case 'set':
          if (b.length > 0) b[at % b.length] = e.byte;
          break;
        case 'insert':
          b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)]);
          break;
        case 'delete':
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.n)]);
          break;
        case 'truncate':
          b = b.subarray(0, at);
          break;
      }
    }
    return b;
  });
}

/**
 * Random text: printable ASCII, any Unicode (lone surrogates too), or runs of the characters that
 * text formats give a meaning (quotes, escapes, separators, line ends).
 */
export function anyText(maxLength = 64): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({
      unit: fc.constantFrom(...'\0\t\n\r "\'\\$#:,;=/@{}[]()-_.~*?'.split(''), 'a', '0', '\u00e9'),
      maxLength,
    }),
  );
}

/**
 * Random JSON-like values, with the keys and values of the documents the parser reads mixed in,
 * so that objects often have the right keys with the wrong shapes.
 */
export function jsonish(
  keys: readonly string[],
  leaves: readonly unknown[] = [],
): fc.Arbitrary<unknown> {
  const key = fc.oneof(
    fc.constantFrom(...keys, '__proto__', 'constructor'),
    fc.string({ maxLength: 6 }),
  );
  const leaf = fc.oneof(
    fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 2 ** 53, '', ...leaves),
    fc.string({ maxLength: 12 }),
    fc.integer(),
    fc.double(),
  );
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(key, tie('value'), { maxKeys: 6 }),
    ),
  }));
  return value;
}
