import { StrataError } from '@strata/oci';
import type { BuildEvent, BuildOptions, StageState } from './build-state';
import type { StageKeys } from './stage-keys';

/**
 * The date a build gives a stage, in seconds: SOURCE_DATE_EPOCH, else the date of the mirror
 * state its apt sources resolve to (two builds against one mirror state agree), else, or with
 * `timestamp: 'now'`, the time the build started. A build dated by the clock says so, once.
 */
export class BuildDate {
  private readonly startedAt: number;
  private clockWarned = false;

  constructor(
    private readonly opts: Pick<BuildOptions, 'sourceDateEpoch' | 'timestamp' | 'now'>,
    private readonly keys: Pick<StageKeys, 'mirrorDate'>,
    private readonly emit: (e: BuildEvent) => void,
  ) {
    this.startedAt = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  }

  async of(state: StageState): Promise<number> {
    if (this.opts.sourceDateEpoch !== undefined) return this.opts.sourceDateEpoch;
    if (this.opts.timestamp !== 'now') {
      let why: string;
      try {
        const date = await this.keys.mirrorDate(state);
        if (date !== undefined) return date;
        why = 'their Release files have no Date field';
      } catch (e) {
        if (!(e instanceof StrataError)) throw e;
        why = e.message;
      }
      this.warnClockDate(why);
    }
    return this.startedAt;
  }

  private warnClockDate(why: string): void {
    if (this.clockWarned) return;
    this.clockWarned = true;
    this.emit({
      type: 'warning',
      message: `the build is dated by the clock, not by the apt sources' mirror state (${why}); set SOURCE_DATE_EPOCH for a reproducible date`,
    });
  }
}
