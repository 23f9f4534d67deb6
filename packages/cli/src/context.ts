import type { Store } from '@strata/store';
import { ProgressLine } from './output';

export interface GlobalArgs {
  store?: string;
  json: boolean;
  debug: boolean;
}

/** What every command gets: the store, and where to print. */
export class Context {
  private opened?: Promise<Store>;
  exitCode = 0;

  constructor(
    readonly args: GlobalArgs,
    readonly stdout: NodeJS.WriteStream = process.stdout,
    readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  get json(): boolean {
    return this.args.json;
  }

  /**
   * The store, opened once. A command may start opening it early and await it later: a failure
   * in between surfaces where it is awaited, not as an unhandled rejection.
   */
  store(): Promise<Store> {
    if (!this.opened) {
      this.opened = import('@strata/store').then(({ Store, defaultStorePath }) =>
        Store.open(this.args.store ?? defaultStorePath()),
      );
      this.opened.catch(() => undefined);
    }
    return this.opened;
  }

  print(line = ''): void {
    this.stdout.write(`${line}\n`);
  }

  printJson(doc: unknown): void {
    this.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  }

  progress(): ProgressLine {
    return new ProgressLine(this.stderr);
  }
}
