import type { MultiBar, SingleBar } from 'cli-progress';
import { counted, formatBytes, progressFigures } from './output';

let cliProgress: typeof import('cli-progress') | undefined;
/** cli-progress, loaded when the first bar is drawn: off a terminal, or quiet, none ever is. */
function loadCliProgress(): typeof import('cli-progress') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cliProgress ??= require('cli-progress') as typeof import('cli-progress');
  return cliProgress;
}

/**
 * Live progress on a terminal: bars with bytes, rate and time left, drawn by cli-progress. A
 * command's work only stores numbers in a bar's state; cli-progress redraws from that state on
 * its own timer, at most `FPS` times a second, so progress costs the fast paths an assignment.
 */
export const FPS = 10;

/**
 * Bars are drawn only once work has gone on this long: what ends sooner was over before a bar
 * could tell anyone anything, and leaves only its permanent lines.
 */
export const SHOW_AFTER_MS = 100;

/** Whether live progress goes to `stream`: a terminal, outside CI, and not `--quiet`. */
export function isLive(stream: NodeJS.WriteStream, quiet: boolean): boolean {
  return !quiet && Boolean(stream.isTTY) && !process.env.CI;
}

/** `9s`, `1m05s`, `2h03m`: a duration for a time left or a step's time. */
export function formatDuration(secs: number): string {
  if (!Number.isFinite(secs) || secs < 0) return '?';
  const s = Math.round(secs);
  if (s < 60) return secs < 10 ? `${secs.toFixed(1)}s` : `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export interface BarState {
  label: string;
  /** A timer (a build step): the label and the time so far, no bytes. */
  timer?: boolean;
  bytes: number;
  total?: number;
  /** The total is a guess, and is shown as one. */
  estimate?: boolean;
  /** ms since the epoch. */
  start: number;
}

/**
 * One bar's text: `label [####....] 42% 12.0 MiB / 28.5 MiB 3.1 MiB/s ETA 5.3s`. Without a
 * total there is no bar nor time left, only bytes and rate.
 */
export function barText(s: BarState, now: number, width = 24): string {
  const secs = Math.max((now - s.start) / 1000, 0.001);
  if (s.timer) return `${s.label} ${formatDuration(secs)}`;
  const rate = s.bytes / secs;
  const f = progressFigures(s.bytes, s.total, s.estimate);
  let bar = '';
  let eta = '';
  if (f.fraction !== undefined) {
    const fill = Math.round(f.fraction * width);
    bar = ` [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${Math.floor(f.fraction * 100)}%`;
    const left = Math.max((s.total ?? 0) - s.bytes, 0);
    eta = ` ETA ${rate > 0 ? formatDuration(left / rate) : '?'}`;
  }
  return `${s.label}${bar} ${f.text} ${formatBytes(rate)}/s${eta}`;
}

/** A bar the work moves: setting numbers is all an update does. */
export interface Bar {
  update(bytes: number, total?: number, estimate?: boolean): void;
  /** A new phase: a new label, and its own bytes, total and rate (unchanged label: no-op). */
  label(text: string, total?: number): void;
  /** Take the bar off the display. */
  remove(): void;
}

const inert: Bar = { update: () => undefined, label: () => undefined, remove: () => undefined };

/** A bar asked for, and its cli-progress bar once the bars are shown. */
interface Entry {
  state: BarState;
  drawn?: SingleBar;
}

/**
 * The bars of one command. Off a terminal (or quiet) every call does nothing: what is left to
 * print there is the command's final line, and the permanent lines it logs with `line()`. On a
 * terminal the bars appear `showAfterMs` after the first was asked for, if any is still there.
 */
export class Progress {
  private multi?: MultiBar;
  private readonly entries = new Set<Entry>();
  private showTimer?: NodeJS.Timeout;
  readonly started = Date.now();

  constructor(
    private readonly stream: NodeJS.WriteStream,
    readonly live: boolean,
    private readonly now: () => number = Date.now,
    private readonly showAfterMs: number = SHOW_AFTER_MS,
  ) {}

  bar(label: string, total?: number): Bar {
    return this.add({ label, bytes: 0, start: this.now(), ...(total ? { total } : {}) });
  }

  /** A line that shows how long the work has taken so far (a build step). */
  timer(label: string): Bar {
    return this.add({ label, bytes: 0, start: this.now(), timer: true });
  }

  private add(state: BarState): Bar {
    if (!this.live) return inert;
    const entry: Entry = { state };
    this.entries.add(entry);
    if (this.multi) entry.drawn = this.multi.create(1, 0, { state });
    else if (this.showAfterMs <= 0) this.show();
    else if (this.showTimer === undefined) {
      this.showTimer = setTimeout(() => this.show(), this.showAfterMs);
      this.showTimer.unref();
    }
    return {
      update: (bytes, t, estimate) => {
        state.bytes = bytes;
        if (t !== undefined) state.total = t;
        if (estimate !== undefined) state.estimate = estimate;
      },
      label: (text, t) => {
        if (text === state.label) return;
        state.label = text;
        state.bytes = 0;
        state.start = this.now();
        delete state.estimate;
        if (t) state.total = t;
        else delete state.total;
      },
      remove: () => {
        this.entries.delete(entry);
        if (entry.drawn) this.multi?.remove(entry.drawn);
      },
    };
  }

  /** Start drawing the bars still there (none: the next bar asked for waits again). */
  private show(): void {
    this.showTimer = undefined;
    if (this.multi || this.entries.size === 0) return;
    const { MultiBar } = loadCliProgress();
    const multi = new MultiBar({
      stream: this.stream,
      fps: FPS,
      format: (_o, _p, payload: { state: BarState }) =>
        barText(payload.state, this.now()).slice(0, Math.max((this.stream.columns || 80) - 1, 20)),
      hideCursor: true,
      clearOnComplete: true,
      linewrap: false,
      gracefulExit: false,
      emptyOnZero: true,
    });
    this.multi = multi;
    // cli-progress's own value and total are unused: the format reads the state at each redraw.
    for (const e of this.entries) e.drawn = multi.create(1, 0, { state: e.state });
    // The work has been going on for a while: the first frame now, not a tick later.
    multi.update();
  }

  /**
   * A permanent line: above the bars on a terminal (they are redrawn below it), else as it is.
   * Quiet or not, the caller decides whether a line is worth printing.
   */
  line(text: string): void {
    if (this.multi) {
      this.multi.log(`${text}\n`);
      // Logged lines are written at the next redraw; one is due at once, not a tick later.
      this.multi.update();
    } else this.stream.write(`${text}\n`);
  }

  /** Take every bar off the display (the final line follows on a clean line). */
  done(): void {
    clearTimeout(this.showTimer);
    this.showTimer = undefined;
    this.entries.clear();
    this.multi?.stop();
    this.multi = undefined;
  }

  elapsed(): number {
    return (this.now() - this.started) / 1000;
  }
}

/** What a copy of a graph reports (push, pull, save, load): see `CopyEvent` in the core. */
export type TransferEvent =
  | { type: 'plan'; blobs: number; bytes: number }
  | { type: 'start'; digest: string; size: number }
  | { type: 'progress'; digest: string; bytes: number; size: number }
  | { type: 'done'; digest: string; size: number; outcome: string; bytes: number };

/**
 * The bars of a copy: one per blob in flight and one for the total. A finished blob leaves its
 * bar and becomes a permanent line (digest, outcome, size, rate).
 */
export class TransferBars {
  private total?: Bar;
  private totalBytes = 0;
  private doneBytes = 0;
  private readonly active = new Map<string, { bar: Bar; bytes: number; t0: number }>();

  constructor(
    private readonly progress: Progress,
    private readonly verb: string,
  ) {}

  readonly onEvent = (e: TransferEvent): void => {
    if (!this.progress.live) return;
    switch (e.type) {
      case 'plan':
        this.totalBytes = e.bytes;
        this.total = this.progress.bar(`total (${counted(e.blobs, 'blob')})`, e.bytes);
        break;
      case 'start':
        this.active.set(e.digest, {
          bar: this.progress.bar(
            `${e.digest.replace(/^sha256:/, '').slice(0, 12)} ${this.verb}`,
            e.size,
          ),
          bytes: 0,
          t0: Date.now(),
        });
        break;
      case 'progress': {
        const a = this.active.get(e.digest);
        if (!a) break;
        this.doneBytes += e.bytes - a.bytes;
        a.bytes = e.bytes;
        a.bar.update(e.bytes);
        this.total?.update(this.doneBytes, this.totalBytes);
        break;
      }
      case 'done': {
        const a = this.active.get(e.digest);
        this.active.delete(e.digest);
        // A blob the sink had moves the total by its size, though nothing was sent.
        this.doneBytes += e.size - (a?.bytes ?? 0);
        this.total?.update(this.doneBytes, this.totalBytes);
        a?.bar.remove();
        const secs = a ? (Date.now() - a.t0) / 1000 : 0;
        const rate = e.bytes > 0 && secs > 0 ? ` ${formatBytes(e.bytes / secs)}/s` : '';
        this.progress.line(
          `${e.digest.replace(/^sha256:/, '').slice(0, 12)} ${e.outcome} ${formatBytes(e.size)}${rate}`,
        );
        break;
      }
    }
  };
}
