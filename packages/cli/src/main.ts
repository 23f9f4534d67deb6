import yargs from 'yargs/yargs';
import type { Argv } from 'yargs';
import { InvalidArgumentError, isStrataError } from '@strata/oci';
import { Context, GlobalArgs } from './context';
import { errorDocument, exitCodeFor, formatError, jsonRequested, visible } from './output';
import { Interruption, interrupted } from './interrupt';
import { usageMessage } from './usage';
import { templateCommands } from './commands/template';
import { storeCommands } from './commands/store';
import { archiveCommands } from './commands/archive';
import { imageCommands } from './commands/image';
import { registryCommands } from './commands/registry';
import { buildCommands } from './commands/build';
import { checkCommands } from './commands/check';
import { debsCommands } from './commands/debs';
import { diffCommands } from './commands/diff';
import { reportCommands } from './commands/report';
import { sbomCommands } from './commands/sbom';
import { sourcesCommands } from './commands/sources';

export type Register = (y: Argv<GlobalArgs>, run: Runner) => Argv<GlobalArgs>;
/** Wraps a command body: yargs' inferred argument types are checked by each command's own interface. */
export type Runner = <A>(
  fn: (ctx: Context, args: A) => Promise<void>,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
) => (args: any) => Promise<void>;

/** Run the CLI; resolves to the process exit code. Only this package prints or exits. */
export async function main(argv: string[]): Promise<number> {
  let ctx: Context | undefined;
  let failure: unknown;
  const interruption = new Interruption();
  // What fails before a command's handler starts is yargs' parsing, its checks and coerces:
  // the arguments were wrong (a usage error), whatever the error's class.
  let handling = false;
  const run: Runner = (fn) => async (args) => {
    handling = true;
    ctx = new Context(args as GlobalArgs, interruption);
    if (interruption.aborted) throw interrupted();
    const work = fn(ctx, args);
    // Once the command is ended at once, the process exits: how its work ends does not matter.
    work.catch(() => undefined);
    await Promise.race([work, interruption.stopped]);
  };
  let y = yargs(argv)
    .scriptName('strata')
    .usage('$0 <command> [options]\n\nBuild Debian root filesystems as stacks of OCI layers.')
    .option('store', {
      type: 'string',
      describe:
        'Store directory (an OCI image layout); default $STRATA_STORE or $XDG_DATA_HOME/strata/store',
      global: true,
    })
    .option('json', {
      type: 'boolean',
      default: false,
      describe: 'Machine-readable output',
      global: true,
    })
    .option('quiet', {
      alias: 'q',
      type: 'boolean',
      default: false,
      describe: 'Print only errors and the final line (no progress, steps or notes)',
      global: true,
    })
    .option('debug', {
      type: 'boolean',
      default: false,
      describe: 'Show stack traces on errors',
      global: true,
    })
    // yargs passes a middleware the parser too, with the command's options; its typings do not.
    .middleware(refuseRepeated as (args: Record<string, unknown>) => void, true)
    .strict()
    .demandCommand(1, 'Name a command; see strata --help')
    .recommendCommands()
    .exitProcess(false)
    .fail((msg, err) => {
      // Throwing stops yargs from running the handler after a validation failure. What a
      // .check() or coerce throws, and yargs' own YErrors, are usage errors (exit 2), like the
      // ones it finds itself; errors from a command's handler pass through as they are.
      if (err === undefined || err === null)
        throw new InvalidArgumentError(usageMessage(msg, argv, knownOptions(y)));
      if (handling || isStrataError(err)) throw err;
      throw new InvalidArgumentError(usageMessage(err.message, argv));
    })
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100)) as unknown as Argv<GlobalArgs>;
  for (const register of [
    templateCommands,
    storeCommands,
    archiveCommands,
    imageCommands,
    registryCommands,
    buildCommands,
    checkCommands,
    debsCommands,
    diffCommands,
    reportCommands,
    sbomCommands,
    sourcesCommands,
  ])
    y = register(y, run);
  const unlisten = interruption.listen();
  try {
    await y.parseAsync();
  } catch (e) {
    failure ??= e;
  } finally {
    unlisten();
  }
  // Work that stopped on the signal may fail in its own words (a pipe closed under it): the
  // cause is the interruption.
  if (failure !== undefined && interruption.aborted && !isInterrupted(failure))
    failure = interrupted();
  (ctx as Context | undefined)?.finish();
  const debug = argv.includes('--debug');
  if (failure !== undefined) {
    process.stderr.write(`${visible(formatError(failure, debug))}\n`);
    // A script that reads stdout gets an object to parse, whatever failed: a usage error is
    // found before there is a Context, so --json is then read from the arguments.
    const c = ctx as Context | undefined;
    if (c?.json ?? jsonRequested(argv)) {
      const doc = { ...c?.failureReport, ...errorDocument(failure) };
      process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
    }
    return exitCodeFor(failure);
  }
  return (ctx as Context | undefined)?.exitCode ?? 0;
}

interface YargsOptions {
  key: Record<string, unknown>;
  array: string[];
  alias: Record<string, string[] | undefined>;
}

/**
 * yargs makes an array of any option given twice, which a command that takes one value would
 * take for a string: a usage error names the option, for every option not declared an array.
 */
function refuseRepeated(args: Record<string, unknown>, parser: unknown): void {
  // The command's own options: yargs' typings leave out getOptions.
  const options = (parser as { getOptions(): YargsOptions }).getOptions();
  const arrays = new Set(options.array);
  const aliases = options.alias;
  for (const [key, value] of Object.entries(args)) {
    if (key === '_' || key === '$0' || !Array.isArray(value) || value.length < 2) continue;
    // Each option once, by its long name: yargs sets its short alias and camelCase name too.
    if (key.length === 1 || /[A-Z]/.test(key)) continue;
    const names = [key, ...(aliases[key] ?? [])];
    if (names.some((n) => arrays.has(n))) continue;
    const short = names.filter((n) => n.length === 1).map((n) => `-${n}/`);
    const times = value.length === 2 ? 'twice' : `${value.length} times`;
    throw new InvalidArgumentError(
      `${short.join('')}--${key} given ${times}; give it once (${value.map(String).join(', ')})`,
    );
  }
}

/** The options the command takes, by every name yargs knows them by. */
function knownOptions(parser: unknown): Set<string> {
  const options = (parser as { getOptions(): YargsOptions }).getOptions();
  const names = new Set(Object.keys(options.key));
  for (const [name, aliases] of Object.entries(options.alias)) {
    names.add(name);
    for (const a of aliases ?? []) names.add(a);
  }
  return names;
}

function isInterrupted(e: unknown): boolean {
  return isStrataError(e) && e.code === 'INTERRUPTED';
}
