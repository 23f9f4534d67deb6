/**
 * COPY, from its flags, sources (paths of the build context or of an earlier stage, and
 * here-documents) and destination to its syntax-tree node with canonical text.
 */
import { posix } from 'node:path';
import type { CopyFrom, CopyInstruction } from './ast';
import { Ctx, FLAGS } from './arguments';
import { Heredoc, closedHeredocs } from './heredoc';
import { Lexer, Lookup, WORDS, Word, plainLexer, quoteWord, scanJsonArray } from './lexer';
import { physicalLine } from './lines';
import { OCTAL_MODE, OWNER, contextPath } from './values';
import type { StageLookup } from './instructions';

/** Parse a COPY line (see docs/stratafile.md, COPY). */
export function parseCopy(ctx: Ctx, lookup: Lookup, stageOf?: StageLookup): CopyInstruction {
  const lx = ctx.lx;
  const loc = ctx.loc;
  const flags = ctx.flags(FLAGS.COPY ?? {});
  const docs = closedHeredocs(lx);
  const json = scanJsonArray(lx.text, ctx.next);
  const words: Word[] =
    json === null
      ? ctx.positional(WORDS)
      : json.map((e) => {
          const sub = plainLexer(lx, e.start, e.value, lookup);
          const value =
            sub.scan(0, { split: false, whole: true, plain: true }).words[0]?.value ?? '';
          return { value, raw: e.value, start: e.start, end: e.start };
        });
  const dest = words[words.length - 1];
  const sources = words.slice(0, -1);
  if (dest === undefined || sources.length === 0) {
    throw ctx.missing('COPY requires at least one source and a destination');
  }
  // Each here-document is a source word of its own: the word its marker starts.
  const docOf = new Map<Word, Heredoc>();
  for (const d of docs) {
    const w = words.find((x) => x.start === d.start);
    if (w === undefined || w.end !== d.end)
      throw lx.error(d.start, `here-document <<${d.delimiter} must be a word of its own`);
    if (w === dest)
      throw lx.error(
        d.start,
        'the destination of a COPY cannot be a here-document',
        `write it as a source: COPY ${lx.text.slice(d.start, d.end)} /path/to/file`,
      );
    docOf.set(w, d);
  }
  const fromFlag = flags.get('from');
  const [firstDoc] = docs;
  if (fromFlag && firstDoc !== undefined)
    throw lx.error(
      firstDoc.start,
      `COPY --from cannot copy here-document <<${firstDoc.delimiter}: its sources are in the stage`,
      'copy the here-document in a COPY of its own, without --from',
    );
  let from: CopyFrom | undefined;
  if (fromFlag) {
    if ((fromFlag.value ?? '') === '')
      throw lx.error(fromFlag.at, '--from needs a stage: --from=<stage name or index>');
    if (stageOf === undefined) throw lx.error(fromFlag.at, 'COPY --from outside a stage');
    from = { ref: fromFlag.value ?? '', index: stageOf(fromFlag), loc: lx.loc(fromFlag.at) };
  }
  const paths = sources.filter((s) => !docOf.has(s));
  for (const s of paths) {
    if (from === undefined) contextPath(lx, s, 'COPY source');
    else if (s.value === '') throw lx.error(s.start, 'COPY source is empty');
  }
  if (dest.value === '') throw lx.error(dest.start, 'COPY destination is empty');
  if (sources.length > 1 && !dest.value.endsWith('/')) {
    throw lx.error(
      dest.start,
      `COPY with several sources needs a directory destination ending in "/", got ${JSON.stringify(dest.value)}`,
    );
  }
  // In a directory a here-document's file is named by its delimiter, as in BuildKit.
  if (dest.value.endsWith('/')) {
    for (const d of docs) {
      if (d.delimiter.includes('/') || d.delimiter === '.' || d.delimiter === '..')
        throw lx.error(
          d.start,
          `here-document <<${d.delimiter} copied into the directory ${dest.value} needs a plain file name as its delimiter`,
          'name it like a file: COPY <<app.conf /etc/app/',
        );
    }
  }
  const destPath = posix.normalize(dest.value.startsWith('/') ? dest.value : `/${dest.value}`);
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
  // A stage's paths are inside its tree, relative ones to its root, as docker's COPY --from
  // takes them; `..` cannot climb above that root.
  const srcs = paths.map((s) => (from === undefined ? s.value : posix.normalize(`/${s.value}`)));
  // The line shows each source where it stands, a here-document by its marker as written,
  // and then, as RUN's, every line of the here-documents.
  const shown = sources.map((s) => {
    const d = docOf.get(s);
    if (d !== undefined) return lx.text.slice(d.start, d.end);
    const i = paths.indexOf(s);
    return quoteWord(srcs[i] ?? s.value);
  });
  const written = docs.map((d) => [...d.lines, d.endLine].join('\n'));
  const heredocs = docs.map((d) => ({
    name: d.delimiter,
    content: heredocContent(lx, d, lookup),
    loc: lx.loc(d.start),
  }));
  return {
    kind: 'COPY',
    sources: srcs,
    sourceLocs: paths.map((s) => lx.loc(s.start)),
    ...(heredocs.length > 0 ? { heredocs } : {}),
    dest: destPath,
    destLoc: lx.loc(dest.start),
    ...(chown?.value !== undefined ? { chown: chown.value, chownLoc: lx.loc(chown.at) } : {}),
    ...(chmod !== undefined ? { chmod } : {}),
    ...(from !== undefined ? { from } : {}),
    loc,
    text: [ctx.canonical([...shown, quoteWord(destPath)]), ...written].join('\n'),
  };
}

/**
 * The text of a here-document that COPY writes into a file, as BuildKit makes it: its lines,
 * each ending in a newline, without their leading tabs for `<<-WORD`; for an unquoted WORD with
 * `$VAR` and `${VAR…}` substituted from the stage's ARG and ENV as in COPY's other arguments
 * (`\\$` is a literal `$`; quotes and other backslashes stay as written).
 */
function heredocContent(lx: Lexer, d: Heredoc, lookup: Lookup): string {
  return d.lines
    .map((written, i) => {
      const tabs = d.stripTabs ? (/^\t*/.exec(written)?.[0].length ?? 0) : 0;
      if (d.quoted) return `${written.slice(tabs)}\n`;
      const sub = new Lexer(lx.file, physicalLine(written, d.line + i, tabs), lookup);
      const value = sub.scan(0, { split: false, whole: true, plain: true }).words[0]?.value ?? '';
      return `${value}\n`;
    })
    .join('');
}
