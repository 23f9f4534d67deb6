#!/usr/bin/env node
/*
 * Diff benchmark: `strata diff` between a minbase template (`strata template create` of the
 * minbase fixture, default zstd layer) and a template built FROM it with three small packages
 * (`INSTALL sensible-utils runit-helper ucf`), both in the local store; the wall time of the
 * whole `strata` process, as a user runs it, text and --json, and its CPU time. `strata ls` in
 * the same store is timed alongside: what any command costs to start.
 *
 *   npm run build && node bench/diff.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/diff; the two templates are
 * kept there between runs), STRATA_BENCH_REPS (default 5; the median is reported).
 * Prints a Markdown table and one JSON line; exits 1 when the median diff takes 1 s or more.
 */
'use strict';
const path = require('node:path');
const { run, runTimed, median, fmt } = require('./timing');
const { CLI, PKGS, setUpPair } = require('./pair');

const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/diff';
const REPS = Number(process.env.STRATA_BENCH_REPS || 5);
const STORE = path.join(DIR, 'store');
const TARGET = 1;
const CPU_FILE = path.join(DIR, 'cpu.txt');

const strata = (args) => run(process.execPath, [CLI, '--store', STORE, ...args]);
const setUp = () => setUpPair(DIR, STORE);

/** `strata diff` (which exits 1 when the two differ, as here), timed with its CPU seconds. */
function diff(extra) {
  const args = [CLI, '--store', STORE, ...extra, 'diff', 'base:bench', 'derived:bench'];
  return runTimed(process.execPath, args, CPU_FILE, 1);
}

function main() {
  setUp();
  diff([]); // warm-up: page cache, and the store's diffID records
  const text = [];
  const json = [];
  const cpu = [];
  const start = [];
  for (let i = 0; i < REPS; i++) {
    const t = diff([]);
    text.push(t.secs);
    if (t.cpu !== undefined) cpu.push(t.cpu);
    json.push(diff(['--json']).secs);
    start.push(strata(['ls']).secs);
  }
  const report = JSON.parse(diff(['--json']).stdout);
  const added = report.packages.added.map((p) => p.name);
  const ok = median(text) < TARGET && median(json) < TARGET;
  console.log(
    `Base: \`strata template create\` of the minbase fixture (${report.sizes.total.old} bytes of file data); ` +
      `derived: \`FROM base\` + \`INSTALL ${PKGS.join(' ')}\` (${added.length} packages added: ${added.join(', ')}; ` +
      `${report.files.added.length} files added, ${report.files.changed.length} changed). Median of ${REPS} runs (min–max), seconds.`,
  );
  console.log('');
  console.log('| command | wall s | target |');
  console.log('| --- | --- | --- |');
  console.log(`| \`strata diff base derived\` | ${fmt(text)} | < ${TARGET} s |`);
  console.log(`| \`strata diff --json base derived\` | ${fmt(json)} | < ${TARGET} s |`);
  if (cpu.length)
    console.log(`| \`strata diff base derived\`, CPU s (user + sys) | ${fmt(cpu)} | |`);
  console.log(`| \`strata ls\` (start-up, for scale) | ${fmt(start)} | |`);
  console.log(
    JSON.stringify({
      bench: 'diff',
      textSecs: median(text),
      jsonSecs: median(json),
      cpuSecs: cpu.length ? median(cpu) : null,
      startSecs: median(start),
      ok,
    }),
  );
  if (!ok) process.exitCode = 1;
}

// bench/report.js times `strata report` on the same pair.
if (require.main === module) main();
module.exports = { setUp, STORE };
