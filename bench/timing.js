// What the benches that time whole commands share: a timed run that throws with the command's
// stderr when it fails, one that also takes the CPU time, and the median and "median (min–max)"
// of a set of timings.
'use strict';
const fs = require('node:fs');
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

const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

/**
 * Run `cmd args` to the end, expecting exit code `ok` (default 0): `{ secs, cpu, stdout }`, with
 * the CPU seconds (user + system, children included) when GNU time is there (written to
 * `cpuFile`), which the machine's load does not inflate as it does the wall time.
 */
function runTimed(cmd, args, cpuFile, ok = 0) {
  const [c, argv] = TIME ? [TIME, ['-f', '%U %S', '-o', cpuFile, cmd, ...args]] : [cmd, args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(c, argv, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== ok)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.status}\n${String(r.stderr).slice(-3000)}`,
    );
  let cpu;
  if (TIME) {
    const line = fs.readFileSync(cpuFile, 'utf8').trim().split('\n').pop() ?? '';
    const [u, sys] = line.split(' ').map(Number);
    cpu = (u ?? 0) + (sys ?? 0);
  }
  return { secs, cpu, stdout: String(r.stdout) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const fmt = (xs) =>
  xs.length === 1
    ? xs[0].toFixed(2)
    : `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;

module.exports = { run, runTimed, median, fmt };
