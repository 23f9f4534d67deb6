/**
 * Words of a logical line: shell-like quoting, `\\` escapes and `$VAR` substitution, each word
 * with where it starts so errors can point at it; and the JSON-array form of RUN and COPY.
 */
import { ParseError } from '@strata/oci';
import type { Location } from './ast';
import { LogicalLine, isBlank } from './lines';
import { shellQuote } from './shell';

/** Quote a word for canonical text only when it needs it, so the text re-parses to the same word. */
export function quoteWord(s: string): string {
  if (s !== '' && !/[\s'"\\$]/.test(s)) return s;
  return shellQuote(s);
}

export type Lookup = (name: string) => string | undefined;

/** A word after quote removal and substitution; `start`/`end` index the logical line. */
export interface Word {
  value: string;
  raw: string;
  start: number;
  end: number;
}

export interface ScanMode {
  /** Unquoted substitutions split into several words at whitespace (list instructions). */
  split: boolean;
  /** Whitespace is literal: the whole range is one word (legacy `ENV key value`). */
  whole: boolean;
  /** Only `$` substitution and `\$`; quotes are literal (JSON array elements). */
  plain: boolean;
}

export const WORDS: ScanMode = { split: false, whole: false, plain: false };
export const SPLIT_WORDS: ScanMode = { split: true, whole: false, plain: false };

class WordBuilder {
  readonly list: Word[] = [];
  private value: string | undefined;
  private start = 0;

  constructor(private readonly text: string) {}

  add(s: string, at: number): void {
    if (this.value === undefined) {
      this.value = '';
      this.start = at;
    }
    this.value += s;
  }

  close(at: number): void {
    if (this.value === undefined) return;
    this.list.push({
      value: this.value,
      raw: this.text.slice(this.start, at),
      start: this.start,
      end: at,
    });
    this.value = undefined;
  }
}

export class Lexer {
  readonly text: string;

  constructor(
    readonly file: string,
    readonly line: LogicalLine,
    private readonly lookup: Lookup,
  ) {
    this.text = line.text;
  }

  loc(i: number): Location {
    const p = this.line.pos[Math.min(Math.max(i, 0), this.line.pos.length - 1)] ?? {
      line: 1,
      column: 1,
    };
    return { file: this.file, line: p.line, column: p.column };
  }

  error(i: number, message: string, hint?: string): ParseError {
    const l = this.loc(i);
    return new ParseError(l.file, l.line, l.column, message, hint ? { hint } : undefined);
  }

  skipBlanks(i: number): number {
    while (i < this.text.length && isBlank(this.text.charAt(i))) i++;
    return i;
  }

  /** Lex one token from `i` (not a blank) up to the next unquoted blank (or the end, if whole). */
  scan(i: number, mode: ScanMode): { words: Word[]; end: number } {
    const t = this.text;
    const end = t.length;
    const b = new WordBuilder(t);
    let j = i;
    while (j < end) {
      const c = t.charAt(j);
      if (!mode.whole && isBlank(c)) break;
      if (mode.plain) {
        if (c === '\\' && t.charAt(j + 1) === '$') {
          b.add('$', j);
          j += 2;
        } else if (c === '$') {
          const r = this.subst(j, true);
          b.add(r.value, j);
          j = r.next;
        } else {
          b.add(c, j);
          j++;
        }
        continue;
      }
      if (c === '\\') {
        b.add(j + 1 < end ? t.charAt(j + 1) : '\\', j);
        j += 2;
      } else if (c === "'") {
        const close = t.indexOf("'", j + 1);
        if (close < 0) throw this.error(j, 'unterminated single quote');
        b.add(t.slice(j + 1, close), j);
        j = close + 1;
      } else if (c === '"') {
        b.add('', j);
        const at = j;
        j = this.doubleQuoted(j, (s) => b.add(s, at));
      } else if (c === '$') {
        const r = this.subst(j, false);
        if (mode.split) {
          for (const ch of r.value) {
            if (/\s/.test(ch)) b.close(j);
            else b.add(ch, j);
          }
        } else {
          b.add(r.value, j);
        }
        j = r.next;
      } else {
        b.add(c, j);
        j++;
      }
    }
    b.close(Math.min(j, end));
    return { words: b.list, end: Math.min(j, end) };
  }

  /** All words from `i` to the end of the line. */
  words(i: number, mode: ScanMode): Word[] {
    const out: Word[] = [];
    let j = this.skipBlanks(i);
    while (j < this.text.length) {
      const r = this.scan(j, mode);
      out.push(...r.words);
      j = this.skipBlanks(r.end);
    }
    return out;
  }

  /** A `"…"` string starting at `i`; returns the index after the closing quote. */
  private doubleQuoted(i: number, add: (s: string) => void): number {
    const t = this.text;
    let j = i + 1;
    while (j < t.length) {
      const c = t.charAt(j);
      if (c === '"') return j + 1;
      if (c === '\\' && '"\\$`'.includes(t.charAt(j + 1)) && j + 1 < t.length) {
        add(t.charAt(j + 1));
        j += 2;
      } else if (c === '$') {
        const r = this.subst(j, false);
        add(r.value);
        j = r.next;
      } else {
        add(c);
        j++;
      }
    }
    throw this.error(i, 'unterminated double quote');
  }

  /** `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`. */
  private subst(i: number, plain: boolean): { value: string; next: number } {
    const t = this.text;
    if (t.charAt(i + 1) !== '{') {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(t.slice(i + 1));
      if (!m) return { value: '$', next: i + 1 };
      return { value: this.lookup(m[0]) ?? '', next: i + 1 + m[0].length };
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(t.slice(i + 2));
    if (!m) throw this.error(i, 'bad substitution: expected a variable name after "${"');
    const name = m[0];
    let j = i + 2 + name.length;
    if (t.charAt(j) === '}') return { value: this.lookup(name) ?? '', next: j + 1 };
    const op = /^(:-|:\+|-|\+)/.exec(t.slice(j))?.[0];
    if (op === undefined) {
      throw this.error(
        i,
        `bad substitution \${${name}${t.charAt(j)}…}: expected "}", ":-", "-", ":+" or "+"`,
      );
    }
    j += op.length;
    const word = this.braceWord(j, i, plain);
    const v = this.lookup(name);
    const set = v !== undefined;
    const nonEmpty = set && v !== '';
    let value: string;
    if (op === ':-') value = nonEmpty ? v : word.value;
    else if (op === '-') value = set ? v : word.value;
    else if (op === ':+') value = nonEmpty ? word.value : '';
    else value = set ? word.value : '';
    return { value, next: word.next };
  }

  /** The word of `${NAME:-word}` up to the matching `}`. */
  private braceWord(i: number, dollar: number, plain: boolean): { value: string; next: number } {
    const t = this.text;
    let value = '';
    let j = i;
    while (j < t.length) {
      const c = t.charAt(j);
      if (c === '}') return { value, next: j + 1 };
      if (c === '\\' && j + 1 < t.length && (!plain || t.charAt(j + 1) === '$')) {
        value += t.charAt(j + 1);
        j += 2;
      } else if (c === "'" && !plain) {
        const close = t.indexOf("'", j + 1);
        if (close < 0) throw this.error(j, 'unterminated single quote');
        value += t.slice(j + 1, close);
        j = close + 1;
      } else if (c === '"' && !plain) {
        j = this.doubleQuoted(j, (s) => (value += s));
      } else if (c === '$') {
        const r = this.subst(j, plain);
        value += r.value;
        j = r.next;
      } else {
        value += c;
        j++;
      }
    }
    throw this.error(dollar, 'unterminated "${": missing "}"');
  }
}

/** `["a", "b"]` with each element's start, or null when the text is not exactly a JSON string array. */
export function scanJsonArray(
  t: string,
  start: number,
): Array<{ value: string; start: number }> | null {
  const skip = (i: number): number => {
    while (i < t.length && /\s/.test(t.charAt(i))) i++;
    return i;
  };
  let i = skip(start);
  if (t.charAt(i) !== '[') return null;
  i = skip(i + 1);
  const out: Array<{ value: string; start: number }> = [];
  if (t.charAt(i) === ']') return skip(i + 1) === t.length ? out : null;
  for (;;) {
    if (t.charAt(i) !== '"') return null;
    let j = i + 1;
    while (j < t.length && t.charAt(j) !== '"') j += t.charAt(j) === '\\' ? 2 : 1;
    if (j >= t.length) return null;
    let value: unknown;
    try {
      value = JSON.parse(t.slice(i, j + 1));
    } catch {
      return null;
    }
    if (typeof value !== 'string') return null;
    out.push({ value, start: i });
    i = skip(j + 1);
    if (t.charAt(i) === ',') {
      i = skip(i + 1);
    } else if (t.charAt(i) === ']') {
      return skip(i + 1) === t.length ? out : null;
    } else {
      return null;
    }
  }
}

/** A lexer over one decoded JSON element, every character located at the element's quote. */
export function plainLexer(lx: Lexer, at: number, value: string, lookup: Lookup): Lexer {
  const p = lx.line.pos[at] ?? { line: 1, column: 1 };
  return new Lexer(
    lx.file,
    { text: value, pos: Array.from({ length: value.length + 1 }, () => p) },
    lookup,
  );
}
