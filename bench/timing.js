// What the benches that time whole commands share: a timed run that throws with the command's
// stderr when it fails, and the median and "median (min–max)" of a set of timings.
'use strict';
const { spawnSync } = require('node:child_process');

/** Run `cmd args` to the end; `{ secs, stdout }`, or throw with the end of its stderr. */
function run(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
    ...opts,
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.status}\n${String(r.stderr).slice(-3000)}`,
    );
  return { secs, stdout: String(r.stdout) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const fmt = (xs) =>
  xs.length === 1
    ? xs[0].toFixed(2)
    : `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;

module.exports = { run, median, fmt };
