import yargs from 'yargs/yargs';
import type { Argv } from 'yargs';
import { InvalidArgumentError, isStrataError } from '@strata/oci';
import { Context, GlobalArgs } from './context';
import { errorDocument, exitCodeFor, formatError, jsonRequested } from './output';
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
  const run: Runner = (fn) => async (args) => {
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
    .strict()
    .demandCommand(1, 'Name a command; see strata --help')
    .recommendCommands()
    .exitProcess(false)
    .fail((msg, err) => {
      // Throwing stops yargs from running the handler after a validation failure. yargs wraps
      // what a .check() or coerce throws in a YError: that is a usage error (exit 2), like the
      // ones it finds itself; errors from a command's handler pass through as they are.
      if (err?.name === 'YError') throw new InvalidArgumentError(usageMessage(err.message, argv));
      throw err ?? new InvalidArgumentError(usageMessage(msg, argv));
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
    process.stderr.write(`${formatError(failure, debug)}\n`);
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

function isInterrupted(e: unknown): boolean {
  return isStrataError(e) && e.code === 'INTERRUPTED';
}
