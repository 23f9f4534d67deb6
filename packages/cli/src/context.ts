import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Store } from '@strata/store';
import { Interruption } from './interrupt';
import { Progress, isLive } from './progress';
import { visible } from './output';

export interface GlobalArgs {
  store?: string;
  json: boolean;
  debug: boolean;
  /** Print only errors and the final line. */
  quiet: boolean;
}

/** What every command gets: the store, and where to print. */
export class Context {
  private opened?: Promise<Store>;
  private readonly bars: Progress[] = [];
  exitCode = 0;
  /**
   * With --json, the report of a command that fails after its work is done: printed with the
   * error object in it, so that stdout holds one object.
   */
  failureReport?: Record<string, unknown>;

  constructor(
    readonly args: GlobalArgs,
    private readonly interruption = new Interruption(),
    readonly stdout: NodeJS.WriteStream = process.stdout,
    readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  /**
   * Run `work`, which stops by itself when its signal aborts (the user interrupted the command:
   * SIGINT, SIGTERM), removing what it made; the command waits for it. An interruption outside
   * such work ends the command at once (see Interruption).
   */
  interruptible<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.interruption.within(work);
  }

  /** Whether the user interrupted the command. */
  get interrupted(): boolean {
    return this.interruption.aborted;
  }

  get json(): boolean {
    return this.args.json;
  }

  get quiet(): boolean {
    return Boolean(this.args.quiet);
  }

  /** Whether live progress is drawn: on a terminal, outside CI, unless quiet or --json. */
  get live(): boolean {
    return !this.json && isLive(this.stderr, this.quiet);
  }

  /**
   * Make ready to write an output the user named, before the work that leads to it: missing
   * parent directories are made, and what stops the write fails now, naming `flag` and the path.
   */
  async output(file: string, flag: string, directory = false): Promise<void> {
    const { prepareOutput } = await import('@strata/store');
    await prepareOutput(file, `${flag} ${file}`, { directory });
  }

  /** A note or warning on stderr; quiet keeps only errors and the final line. */
  note(line: string): void {
    if (!this.quiet) this.stderr.write(`${visible(line)}\n`);
  }

  /**
   * The store, opened once. A command may start opening it early and await it later: a failure
   * in between surfaces where it is awaited, not as an unhandled rejection. At a path the user
   * gave that is not there, only a command that writes (`create`) makes a store: one that reads
   * would make an empty store of a mistyped --store and report it empty.
   */
  store(create = false): Promise<Store> {
    if (!this.opened) {
      this.opened = import('@strata/store').then(async ({ Store, defaultStorePath }) => {
        const given = this.args.store ?? (process.env.STRATA_STORE || undefined);
        const root = path.resolve(given ?? defaultStorePath());
        // The default store is made on first use: a fresh machine reads a registry's templates
        // (inspect, diff, sbom) before it has one. So is an empty directory given for it.
        if (!create && given !== undefined && !(await exists(root))) {
          const { NotFoundError } = await import('@strata/oci');
          throw new NotFoundError(`no store at ${root}`, {
            hint: 'give the store with --store DIR or $STRATA_STORE; template create, build, pull and load make one',
          });
        }
        return Store.open(root);
      });
      this.opened.catch(() => undefined);
    }
    return this.opened;
  }

  print(line = ''): void {
    this.stdout.write(`${visible(line)}\n`);
  }

  printJson(doc: unknown): void {
    this.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  }

  /** The bars of one command (inert off a terminal, with --json or --quiet). */
  progress(): Progress {
    const p = new Progress(this.stderr, this.live);
    this.bars.push(p);
    return p;
  }

  /** Take any bars left (a command that failed) off the terminal, before the error is printed. */
  finish(): void {
    for (const p of this.bars.splice(0)) p.done();
  }
}

/** Whether anything is at `root`; a file there is left to Store.open to refuse. */
async function exists(root: string): Promise<boolean> {
  return fsp.stat(root).then(
    () => true,
    () => false,
  );
}
