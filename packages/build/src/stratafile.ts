/**
 * The Stratafile parser. A Stratafile is Dockerfile-like: one instruction per logical line,
 * `#` comment lines, `\` continuations, shell-like quoting and `$VAR` substitution. The parser
 * resolves every variable it is allowed to (everything except RUN, which the shell expands), checks
 * the structure (stages, BOOTSTRAP placement, stage references) and gives each instruction a
 * canonical one-line `text` for cache keys and OCI history. It reads no files and runs nothing.
 * See docs/stratafile.md for the user-facing reference.
 */
import { posix } from 'node:path';
import { isStrataError, ParseError, parseReference } from '@strata/oci';

/** A position in a Stratafile: 1-based line and column (columns count Unicode code points). */
export interface Location {
  file: string;
  line: number;
  column: number;
}

interface Base {
  /** Where the instruction keyword is. */
  loc: Location;
  /** Canonical one-line form after substitution: single spaces, flags sorted, words quoted only when needed. */
  text: string;
}

/** What a FROM reference names, decided by the parser so the engine need not guess. */
export type FromRefKind =
  /** `scratch`: an empty tree, to be filled by BOOTSTRAP. */
  | 'scratch'
  /** An earlier stage of this Stratafile (`ref` is its name). */
  | 'stage'
  /** A template file: `./x.tmpl.img`, `../x.tar`, `/abs/x.tmpl.img`. */
  | 'file'
  /** A tag in the local store (`name[:tag][@digest]`, no registry host). */
  | 'local'
  /** A registry reference (`host[:port]/repo[:tag][@sha256:…]`). */
  | 'registry';

export interface FromInstruction extends Base {
  kind: 'FROM';
  /** The reference after substitution with global ARGs. */
  ref: string;
  refKind: FromRefKind;
  /** The stage name given with `AS`, if any. */
  stage?: string;
}

export interface BootstrapInstruction extends Base {
  kind: 'BOOTSTRAP';
  /** Debian suite or codename, e.g. `bookworm`. */
  suite: string;
  /** mmdebstrap `--variant`. */
  variant?: string;
  /** Extra packages for mmdebstrap `--include`. */
  include: string[];
  /** Archive components, e.g. `main`, `contrib`. */
  components: string[];
  mirror?: string;
  architecture?: string;
}

export interface InstallInstruction extends Base {
  kind: 'INSTALL';
  /** Packages from the apt sources, with an optional pinned version. `name` may carry `:arch`. */
  packages: Array<{ name: string; version?: string }>;
  /** Local .deb files, normalised and relative to the build context, always starting with `./`. */
  debs: string[];
  /** `--recommends`: install Recommends too (the default is `--no-install-recommends`). */
  recommends: boolean;
}

export interface RemoveInstruction extends Base {
  kind: 'REMOVE';
  packages: string[];
  /** `--strict-remove`: files the removed packages owned that survive are an error, not a report. */
  strict: boolean;
}

export interface UpgradeInstruction extends Base {
  kind: 'UPGRADE';
  /** Packages to upgrade; empty means every installed package. */
  packages: string[];
}

export interface RunInstruction extends Base {
  kind: 'RUN';
  /** Exec form (`RUN ["exe","arg"]`) as an array; shell form as the verbatim command string. */
  command: string[] | string;
}

export interface CopyInstruction extends Base {
  kind: 'COPY';
  /** Sources relative to the build context, as written (after substitution); may be globs. */
  sources: string[];
  /** Absolute destination in the tree, normalised; a trailing `/` is kept. */
  dest: string;
  /** `user[:group]`, names or numeric ids. */
  chown?: string;
  /** Mode bits from `--chmod=<octal>`. */
  chmod?: number;
}

export interface EnvInstruction extends Base {
  kind: 'ENV';
  vars: Array<[string, string]>;
}

export interface ArgInstruction extends Base {
  kind: 'ARG';
  name: string;
  /** The declared default, after substitution. */
  default?: string;
  /**
   * The value in effect: the `--build-arg`, else the default, else (inside a stage) the value of
   * the global ARG of the same name. Undefined when the ARG is unset.
   */
  value?: string;
}

export interface LabelInstruction extends Base {
  kind: 'LABEL';
  labels: Array<[string, string]>;
}

export interface FeatureInstruction extends Base {
  kind: 'FEATURE';
  features: string[];
}

export interface ExcludeInstruction extends Base {
  kind: 'EXCLUDE';
  /** Globs over paths in the tree, as written. */
  globs: string[];
}

export interface SourcesInstruction extends Base {
  kind: 'SOURCES';
  /** An apt sources file (one-line or deb822) relative to the build context, as written. */
  file: string;
}

export interface BuildchrootInstruction extends Base {
  kind: 'BUILDCHROOT';
  /** Name of an earlier stage. */
  stage: string;
}

export type Instruction =
  | FromInstruction
  | BootstrapInstruction
  | InstallInstruction
  | RemoveInstruction
  | UpgradeInstruction
  | RunInstruction
  | CopyInstruction
  | EnvInstruction
  | ArgInstruction
  | LabelInstruction
  | FeatureInstruction
  | ExcludeInstruction
  | SourcesInstruction
  | BuildchrootInstruction;

export type InstructionKind = Instruction['kind'];

export interface Stage {
  /** 0-based position in the file. */
  index: number;
  name?: string;
  from: FromInstruction;
  /** Everything after FROM, in order (ARGs included: the engine exports them to RUN). */
  steps: Instruction[];
}

export interface Stratafile {
  file: string;
  /** ARGs before the first FROM; they are visible to FROM lines only. */
  globalArgs: ArgInstruction[];
  stages: Stage[];
  /** Build args given by the caller that no ARG declares, sorted (Docker warns about these). */
  unusedBuildArgs: string[];
}

/** The instructions that change the tree, each into one layer. */
export const LAYER_INSTRUCTIONS = [
  'BOOTSTRAP',
  'INSTALL',
  'REMOVE',
  'UPGRADE',
  'RUN',
  'COPY',
] as const satisfies readonly InstructionKind[];

/** Every instruction keyword, upper-case. */
export const INSTRUCTIONS: readonly InstructionKind[] = [
  'FROM',
  ...LAYER_INSTRUCTIONS,
  'ENV',
  'ARG',
  'LABEL',
  'FEATURE',
  'EXCLUDE',
  'SOURCES',
  'BUILDCHROOT',
];

type FlagKind = 'bool' | 'string';
const FLAGS: Partial<Record<InstructionKind, Record<string, FlagKind>>> = {
  BOOTSTRAP: {
    variant: 'string',
    include: 'string',
    components: 'string',
    mirror: 'string',
    architecture: 'string',
  },
  INSTALL: { recommends: 'bool' },
  REMOVE: { 'strict-remove': 'bool' },
  COPY: { chown: 'string', chmod: 'string' },
};

/** mmdebstrap's variants. */
const VARIANTS = [
  'extract',
  'custom',
  'essential',
  'apt',
  'required',
  'minbase',
  'buildd',
  'important',
  'debootstrap',
  'standard',
  '-',
];

const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9][a-z0-9-]*)?$/;
const PACKAGE_VERSION = /^[A-Za-z0-9.+~:-]+$/;
const STAGE_NAME = /^[a-z][a-z0-9_.-]*$/;
const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SUITE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const COMPONENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const ARCHITECTURE = /^[a-z0-9][a-z0-9-]*$/;
const FEATURE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:+-]*$/;
const OWNER = /^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/;
const OCTAL_MODE = /^[0-7]{3,4}$/;

/**
 * Parse a Stratafile. `file` is used in locations and error messages only. `buildArgs`
 * (`--build-arg`) override ARG defaults. Throws `ParseError` (`file:line:column: message`) at the
 * first problem, in file order.
 */
export function parseStratafile(
  text: string,
  file: string,
  buildArgs: Record<string, string> = {},
): Stratafile {
  return new Parser(file, buildArgs).parse(text);
}

/** Quote a word for canonical text only when it needs it, so the text re-parses to the same word. */
export function quoteWord(s: string): string {
  if (s !== '' && !/[\s'"\\$]/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// Logical lines

interface Pos {
  line: number;
  column: number;
}

/** One instruction's text with continuations joined; `pos[i]` is where character `i` came from. */
interface LogicalLine {
  text: string;
  /** One entry per UTF-16 unit of `text`, plus one for the end. */
  pos: Pos[];
}

function isBlank(c: string): boolean {
  return c === ' ' || c === '\t';
}

/** Columns of each UTF-16 unit of a physical line, counting code points from 1. */
function columnsOf(raw: string): number[] {
  const cols: number[] = [];
  let col = 0;
  for (let i = 0; i < raw.length; i++) {
    const u = raw.charCodeAt(i);
    const low = u >= 0xdc00 && u <= 0xdfff && i > 0 && isHighSurrogate(raw.charCodeAt(i - 1));
    if (!low) col++;
    cols.push(col);
  }
  cols.push(col + 1);
  return cols;
}

function isHighSurrogate(u: number): boolean {
  return u >= 0xd800 && u <= 0xdbff;
}

/**
 * Join physical lines into logical ones the way Docker does: comment lines (first non-blank `#`)
 * and blank lines are dropped, also inside a continuation; a trailing `\` (optionally followed by
 * blanks) joins the next line with nothing in between; the first line's leading blanks are dropped.
 */
function logicalLines(source: string): LogicalLine[] {
  const physical = source.replace(/^\uFEFF/, '').split(/\r?\n/);
  const out: LogicalLine[] = [];
  let cur: LogicalLine | undefined;
  const finish = (end: Pos): void => {
    if (cur === undefined) return;
    cur.pos.push(end);
    if (cur.text.trim() !== '') out.push(cur);
    cur = undefined;
  };
  let last: Pos = { line: 1, column: 1 };
  physical.forEach((raw, n) => {
    const line = n + 1;
    if (/^[ \t]*(#|$)/.test(raw)) return;
    const cols = columnsOf(raw);
    let start = 0;
    if (cur === undefined) {
      cur = { text: '', pos: [] };
      while (start < raw.length && isBlank(raw.charAt(start))) start++;
    }
    const cont = /\\[ \t]*$/.exec(raw);
    const stop = cont ? cont.index : raw.length;
    for (let i = start; i < stop; i++) {
      cur.text += raw.charAt(i);
      cur.pos.push({ line, column: cols[i] ?? 1 });
    }
    last = { line, column: cols[stop] ?? 1 };
    if (!cont) finish(last);
  });
  finish(last);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Words: quoting and substitution

type Lookup = (name: string) => string | undefined;

/** A word after quote removal and substitution; `start`/`end` index the logical line. */
interface Word {
  value: string;
  raw: string;
  start: number;
  end: number;
}

interface ScanMode {
  /** Unquoted substitutions split into several words at whitespace (list instructions). */
  split: boolean;
  /** Whitespace is literal: the whole range is one word (legacy `ENV key value`). */
  whole: boolean;
  /** Only `$` substitution and `\$`; quotes are literal (JSON array elements). */
  plain: boolean;
}

const WORDS: ScanMode = { split: false, whole: false, plain: false };
const SPLIT_WORDS: ScanMode = { split: true, whole: false, plain: false };

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

class Lexer {
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
function scanJsonArray(t: string, start: number): Array<{ value: string; start: number }> | null {
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

// ---------------------------------------------------------------------------------------------
// The parser

interface Flag {
  name: string;
  value?: string;
  at: number;
}

interface StageState {
  stage: Stage;
  /** Position of the FROM reference, for "FROM scratch must be followed by BOOTSTRAP". */
  refLoc: Location;
  scratch: boolean;
  bootstrapped: boolean;
  buildchroot?: Location;
  args: Map<string, string | undefined>;
  env: Map<string, string>;
}

interface DeclaredStage {
  name: string;
  index: number;
  line: number;
}

class Parser {
  private readonly stages: StageState[] = [];
  private readonly globalArgs: ArgInstruction[] = [];
  private readonly globalValues = new Map<string, string | undefined>();
  private readonly consumed = new Set<string>();
  private declared: DeclaredStage[] = [];
  private cur: StageState | undefined;

  constructor(
    private readonly file: string,
    private readonly buildArgs: Record<string, string>,
  ) {}

  parse(source: string): Stratafile {
    const lines = logicalLines(source);
    this.declared = prescanStageNames(lines);
    lines.forEach((line, index) => this.instruction(line, index));
    this.endStage();
    if (this.stages.length === 0) {
      throw new ParseError(
        this.file,
        1,
        1,
        'no FROM instruction: a Stratafile needs at least one stage',
      );
    }
    return {
      file: this.file,
      globalArgs: this.globalArgs,
      stages: this.stages.map((s) => s.stage),
      unusedBuildArgs: Object.keys(this.buildArgs)
        .filter((k) => !this.consumed.has(k))
        .sort(),
    };
  }

  private lookup: Lookup = (name) => {
    if (this.cur === undefined) return this.globalValues.get(name);
    return this.cur.env.has(name) ? this.cur.env.get(name) : this.cur.args.get(name);
  };

  private instruction(line: LogicalLine, index: number): void {
    const lx = new Lexer(this.file, line, this.lookup);
    const t = line.text;
    let kwEnd = 0;
    while (kwEnd < t.length && !isBlank(t.charAt(kwEnd))) kwEnd++;
    const word = t.slice(0, kwEnd);
    const kw = word.toUpperCase() as InstructionKind;
    if (!INSTRUCTIONS.includes(kw)) {
      throw lx.error(
        0,
        `unknown instruction ${JSON.stringify(word)}`,
        word.toUpperCase() === 'ADD'
          ? 'use COPY for files from the build context'
          : `instructions: ${INSTRUCTIONS.join(', ')}`,
      );
    }
    const cur = this.cur;
    if (cur === undefined && kw !== 'FROM' && kw !== 'ARG') {
      throw lx.error(0, `${kw} before the first FROM: only ARG may come before FROM`);
    }
    if (
      cur?.scratch &&
      !cur.bootstrapped &&
      !['ARG', 'SOURCES', 'BOOTSTRAP', 'FROM'].includes(kw)
    ) {
      throw lx.error(
        0,
        `a FROM scratch stage must start with BOOTSTRAP (FROM scratch at line ${cur.refLoc.line})`,
      );
    }
    if (kw === 'BOOTSTRAP' && !(cur?.scratch && !cur.bootstrapped)) {
      throw lx.error(0, 'BOOTSTRAP is only allowed directly after FROM scratch');
    }
    const ctx = new Ctx(lx, kw, lx.skipBlanks(kwEnd));
    if (kw === 'FROM') {
      this.from(ctx, index);
      return;
    }
    if (kw === 'ARG') {
      this.arg(ctx);
      return;
    }
    if (cur === undefined) return; // unreachable: checked above
    const step = this.step(ctx, cur);
    cur.stage.steps.push(step);
    if (step.kind === 'ENV') for (const [k, v] of step.vars) cur.env.set(k, v);
    if (step.kind === 'BOOTSTRAP') cur.bootstrapped = true;
  }

  private endStage(): void {
    const cur = this.cur;
    if (cur?.scratch && !cur.bootstrapped) {
      throw new ParseError(
        cur.refLoc.file,
        cur.refLoc.line,
        cur.refLoc.column,
        'FROM scratch must be followed by BOOTSTRAP',
      );
    }
  }

  private from(ctx: Ctx, index: number): void {
    this.endStage();
    this.cur = undefined; // FROM sees global ARGs only
    ctx.flags({});
    const words = ctx.positional(WORDS);
    const [refWord, asWord, nameWord, extra] = words;
    if (refWord === undefined) throw ctx.missing('FROM requires a template reference');
    if (extra !== undefined)
      throw ctx.lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
    if (asWord !== undefined && asWord.value.toUpperCase() !== 'AS') {
      throw ctx.lx.error(
        asWord.start,
        `expected "AS <stage>" after the reference, got ${quoteWord(asWord.raw)}`,
      );
    }
    if (asWord !== undefined && nameWord === undefined) {
      throw ctx.lx.error(asWord.start, 'AS needs a stage name');
    }
    const ref = refWord.value;
    const refAt = refWord.start;
    if (ref === '') throw ctx.lx.error(refAt, 'FROM reference is empty (is the ARG set?)');

    let name: string | undefined;
    if (nameWord !== undefined) {
      name = nameWord.raw;
      if (!STAGE_NAME.test(name)) {
        throw ctx.lx.error(
          nameWord.start,
          name.toLowerCase() !== name && STAGE_NAME.test(name.toLowerCase())
            ? `stage name ${JSON.stringify(name)} must be lowercase`
            : `invalid stage name ${JSON.stringify(name)}: use a lowercase letter, then [a-z0-9_.-]`,
        );
      }
      if (name === 'scratch')
        throw ctx.lx.error(nameWord.start, '"scratch" is reserved and cannot name a stage');
      const dup = this.stages.find((s) => s.stage.name === name);
      if (dup) {
        throw ctx.lx.error(
          nameWord.start,
          `duplicate stage name ${JSON.stringify(name)} (first defined at line ${dup.stage.from.loc.line})`,
        );
      }
    }

    let refKind: FromRefKind;
    let parent: StageState | undefined;
    if (ref === 'scratch') {
      refKind = 'scratch';
    } else if (/^(\.\.?)?\//.test(ref)) {
      if (!/\.(tmpl\.img|tar)$/.test(ref)) {
        throw ctx.lx.error(
          refAt,
          `template file ${JSON.stringify(ref)} must end in .tmpl.img or .tar`,
        );
      }
      refKind = 'file';
    } else if ((parent = this.stages.find((s) => s.stage.name === ref))) {
      refKind = 'stage';
    } else {
      const later = this.declared.find((d) => d.name === ref && d.index >= index);
      if (later) {
        throw ctx.lx.error(
          refAt,
          later.index === index
            ? `stage ${JSON.stringify(ref)} cannot start FROM itself`
            : `FROM ${ref} refers to stage ${JSON.stringify(ref)}, which is defined later (line ${later.line}); a stage can only start FROM an earlier stage`,
        );
      }
      try {
        refKind = parseReference(ref).registry === undefined ? 'local' : 'registry';
      } catch (e) {
        if (isStrataError(e)) throw ctx.lx.error(refAt, e.message);
        throw e;
      }
    }

    const from: FromInstruction = {
      kind: 'FROM',
      ref,
      refKind,
      ...(name !== undefined ? { stage: name } : {}),
      loc: ctx.loc,
      text: `FROM ${quoteWord(ref)}${name !== undefined ? ` AS ${name}` : ''}`,
    };
    const state: StageState = {
      stage: {
        index: this.stages.length,
        ...(name !== undefined ? { name } : {}),
        from,
        steps: [],
      },
      refLoc: ctx.lx.loc(refAt),
      scratch: refKind === 'scratch',
      bootstrapped: false,
      args: new Map(),
      env: new Map(parent?.env ?? []),
    };
    this.stages.push(state);
    this.cur = state;
  }

  private arg(ctx: Ctx): void {
    ctx.flags({});
    const words = ctx.positional(WORDS);
    const [w, extra] = words;
    if (w === undefined) throw ctx.missing('ARG requires a name: ARG <name>[=<default>]');
    if (extra !== undefined) {
      throw ctx.lx.error(
        extra.start,
        'ARG takes a single <name>[=<default>]; use one ARG per variable',
      );
    }
    const eq = w.raw.indexOf('=');
    const name = eq < 0 ? w.raw : w.raw.slice(0, eq);
    if (!VAR_NAME.test(name))
      throw ctx.lx.error(w.start, `invalid ARG name ${JSON.stringify(name)}`);
    const def = eq < 0 ? undefined : w.value.slice(name.length + 1);
    let value: string | undefined;
    if (Object.prototype.hasOwnProperty.call(this.buildArgs, name)) {
      value = this.buildArgs[name];
      this.consumed.add(name);
    } else if (def !== undefined) {
      value = def;
    } else if (this.cur !== undefined) {
      value = this.globalValues.get(name);
    }
    const inst: ArgInstruction = {
      kind: 'ARG',
      name,
      ...(def !== undefined ? { default: def } : {}),
      ...(value !== undefined ? { value } : {}),
      loc: ctx.loc,
      text: def === undefined ? `ARG ${name}` : `ARG ${name}=${quoteWord(def)}`,
    };
    if (this.cur === undefined) {
      this.globalArgs.push(inst);
      this.globalValues.set(name, value);
    } else {
      this.cur.args.set(name, value);
      this.cur.stage.steps.push(inst);
    }
  }

  private step(ctx: Ctx, cur: StageState): Instruction {
    const lx = ctx.lx;
    const loc = ctx.loc;
    switch (ctx.kw) {
      case 'BOOTSTRAP': {
        const flags = ctx.flags(FLAGS.BOOTSTRAP ?? {});
        const [suite, extra] = ctx.positional(WORDS);
        if (suite === undefined)
          throw ctx.missing('BOOTSTRAP requires a suite, e.g. BOOTSTRAP bookworm');
        if (extra !== undefined)
          throw lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
        if (!SUITE.test(suite.value))
          throw lx.error(suite.start, `invalid suite ${JSON.stringify(suite.value)}`);
        const variant = flags.get('variant');
        if (variant && !VARIANTS.includes(variant.value ?? '')) {
          throw lx.error(
            variant.at,
            `unknown mmdebstrap variant ${JSON.stringify(variant.value)}`,
            `variants: ${VARIANTS.join(', ')}`,
          );
        }
        const include = ctx.list(flags.get('include'), (p) => {
          const [name, version] = splitVersion(p);
          return (
            PACKAGE_NAME.test(name) && (version === undefined || PACKAGE_VERSION.test(version))
          );
        });
        const components = ctx.list(flags.get('components'), (c) => COMPONENT.test(c));
        const mirror = flags.get('mirror');
        if (mirror && !isUrl(mirror.value ?? '')) {
          throw lx.error(mirror.at, `--mirror must be a URL, got ${JSON.stringify(mirror.value)}`);
        }
        const arch = flags.get('architecture');
        if (arch && !ARCHITECTURE.test(arch.value ?? '')) {
          throw lx.error(arch.at, `invalid architecture ${JSON.stringify(arch.value)}`);
        }
        return {
          kind: 'BOOTSTRAP',
          suite: suite.value,
          ...(variant?.value !== undefined ? { variant: variant.value } : {}),
          include,
          components,
          ...(mirror?.value !== undefined ? { mirror: mirror.value } : {}),
          ...(arch?.value !== undefined ? { architecture: arch.value } : {}),
          loc,
          text: ctx.canonical([quoteWord(suite.value)]),
        };
      }
      case 'INSTALL': {
        const flags = ctx.flags(FLAGS.INSTALL ?? {});
        const words = ctx.positional(SPLIT_WORDS);
        if (words.length === 0) {
          throw ctx.missing('INSTALL requires at least one package or ./file.deb');
        }
        const packages: InstallInstruction['packages'] = [];
        const debs: string[] = [];
        const shown: string[] = [];
        for (const w of words) {
          if (w.value.includes('/') || w.value.endsWith('.deb')) {
            if (!w.value.endsWith('.deb')) {
              throw lx.error(
                w.start,
                `local package ${JSON.stringify(w.value)} must be a .deb file`,
              );
            }
            const deb = `./${contextPath(lx, w, 'local package')}`;
            debs.push(deb);
            shown.push(quoteWord(deb));
          } else {
            const [name, version] = splitVersion(w.value);
            checkPackageName(lx, w, name);
            if (version !== undefined && !PACKAGE_VERSION.test(version)) {
              throw lx.error(
                w.start,
                `invalid version ${JSON.stringify(version)} for package ${name}`,
              );
            }
            packages.push(version === undefined ? { name } : { name, version });
            shown.push(quoteWord(w.value));
          }
        }
        return {
          kind: 'INSTALL',
          packages,
          debs,
          recommends: flags.has('recommends'),
          loc,
          text: ctx.canonical(shown),
        };
      }
      case 'REMOVE':
      case 'UPGRADE': {
        const flags = ctx.flags(FLAGS[ctx.kw] ?? {});
        const words = ctx.positional(SPLIT_WORDS);
        if (ctx.kw === 'REMOVE' && words.length === 0)
          throw ctx.missing('REMOVE requires at least one package');
        const packages = words.map((w) => {
          if (w.value.includes('=')) {
            throw lx.error(
              w.start,
              `${ctx.kw} takes package names without versions, got ${JSON.stringify(w.value)}`,
            );
          }
          checkPackageName(lx, w, w.value);
          return w.value;
        });
        const text = ctx.canonical(packages);
        return ctx.kw === 'REMOVE'
          ? { kind: 'REMOVE', packages, strict: flags.has('strict-remove'), loc, text }
          : { kind: 'UPGRADE', packages, loc, text };
      }
      case 'RUN': {
        ctx.flags({});
        const rest = lx.text.slice(ctx.next).trim();
        if (rest === '') throw ctx.missing('RUN requires a command');
        const json = scanJsonArray(lx.text, ctx.next);
        if (json !== null) {
          if (json.length === 0)
            throw lx.error(ctx.next, 'RUN [] needs at least the program to run');
          const command = json.map((e) => e.value);
          return { kind: 'RUN', command, loc, text: `RUN ${JSON.stringify(command)}` };
        }
        return { kind: 'RUN', command: rest, loc, text: `RUN ${rest}` };
      }
      case 'COPY': {
        const flags = ctx.flags(FLAGS.COPY ?? {});
        const json = scanJsonArray(lx.text, ctx.next);
        const words: Word[] =
          json === null
            ? ctx.positional(WORDS)
            : json.map((e) => {
                const sub = plainLexer(lx, e.start, e.value, this.lookup);
                const value =
                  sub.scan(0, { split: false, whole: true, plain: true }).words[0]?.value ?? '';
                return { value, raw: e.value, start: e.start, end: e.start };
              });
        const dest = words[words.length - 1];
        const sources = words.slice(0, -1);
        if (dest === undefined || sources.length === 0) {
          throw ctx.missing('COPY requires at least one source and a destination');
        }
        for (const s of sources) contextPath(lx, s, 'COPY source');
        if (dest.value === '') throw lx.error(dest.start, 'COPY destination is empty');
        if (sources.length > 1 && !dest.value.endsWith('/')) {
          throw lx.error(
            dest.start,
            `COPY with several sources needs a directory destination ending in "/", got ${JSON.stringify(dest.value)}`,
          );
        }
        const destPath = posix.normalize(
          dest.value.startsWith('/') ? dest.value : `/${dest.value}`,
        );
        const chown = flags.get('chown');
        if (chown && !OWNER.test(chown.value ?? '')) {
          throw lx.error(
            chown.at,
            `--chown expects <user>[:<group>], got ${JSON.stringify(chown.value)}`,
          );
        }
        const chmodFlag = flags.get('chmod');
        let chmod: number | undefined;
        if (chmodFlag) {
          if (!OCTAL_MODE.test(chmodFlag.value ?? '')) {
            throw lx.error(
              chmodFlag.at,
              `--chmod expects an octal mode like 0644, got ${JSON.stringify(chmodFlag.value)}`,
            );
          }
          chmod = parseInt(chmodFlag.value ?? '', 8);
          chmodFlag.value = chmod.toString(8).padStart(4, '0');
        }
        const srcs = sources.map((s) => s.value);
        return {
          kind: 'COPY',
          sources: srcs,
          dest: destPath,
          ...(chown?.value !== undefined ? { chown: chown.value } : {}),
          ...(chmod !== undefined ? { chmod } : {}),
          loc,
          text: ctx.canonical([...srcs, destPath].map(quoteWord)),
        };
      }
      case 'ENV': {
        ctx.flags({});
        const first = lx.scan(ctx.next, WORDS);
        const head = first.words[0];
        if (head === undefined) throw ctx.missing('ENV requires <key>=<value>');
        const vars: Array<[string, string]> = [];
        if (!head.raw.includes('=')) {
          // Legacy `ENV key value…`: the rest of the line is one value.
          if (!VAR_NAME.test(head.value)) {
            throw lx.error(head.start, `invalid ENV name ${JSON.stringify(head.value)}`);
          }
          const valueStart = lx.skipBlanks(first.end);
          const trimmed = new Lexer(lx.file, trimLine(lx.line), this.lookup);
          if (valueStart >= trimmed.text.length) {
            throw lx.error(
              head.start,
              `ENV ${head.value} needs a value: ENV ${head.value}=<value>`,
            );
          }
          const value =
            trimmed.scan(valueStart, { split: false, whole: true, plain: false }).words[0]?.value ??
            '';
          vars.push([head.value, value]);
        } else {
          for (const w of ctx.positional(WORDS)) vars.push(keyValue(lx, w, 'ENV', true));
        }
        return {
          kind: 'ENV',
          vars,
          loc,
          text: `ENV ${vars.map(([k, v]) => `${k}=${quoteWord(v)}`).join(' ')}`,
        };
      }
      case 'LABEL': {
        ctx.flags({});
        const words = ctx.positional(WORDS);
        if (words.length === 0) throw ctx.missing('LABEL requires <key>=<value>');
        const labels = words.map((w) => keyValue(lx, w, 'LABEL', false));
        return {
          kind: 'LABEL',
          labels,
          loc,
          text: `LABEL ${labels.map(([k, v]) => `${quoteWord(k)}=${quoteWord(v)}`).join(' ')}`,
        };
      }
      case 'FEATURE': {
        ctx.flags({});
        const words = ctx.positional(SPLIT_WORDS);
        if (words.length === 0) throw ctx.missing('FEATURE requires at least one feature name');
        for (const w of words) {
          if (!FEATURE_NAME.test(w.value))
            throw lx.error(w.start, `invalid feature name ${JSON.stringify(w.value)}`);
        }
        const features = words.map((w) => w.value);
        return { kind: 'FEATURE', features, loc, text: ctx.canonical(features) };
      }
      case 'EXCLUDE': {
        ctx.flags({});
        const words = ctx.positional(SPLIT_WORDS);
        if (words.length === 0) throw ctx.missing('EXCLUDE requires at least one glob');
        for (const w of words) {
          const stripped = w.value.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
          if (stripped === '')
            throw lx.error(
              w.start,
              `EXCLUDE pattern ${JSON.stringify(w.value)} names the whole tree`,
            );
          if (stripped.split('/').includes('..')) {
            throw lx.error(
              w.start,
              `EXCLUDE pattern ${JSON.stringify(w.value)} must not contain ".."`,
            );
          }
        }
        const globs = words.map((w) => w.value);
        return { kind: 'EXCLUDE', globs, loc, text: ctx.canonical(globs.map(quoteWord)) };
      }
      case 'SOURCES': {
        ctx.flags({});
        const [w, extra] = ctx.positional(WORDS);
        if (w === undefined) throw ctx.missing('SOURCES requires a file from the build context');
        if (extra !== undefined)
          throw lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
        contextPath(lx, w, 'SOURCES file');
        return { kind: 'SOURCES', file: w.value, loc, text: ctx.canonical([quoteWord(w.value)]) };
      }
      case 'BUILDCHROOT': {
        ctx.flags({});
        const [w, extra] = ctx.positional(WORDS);
        if (w === undefined) throw ctx.missing('BUILDCHROOT requires the name of an earlier stage');
        if (extra !== undefined)
          throw lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
        if (cur.buildchroot) {
          throw lx.error(
            0,
            `duplicate BUILDCHROOT in this stage (first at line ${cur.buildchroot.line})`,
          );
        }
        const name = w.value;
        const earlier = this.stages.find((s) => s !== cur && s.stage.name === name);
        if (!earlier) {
          const later = this.declared.find((d) => d.name === name && d.index > cur.stage.index);
          throw lx.error(
            w.start,
            cur.stage.name === name
              ? 'a stage cannot be its own buildchroot'
              : this.declared.some((d) => d.name === name)
                ? `BUILDCHROOT ${name}: stage ${JSON.stringify(name)} is defined later${later ? ` (line ${later.line})` : ''}; name an earlier stage`
                : `BUILDCHROOT ${name}: no stage named ${JSON.stringify(name)}`,
          );
        }
        cur.buildchroot = loc;
        return { kind: 'BUILDCHROOT', stage: name, loc, text: `BUILDCHROOT ${name}` };
      }
      default:
        // FROM and ARG are handled by the caller.
        throw lx.error(0, `unexpected ${ctx.kw}`);
    }
  }
}

/** Per-instruction helpers: flags, positional words, canonical text. */
class Ctx {
  readonly loc: Location;
  /** Index of the first positional argument, after `flags()`. */
  next: number;
  private afterDashDash = false;
  private flagMap = new Map<string, Flag>();

  constructor(
    readonly lx: Lexer,
    readonly kw: InstructionKind,
    argsStart: number,
  ) {
    this.loc = lx.loc(0);
    this.next = argsStart;
  }

  missing(message: string): ParseError {
    return this.lx.error(0, message);
  }

  /** Parse leading `--name[=value]` flags against what this instruction accepts. */
  flags(spec: Record<string, FlagKind>): Map<string, Flag> {
    const lx = this.lx;
    const out = new Map<string, Flag>();
    let i = lx.skipBlanks(this.next);
    while (lx.text.startsWith('--', i)) {
      const tok = lx.scan(i, WORDS);
      if (lx.text.slice(i, tok.end) === '--') {
        this.afterDashDash = true;
        i = lx.skipBlanks(tok.end);
        break;
      }
      const word = tok.words[0]?.value ?? '';
      const eq = word.indexOf('=');
      const name = eq < 0 ? word.slice(2) : word.slice(2, eq);
      const value = eq < 0 ? undefined : word.slice(eq + 1);
      const kind = spec[name];
      if (kind === undefined) {
        const owners = INSTRUCTIONS.filter((k) => FLAGS[k]?.[name] !== undefined);
        throw lx.error(
          i,
          owners.length > 0
            ? `flag --${name} is not valid for ${this.kw} (it belongs to ${owners.join(', ')})`
            : `unknown flag --${name} for ${this.kw}`,
          Object.keys(spec).length > 0
            ? `${this.kw} accepts ${Object.keys(spec)
                .map((f) => `--${f}`)
                .join(', ')}`
            : `${this.kw} takes no flags`,
        );
      }
      if (out.has(name)) throw lx.error(i, `duplicate flag --${name}`);
      if (kind === 'bool' && value !== undefined)
        throw lx.error(i, `flag --${name} takes no value`);
      if (kind === 'string' && (value === undefined || value === '')) {
        throw lx.error(i, `flag --${name} needs a value: --${name}=<value>`);
      }
      out.set(name, value === undefined ? { name, at: i } : { name, value, at: i });
      i = lx.skipBlanks(tok.end);
    }
    this.next = i;
    this.flagMap = out;
    return out;
  }

  /** Words after the flags; a word that looks like a flag is an error there. */
  positional(mode: ScanMode): Word[] {
    const words = this.lx.words(this.next, mode);
    if (!this.afterDashDash) {
      const late = words.find((w) => w.raw.startsWith('--'));
      if (late) {
        throw this.lx.error(
          late.start,
          `flag ${late.raw.split('=')[0]} must come before the arguments`,
        );
      }
    }
    return words;
  }

  /** A comma-separated flag value, each item checked. */
  list(flag: Flag | undefined, valid: (item: string) => boolean): string[] {
    if (flag?.value === undefined) return [];
    const items = flag.value.split(',');
    for (const item of items) {
      if (item === '' || !valid(item)) {
        throw this.lx.error(flag.at, `invalid item ${JSON.stringify(item)} in --${flag.name}`);
      }
    }
    return items;
  }

  /** `KW --a=x --b args…` with flags sorted by name. */
  canonical(args: string[]): string {
    const flags = [...this.flagMap.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((f) => (f.value === undefined ? `--${f.name}` : `--${f.name}=${quoteWord(f.value)}`));
    return [this.kw, ...flags, ...args].join(' ');
  }
}

/** Names declared with `FROM … AS name`, read before parsing so forward references are recognised. */
function prescanStageNames(lines: LogicalLine[]): DeclaredStage[] {
  const out: DeclaredStage[] = [];
  lines.forEach((line, index) => {
    const words = line.text.trim().split(/[ \t]+/);
    if (words.length >= 3 && words[0]?.toUpperCase() === 'FROM') {
      const asAt = words.findIndex((w, i) => i > 0 && w.toUpperCase() === 'AS');
      const name = asAt > 0 ? words[asAt + 1] : undefined;
      if (name !== undefined) out.push({ name, index, line: line.pos[0]?.line ?? 1 });
    }
  });
  return out;
}

/** A lexer over one decoded JSON element, every character located at the element's quote. */
function plainLexer(lx: Lexer, at: number, value: string, lookup: Lookup): Lexer {
  const p = lx.line.pos[at] ?? { line: 1, column: 1 };
  return new Lexer(
    lx.file,
    { text: value, pos: Array.from({ length: value.length + 1 }, () => p) },
    lookup,
  );
}

function trimLine(line: LogicalLine): LogicalLine {
  const text = line.text.replace(/[ \t]+$/, '');
  return {
    text,
    pos: [...line.pos.slice(0, text.length), line.pos[text.length] ?? { line: 1, column: 1 }],
  };
}

function splitVersion(s: string): [string, string | undefined] {
  const eq = s.indexOf('=');
  return eq < 0 ? [s, undefined] : [s.slice(0, eq), s.slice(eq + 1)];
}

function checkPackageName(lx: Lexer, w: Word, name: string): void {
  if (!PACKAGE_NAME.test(name)) {
    throw lx.error(
      w.start,
      `invalid package name ${JSON.stringify(name)}`,
      'Debian package names are lowercase [a-z0-9][a-z0-9+.-]+, optionally followed by :<arch>',
    );
  }
}

/** Check a build-context path (relative, not escaping); returns it normalised. */
function contextPath(lx: Lexer, w: Word, what: string): string {
  const p = w.value;
  if (p === '') throw lx.error(w.start, `${what} is empty`);
  if (p.startsWith('/')) {
    throw lx.error(w.start, `${what} ${JSON.stringify(p)} must be relative to the build context`);
  }
  const n = posix.normalize(p);
  if (n === '..' || n.startsWith('../')) {
    throw lx.error(w.start, `${what} ${JSON.stringify(p)} escapes the build context`);
  }
  return n;
}

function keyValue(lx: Lexer, w: Word, kw: 'ENV' | 'LABEL', strictKey: boolean): [string, string] {
  const eq = w.value.indexOf('=');
  if (eq < 0)
    throw lx.error(w.start, `${kw} expects <key>=<value>, got ${JSON.stringify(w.value)}`);
  const key = w.value.slice(0, eq);
  if (key === '' || (strictKey && !VAR_NAME.test(key))) {
    throw lx.error(w.start, `invalid ${kw} key ${JSON.stringify(key)}`);
  }
  return [key, w.value.slice(eq + 1)];
}

function isUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (
      ['http:', 'https:', 'file:', 'ftp:', 'copy:'].includes(u.protocol) ||
      u.protocol.startsWith('mirror+')
    );
  } catch {
    return false;
  }
}
