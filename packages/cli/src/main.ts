import yargs from 'yargs/yargs';
import type { Argv } from 'yargs';
import { InvalidArgumentError } from '@strata/oci';
import { Context, GlobalArgs } from './context';
import { exitCodeFor, formatError } from './output';
import { templateCommands } from './commands/template';
import { storeCommands } from './commands/store';
import { archiveCommands } from './commands/archive';
import { imageCommands } from './commands/image';
import { registryCommands } from './commands/registry';
import { buildCommands } from './commands/build';
import { checkCommands } from './commands/check';

export type Register = (y: Argv<GlobalArgs>, run: Runner) => Argv<GlobalArgs>;
/** Wraps a command body: yargs' inferred argument types are checked by each command's own interface. */
export type Runner = <A>(
  fn: (ctx: Context, args: A) => Promise<void>,
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
) => (args: any) => Promise<void>;

export interface MainOptions {
  /** Told the command's words (`push`, `template create`) when its body starts. */
  onCommand?: (command: string) => void;
}

/** Run the CLI; resolves to the process exit code. Only this package prints or exits. */
export async function main(argv: string[], opts: MainOptions = {}): Promise<number> {
  let ctx: Context | undefined;
  let failure: unknown;
  const run: Runner = (fn) => async (args) => {
    opts.onCommand?.((args as { _: unknown[] })._.map(String).join(' '));
    ctx = new Context(args as GlobalArgs);
    await fn(ctx, args);
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
      if (err?.name === 'YError') throw new InvalidArgumentError(err.message);
      throw err ?? new InvalidArgumentError(msg);
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
  ])
    y = register(y, run);
  skipHelpCache(y);
  try {
    await y.parseAsync();
  } catch (e) {
    failure ??= e;
  }
  const debug = argv.includes('--debug');
  if (failure !== undefined) {
    process.stderr.write(`${formatError(failure, debug)}\n`);
    return exitCodeFor(failure);
  }
  return (ctx as Context | undefined)?.exitCode ?? 0;
}

/**
 * After starting a command, yargs renders the whole help text and keeps it, in case the command
 * then fails with a usage error. That costs about 12 ms on every run, before the command's first
 * I/O. Strata's `.fail()` throws instead of printing help, so the text is never shown: the
 * rendering is skipped. `--help` itself renders as before. If a yargs release drops the internal
 * hook, this does nothing.
 */
function skipHelpCache(y: Argv<GlobalArgs>): void {
  type Usage = { cacheHelpMessage?: () => void };
  type Internals = { getInternalMethods?: () => { getUsageInstance?: () => Usage | undefined } };
  const usage = (y as unknown as Internals).getInternalMethods?.().getUsageInstance?.();
  if (typeof usage?.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => undefined;
}
