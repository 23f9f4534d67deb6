/**
 * yargs' own usage messages, as one line that says what was wrong: its "Did you mean login?"
 * for `strata bogus` does not say that bogus is not a command, and its invalid-choice message
 * spans lines.
 */
export function usageMessage(msg: string, argv: readonly string[]): string {
  const suggestion = /^Did you mean (\S+)\?$/.exec(msg.trim());
  if (suggestion) {
    const word = commandWord(argv);
    return `unknown command ${JSON.stringify(word ?? '')}; did you mean ${suggestion[1]}?`;
  }
  const unknown = /^Unknown arguments?: (.+)$/.exec(msg.trim());
  if (unknown?.[1] !== undefined) {
    const names = unknown[1].split(', ');
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
