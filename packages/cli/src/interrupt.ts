import { StrataError } from '@strata/oci';

/** What a command that the user interrupted fails with (exit 130). */
export function interrupted(): StrataError {
  return new StrataError('INTERRUPTED', 'interrupted');
}

/** How soon the same signal again counts as the first one's echo, in ms. */
export const REPEAT_MS = 1000;

/**
 * SIGINT and SIGTERM during one run of the CLI. Work run through {@link within} stops by itself
 * when its signal aborts, removing what it made (scratch files outside the store), and is waited
 * for; an interruption anywhere else ends the command at once ({@link stopped}), as a kill would:
 * what it leaves then (a partial download) is what the store copes with after a kill. A second
 * interruption does not wait; the same signal again within {@link REPEAT_MS} is not a second
 * one: GNU timeout and a terminal's Ctrl-C send it to the CLI and then to its process group.
 */
export class Interruption {
  private readonly controller = new AbortController();
  private waiting = 0;
  private stop: (e: StrataError) => void = () => undefined;
  private last?: { signal: string; at: number };
  /** Rejects with an INTERRUPTED StrataError when the command must end at once. */
  readonly stopped: Promise<never>;

  constructor(private readonly now: () => number = Date.now) {
    this.stopped = new Promise<never>((_, reject) => (this.stop = reject));
    this.stopped.catch(() => undefined);
  }

  get aborted(): boolean {
    return this.controller.signal.aborted;
  }

  /** The user interrupted the command (with `signal`, when a signal did). */
  readonly interrupt = (signal = 'SIGINT'): void => {
    const at = this.now();
    // Timed from the first of them: a user who keeps pressing Ctrl-C is heard after a second.
    if (this.last !== undefined && this.last.signal === signal && at - this.last.at < REPEAT_MS)
      return;
    this.last = { signal, at };
    const again = this.aborted;
    this.controller.abort();
    if (again || this.waiting === 0) this.stop(interrupted());
  };

  /** Run `work`, which stops on its signal by itself; an interrupted command starts none. */
  async within<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.aborted) throw interrupted();
    this.waiting++;
    try {
      return await work(this.controller.signal);
    } finally {
      this.waiting--;
    }
  }

  /** Listen for SIGINT and SIGTERM; returns what stops listening. */
  listen(): () => void {
    process.on('SIGINT', this.interrupt);
    process.on('SIGTERM', this.interrupt);
    return () => {
      process.off('SIGINT', this.interrupt);
      process.off('SIGTERM', this.interrupt);
    };
  }
}
