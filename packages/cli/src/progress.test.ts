import { Writable } from 'node:stream';
// Loaded here, ahead of the first bar that loads it, so that no test times jest loading it.
import 'cli-progress';
import {
  FPS,
  Progress,
  SHOW_AFTER_MS,
  TransferBars,
  barText,
  formatDuration,
  isLive,
} from './progress';

const MiB = 1024 * 1024;

/** A terminal that records what is written to it, and how many writes. */
function terminal(): { stream: NodeJS.WriteStream; out: () => string; writes: () => number } {
  let out = '';
  let writes = 0;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      writes++;
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  Object.assign(stream, { isTTY: true, columns: 200, rows: 50 });
  return { stream, out: () => out, writes: () => writes };
}

describe('barText', () => {
  it('shows a bar, bytes of a total, rate and time left', () => {
    const t = barText({ label: 'pulling', bytes: 4 * MiB, total: 12 * MiB, start: 0 }, 2000);
    expect(t).toBe('pulling [########................] 33% 4.0 MiB / 12.0 MiB 2.0 MiB/s ETA 4.0s');
  });

  it('never draws a count above its total, nor a bar fuller than 100%', () => {
    const t = barText({ label: 'writing', bytes: 3 * MiB, total: 2 * MiB, start: 0 }, 1000);
    expect(t).toMatch(/^writing \[#{24}\] 100% 3\.0 MiB \/ ~3\.0 MiB 3\.0 MiB\/s ETA 0\.0s$/);
  });

  it('without a total, shows bytes and rate only', () => {
    expect(barText({ label: 'packing', bytes: MiB, start: 0 }, 500)).toBe(
      'packing 1.0 MiB 2.0 MiB/s',
    );
  });

  it('a timer shows the time so far', () => {
    expect(barText({ label: '[1/2] RUN x', bytes: 0, start: 0, timer: true }, 75_000)).toBe(
      '[1/2] RUN x 1m15s',
    );
  });
});

test('formatDuration', () => {
  expect(formatDuration(3.21)).toBe('3.2s');
  expect(formatDuration(42.4)).toBe('42s');
  expect(formatDuration(3600 + 120)).toBe('1h02m');
  expect(formatDuration(Infinity)).toBe('?');
});

test('isLive: a terminal outside CI and not quiet', () => {
  const saved = process.env.CI;
  delete process.env.CI;
  try {
    const { stream } = terminal();
    expect(isLive(stream, false)).toBe(true);
    expect(isLive(stream, true)).toBe(false);
    expect(isLive(Object.assign(terminal().stream, { isTTY: false }), false)).toBe(false);
    process.env.CI = 'true';
    expect(isLive(stream, false)).toBe(false);
  } finally {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
  }
});

describe('Progress', () => {
  it('off a terminal, bars write nothing; lines are plain', () => {
    const t = terminal();
    const p = new Progress(t.stream, false);
    const bar = p.bar('pulling', 100);
    for (let i = 0; i <= 100; i++) bar.update(i);
    p.line('done');
    p.done();
    expect(t.out()).toBe('done\n');
  });

  it(`redraws at most ${FPS} times a second, however often the work updates`, async () => {
    const t = terminal();
    const p = new Progress(t.stream, true);
    const bar = p.bar('pulling', 1e9);
    const until = Date.now() + 500;
    let updates = 0;
    while (Date.now() < until) {
      for (let i = 0; i < 1000; i++) bar.update(updates++ * 10);
      await new Promise((r) => setImmediate(r));
    }
    const writes = t.writes();
    p.done();
    expect(updates).toBeGreaterThan(10_000);
    // Each redraw is a few writes (cursor, line, clear); 0.5 s allows ~5 redraws, and the first.
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThan(12 * 8);
    expect(t.out()).toMatch(/pulling \[#*\.*\] \d+% .* \/ 953\.7 MiB .*\/s ETA /);
  });

  it(`work shorter than ${SHOW_AFTER_MS} ms draws no bar, only its lines`, () => {
    const t = terminal();
    const p = new Progress(t.stream, true);
    const bar = p.bar('pushing', 100);
    bar.update(100);
    bar.remove();
    p.line('abababababab uploaded 100 B');
    p.done();
    expect(t.out()).toBe('abababababab uploaded 100 B\n');
  });

  it(`work that goes on shows its bars after ${SHOW_AFTER_MS} ms, and lines above them`, async () => {
    const t = terminal();
    const p = new Progress(t.stream, true);
    const bar = p.bar('pushing', 100);
    bar.update(40);
    p.bar('finished early', 10).remove();
    await new Promise((r) => setTimeout(r, SHOW_AFTER_MS / 2));
    expect(t.out()).toBe('');
    await new Promise((r) => setTimeout(r, SHOW_AFTER_MS));
    p.line('one blob done');
    expect(t.out()).toMatch(/one blob done\n[^]*pushing \[#+\.+\] 40% /);
    expect(t.out()).not.toContain('finished early');
    p.done();
  });

  it('transfers: a bar per blob and a total, and a line per finished blob', () => {
    const t = terminal();
    const p = new Progress(t.stream, true, Date.now, 0);
    const bars = new TransferBars(p, 'pulling');
    const d = `sha256:${'ab'.repeat(32)}`;
    bars.onEvent({ type: 'plan', blobs: 1, bytes: 2 * MiB });
    bars.onEvent({ type: 'start', digest: d, size: 2 * MiB });
    bars.onEvent({ type: 'progress', digest: d, bytes: MiB, size: 2 * MiB });
    bars.onEvent({ type: 'done', digest: d, size: 2 * MiB, outcome: 'downloaded', bytes: 2 * MiB });
    p.done();
    expect(t.out()).toMatch(/total \(1 blob\) \[#+\.*\] \d+% /);
    expect(t.out()).toContain('abababababab downloaded 2.0 MiB');
  });
});
