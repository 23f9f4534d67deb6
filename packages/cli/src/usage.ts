/**
 * yargs' own usage messages, as one line that says what was wrong: its "Did you mean login?"
 * for `strata bogus` does not say that bogus is not a command, and its invalid-choice message
 * spans lines.
 */
export function usageMessage(
  msg: string,
  argv: readonly string[],
  known?: ReadonlySet<string>,
): string {
  // An unknown option takes the word after it for its value (`check --bogus product:1`), and
  // yargs then misses the positional before it looks for unknown options: name the option.
  if (known && /^Not enough non-option arguments/.test(msg)) {
    const unknown = unknownOptions(argv, known);
    if (unknown.length > 0) return unknown.map((n) => `unknown option --${n}`).join('; ');
  }
  const suggestion = /^Did you mean (\S+)\?$/.exec(msg.trim());
  if (suggestion) {
    const word = commandWord(argv);
    return `unknown command ${JSON.stringify(word ?? '')}; did you mean ${suggestion[1]}?`;
  }
  const unknown = /^Unknown arguments?: (.+)$/.exec(msg.trim());
  if (unknown?.[1] !== undefined) {
    // yargs names an unknown --bogus-flag twice, the second time as bogusFlag.
    const all = unknown[1].split(', ');
    const names = all.filter((n) => !(/[A-Z]/.test(n) && all.includes(kebabCase(n))));
    const word = commandWord(argv);
    if (names.length === 1 && names[0] === word)
      return `unknown command ${JSON.stringify(word)} (strata --help lists the commands)`;
    return names
      .map((n) => {
        const written = optionAsWritten(argv, n);
        if (written === undefined) return `unexpected argument ${JSON.stringify(n)}`;
        const near = known && written.startsWith('--') ? nearest(written, known) : undefined;
        return `unknown option ${written}${near ? `; did you mean ${near}?` : ''}`;
      })
      .join('; ');
  }
  const invalid = /^Invalid values?:\n([\s\S]*)$/.exec(msg);
  if (invalid?.[1] !== undefined) {
    return invalid[1]
      .split('\n')
      .map((line) => {
        const m = /^\s*Argument: (\S+), Given: (.*), Choices: (.*)$/.exec(line);
        if (!m) return line.trim();
        const choices = (m[3] ?? '').split(', ').map((c) => c.replace(/^"(.*)"$/, '$1'));
        return `--${m[1]} ${m[2]} is not one of: ${choices.join(', ')}`;
      })
      .filter((line) => line !== '')
      .join('; ');
  }
  return msg
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join('; ');
}

/**
 * How the user wrote option `name` that yargs calls unknown: `--name`, `--no-name` (yargs
 * reports a typo in a negated flag without its no-) or `-n` (alone or among bundled flags).
 */
function optionAsWritten(argv: readonly string[], name: string): string | undefined {
  for (const a of argv) {
    if (a === '--') break;
    for (const w of [`--${name}`, `--no-${name}`]) if (a === w || a.startsWith(`${w}=`)) return w;
    if (name.length === 1 && /^-[A-Za-z0-9]+$/.test(a) && a.includes(name)) return `-${name}`;
  }
  return undefined;
}

/** The known long option nearest to `written` (`--no-cahce`: `--no-cache`), if one is close. */
function nearest(written: string, known: ReadonlySet<string>): string | undefined {
  const negated = written.startsWith('--no-');
  const name = written.slice(negated ? 5 : 2);
  let best: { n: string; d: number } | undefined;
  for (const k of known) {
    if (k.length < 2 || /[A-Z]/.test(k)) continue;
    const d = editDistance(name, k);
    if (d <= Math.max(1, Math.floor(name.length / 4)) && (best === undefined || d < best.d))
      best = { n: k, d };
  }
  return best && `--${negated ? 'no-' : ''}${best.n}`;
}

/** Levenshtein distance, a swap of two neighbours counting as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const up = d[i - 1] as number[];
      row[j] = Math.min(
        (up[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (up[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1);
    }
  return (d[a.length] as number[])[b.length] as number;
}

/** The word in the command's place: the first argument that is neither an option nor --store's value. */
function commandWord(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--store') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The long options in argv (before a `--`) that are not in `known` (names, aliases, camelCase). */
export function unknownOptions(argv: readonly string[], known: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const a of argv) {
    if (a === '--') break;
    const m = /^--(?:no-)?([^=]+)/.exec(a);
    const name = m?.[1];
    if (name === undefined || known.has(name) || known.has(a.slice(2).split('=')[0] ?? ''))
      continue;
    if (!out.includes(name)) out.push(name);
  }
  return out;
}
