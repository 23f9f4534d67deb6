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

/**
 * A here-document, as in BuildKit's Dockerfile and the shell: a `<<WORD` marker on a RUN or COPY
 * line, and the physical lines after the instruction up to a line that is exactly WORD. Its lines
 * are kept as written: no comment or blank line is dropped and no `\\` joins anything.
 */
export interface Heredoc {
  delimiter: string;
  /** `<<-WORD`: leading tabs are dropped from its lines and from the line that ends it. */
  stripTabs: boolean;
  /** `<<'WORD'` or `<<"WORD"`: its body is taken literally (no expansion by the shell). */
  quoted: boolean;
  /** Where the marker is in the logical line's text: `text.slice(start, end)` is `<<WORD`. */
  start: number;
  end: number;
  /** Its lines, as written, without the line that ends it. */
  lines: string[];
  /** The line that ends it, as written; undefined when the file ends first. */
  endLine?: string;
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
    const markers = /^[ \t]*(RUN|COPY)[ \t]/i.test(cur.text) ? heredocMarkers(cur.text) : [];
    const docs: Heredoc[] = [];
    for (const m of markers) {
      const lines: string[] = [];
      let endLine: string | undefined;
      while (n + 1 < physical.length) {
        const body = physical[++n] ?? '';
        if ((m.stripTabs ? body.replace(/^\t+/, '') : body) === m.delimiter) {
          endLine = body;
          break;
        }
        lines.push(body);
      }
      docs.push({ ...m, lines, ...(endLine !== undefined ? { endLine } : {}) });
      if (endLine === undefined) break;
    }
    if (docs.length > 0) cur.heredocs = docs;
    finish(last);
  }
  finish(last);
  return out;
}

/** Whether `i` starts a word, or follows only the descriptor number that starts one (`3<<EOF`). */
function atWordStart(text: string, i: number): boolean {
  let j = i;
  while (j > 0 && /[0-9]/.test(text.charAt(j - 1))) j--;
  return j === 0 || isBlank(text.charAt(j - 1));
}

/**
 * The `<<WORD` markers of a line, outside quotes and at the start of a word, maybe after a
 * descriptor number (so `$((1<<2))` and `<<<` are not markers), as the shell reads them. WORD
 * is a name, or anything in quotes.
 */
export function heredocMarkers(text: string): Omit<Heredoc, 'lines' | 'endLine'>[] {
  const found: Omit<Heredoc, 'lines' | 'endLine'>[] = [];
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i);
    if (quote !== undefined) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '\\') {
      i++;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '<' && atWordStart(text, i)) {
      const m =
        /^<<(-?)(?:'([^'\n]+)'|"([^"\n]+)"|([A-Za-z0-9_][A-Za-z0-9_.-]*))(?=$|[ \t<>|&;)])/.exec(
          text.slice(i),
        );
      if (m === null) continue;
      const quoted = m[2] ?? m[3];
      found.push({
        delimiter: quoted ?? m[4] ?? '',
        stripTabs: m[1] === '-',
        quoted: quoted !== undefined,
        start: i,
        end: i + m[0].length,
      });
      i += m[0].length - 1;
    }
  }
  return found;
}

export function trimLine(line: LogicalLine): LogicalLine {
  const text = line.text.replace(/[ \t]+$/, '');
  return {
    text,
    pos: [...line.pos.slice(0, text.length), line.pos[text.length] ?? { line: 1, column: 1 }],
    ...(line.heredocs !== undefined ? { heredocs: line.heredocs } : {}),
  };
}
