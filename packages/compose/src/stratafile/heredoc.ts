/**
 * Here-documents, as in BuildKit's Dockerfile and the shell: where their `<<WORD` markers are on a
 * RUN or COPY line, the physical lines that belong to them, and the command a RUN makes of them.
 */
import type { Lexer } from './lexer';
import { shellQuote } from './shell';

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
  /** The 1-based number of the physical line its first line is on. */
  line: number;
  /** Its lines, as written, without the line that ends it. */
  lines: string[];
  /** The line that ends it, as written; undefined when the file ends first. */
  endLine?: string;
}

/**
 * The here-documents of logical line `text` (a RUN or COPY; any other has none), read from
 * `physical[from]` on; `next` is the first physical line after them.
 */
export function readHeredocs(
  text: string,
  physical: readonly string[],
  from: number,
): { docs: Heredoc[]; next: number } {
  const markers = /^[ \t]*(RUN|COPY)[ \t]/i.test(text) ? heredocMarkers(text) : [];
  const docs: Heredoc[] = [];
  let n = from;
  for (const m of markers) {
    const line = n + 1;
    const lines: string[] = [];
    let endLine: string | undefined;
    while (n < physical.length) {
      const body = physical[n++] ?? '';
      if ((m.stripTabs ? body.replace(/^\t+/, '') : body) === m.delimiter) {
        endLine = body;
        break;
      }
      lines.push(body);
    }
    docs.push({ ...m, line, lines, ...(endLine !== undefined ? { endLine } : {}) });
    if (endLine === undefined) break;
  }
  return { docs, next: n };
}

/** Whether `i` starts a word, or follows only the descriptor number that starts one (`3<<EOF`). */
function atWordStart(text: string, i: number): boolean {
  let j = i;
  while (j > 0 && /[0-9]/.test(text.charAt(j - 1))) j--;
  return j === 0 || /[ \t]/.test(text.charAt(j - 1));
}

/**
 * The `<<WORD` markers of a line, outside quotes and at the start of a word, maybe after a
 * descriptor number (so `$((1<<2))` and `<<<` are not markers), as the shell reads them. WORD
 * is a name, or anything in quotes.
 */
export function heredocMarkers(text: string): Omit<Heredoc, 'line' | 'lines' | 'endLine'>[] {
  const found: Omit<Heredoc, 'line' | 'lines' | 'endLine'>[] = [];
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

/** The line's here-documents; one the file ends inside is an error at its marker. */
export function closedHeredocs(lx: Lexer): Heredoc[] {
  const docs = lx.line.heredocs ?? [];
  for (const d of docs) {
    if (d.endLine === undefined)
      throw lx.error(
        d.start,
        `here-document <<${d.delimiter} is not closed: the file ends before a line "${d.delimiter}"`,
      );
  }
  return docs;
}

/**
 * The command of `RUN <<EOF` alone: its lines are the script, as in BuildKit. A script that
 * starts with `#!` is run by that interpreter (with its one optional argument, as the kernel
 * reads a `#!` line), reading the script from a descriptor, so that nothing is written into the
 * tree and the script's stdin stays the step's; any other script is run by /bin/sh.
 */
function heredocScript(d: Heredoc): string {
  const lines = d.stripTabs ? d.lines.map((l) => l.replace(/^\t+/, '')) : d.lines;
  const body = lines.map((l) => `${l}\n`).join('');
  const shebang = /^#!\s*(\S+)(?:[ \t]+(.*?))?[ \t]*$/.exec(lines[0] ?? '');
  if (shebang === null) return body;
  let end = 'STRATA_SCRIPT_END';
  while (lines.includes(end)) end += '_';
  const interpreter = [shebang[1] ?? '', ...(shebang[2] ? [shebang[2]] : [])];
  return `exec ${interpreter.map(shellQuote).join(' ')} /dev/fd/3 3<<'${end}'\n${body}${end}`;
}

/**
 * What a RUN with here-documents runs, and its text (its history entry and cache key, with every
 * line); undefined for a RUN without. `rest` is the command as written on the line.
 */
export function heredocCommand(
  lx: Lexer,
  rest: string,
): { command: string; text: string } | undefined {
  const docs = closedHeredocs(lx);
  const [only] = docs;
  if (only === undefined) return undefined;
  const written = docs.map((d) => [...d.lines, d.endLine].join('\n')).join('\n');
  const alone = docs.length === 1 && rest === lx.text.slice(only.start, only.end);
  return {
    command: alone ? heredocScript(only) : `${rest}\n${written}`,
    text: `${rest}\n${written}`,
  };
}
