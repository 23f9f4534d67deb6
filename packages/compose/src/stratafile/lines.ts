import { Heredoc, readHeredocs } from './heredoc';

/**
 * Physical lines to logical ones: comment and blank lines dropped, `\\` continuations joined, and
 * every character of the result mapped back to the line and column it came from.
 */

export interface Pos {
  line: number;
  column: number;
}

/** One instruction's text with continuations joined; `pos[i]` is where character `i` came from. */
export interface LogicalLine {
  text: string;
  /** One entry per UTF-16 unit of `text`, plus one for the end. */
  pos: Pos[];
  /** The here-documents that follow a RUN or COPY line, in the order of their `<<` markers. */
  heredocs?: Heredoc[];
}

export function isBlank(c: string): boolean {
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
export function logicalLines(source: string): LogicalLine[] {
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
  for (let n = 0; n < physical.length; n++) {
    const raw = physical[n] ?? '';
    const line = n + 1;
    if (/^[ \t]*(#|$)/.test(raw)) continue;
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
    if (cont) continue;
    const { docs, next } = readHeredocs(cur.text, physical, n + 1);
    n = next - 1;
    if (docs.length > 0) cur.heredocs = docs;
    finish(last);
  }
  finish(last);
  return out;
}

/**
 * Physical line `raw` (number `line`) from its character `from` on, as a logical line of its
 * own: a here-document's line that is substituted alone.
 */
export function physicalLine(raw: string, line: number, from = 0): LogicalLine {
  const cols = columnsOf(raw);
  return {
    text: raw.slice(from),
    pos: cols.slice(from).map((column) => ({ line, column })),
  };
}

export function trimLine(line: LogicalLine): LogicalLine {
  const text = line.text.replace(/[ \t]+$/, '');
  return {
    text,
    pos: [...line.pos.slice(0, text.length), line.pos[text.length] ?? { line: 1, column: 1 }],
    ...(line.heredocs !== undefined ? { heredocs: line.heredocs } : {}),
  };
}
