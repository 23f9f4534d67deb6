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
      .map((n) =>
        argv.some((a) => a === `--${n}` || a.startsWith(`--${n}=`))
          ? `unknown option --${n}`
          : `unexpected argument ${JSON.stringify(n)}`,
      )
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
