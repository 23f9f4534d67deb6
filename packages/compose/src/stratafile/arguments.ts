/**
 * An instruction's arguments: leading `--flags` checked against what the instruction accepts,
 * positional words, comma-separated flag values, and the canonical one-line text.
 */
import type { ParseError } from '@strata/oci';
import { INSTRUCTIONS, InstructionKind, Location } from './ast';
import { Lexer, ScanMode, WORDS, Word, quoteWord } from './lexer';

/** `repeated`: a string flag that may be given more than once (RUN --mount). */
export type FlagKind = 'bool' | 'string' | 'repeated';
export const FLAGS: Partial<Record<InstructionKind, Record<string, FlagKind>>> = {
  BOOTSTRAP: {
    variant: 'string',
    include: 'string',
    components: 'string',
    mirror: 'string',
    architecture: 'string',
  },
  INSTALL: { recommends: 'bool' },
  REMOVE: { 'strict-remove': 'bool' },
  RUN: { mount: 'repeated' },
  COPY: { chown: 'string', chmod: 'string', from: 'string' },
  DEBUILD: { arch: 'string', profiles: 'string' },
};

export interface Flag {
  name: string;
  value?: string;
  at: number;
}

/** Per-instruction helpers: flags, positional words, canonical text. */
export class Ctx {
  readonly loc: Location;
  /** Index of the first positional argument, after `flags()`. */
  next: number;
  private afterDashDash = false;
  private flagList: Flag[] = [];

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

  /**
   * Parse leading `--name[=value]` flags against what this instruction accepts. The map holds
   * the first of a `repeated` flag; `all()` gives every one.
   */
  flags(spec: Record<string, FlagKind>): Map<string, Flag> {
    const lx = this.lx;
    const out = new Map<string, Flag>();
    const list: Flag[] = [];
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
      if (out.has(name) && kind !== 'repeated') throw lx.error(i, `duplicate flag --${name}`);
      if (kind === 'bool' && value !== undefined)
        throw lx.error(i, `flag --${name} takes no value`);
      if (kind !== 'bool' && (value === undefined || value === '')) {
        throw lx.error(i, `flag --${name} needs a value: --${name}=<value>`);
      }
      const flag: Flag = value === undefined ? { name, at: i } : { name, value, at: i };
      if (!out.has(name)) out.set(name, flag);
      list.push(flag);
      i = lx.skipBlanks(tok.end);
    }
    this.next = i;
    this.flagList = list;
    return out;
  }

  /** Every occurrence of flag `name`, in the order written. */
  all(name: string): Flag[] {
    return this.flagList.filter((f) => f.name === name);
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

  /** `KW --a=x --b args…` with flags sorted by name (a repeated flag's by value). */
  canonical(args: string[]): string {
    const by = (f: Flag) => `${f.name}\0${f.value ?? ''}`;
    const flags = [...this.flagList]
      .sort((a, b) => (by(a) < by(b) ? -1 : by(a) > by(b) ? 1 : 0))
      .map((f) => (f.value === undefined ? `--${f.name}` : `--${f.name}=${quoteWord(f.value)}`));
    return [this.kw, ...flags, ...args].join(' ');
  }
}
