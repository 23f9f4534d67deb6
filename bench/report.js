#!/usr/bin/env node
/*
 * Report benchmark: `strata report derived --against base -o report.html` for the pair that
 * bench/diff.js builds (a minbase template, and one FROM it with three small packages, both in
 * the local store): the wall time of the whole `strata` process, and the size of the file.
 * `strata report` of the base alone is timed alongside.
 *
 *   npm run build && node bench/report.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/diff, shared with bench/diff.js),
 * STRATA_BENCH_REPS (default 5; the median is reported).
 * Prints a Markdown table and one JSON line; exits 1 when the median report takes 3 s or more,
 * or the file is 5 MB or more.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { runTimed, median, fmt } = require('./timing');
const { setUp, STORE } = require('./diff');
const { CLI } = require('./pair');

const REPS = Number(process.env.STRATA_BENCH_REPS || 5);
const TARGET_SECS = 3;
const TARGET_BYTES = 5 * 1024 * 1024;
const OUT = path.join(path.dirname(STORE), 'report.html');

const CPU_FILE = path.join(path.dirname(STORE), 'report-cpu.txt');

/** One `strata` run, timed with its CPU seconds. */
const strata = (args) => runTimed(process.execPath, [CLI, '--store', STORE, ...args], CPU_FILE);

function main() {
  setUp();
  const pair = ['report', 'derived:bench', '--against', 'base:bench', '-o', OUT];
  const single = ['report', 'base:bench', '-o', OUT];
  strata(pair); // warm-up: page cache, and the store's diffID records
  const against = [];
  const cpu = [];
  const alone = [];
  for (let i = 0; i < REPS; i++) {
    const r = strata(pair);
    against.push(r.secs);
    if (r.cpu !== undefined) cpu.push(r.cpu);
    alone.push(strata(single).secs);
  }
  const singleBytes = fs.statSync(OUT).size;
  strata(pair);
  const bytes = fs.statSync(OUT).size;
  const mib = (n) => `${(n / 1024 / 1024).toFixed(2)} MiB`;
  const ok = median(against) < TARGET_SECS && bytes < TARGET_BYTES;
  console.log(
    `The pair of bench/diff.js (a minbase template, and FROM it \`INSTALL sensible-utils runit-helper ucf\`), ` +
      `in the local store. Median of ${REPS} runs (min–max), seconds, of the whole \`strata\` process.`,
  );
  console.log('');
  console.log('| command | wall s | file | target |');
  console.log('| --- | --- | --- | --- |');
  console.log(
    `| \`strata report derived --against base -o report.html\` | ${fmt(against)} | ${mib(bytes)} | < ${TARGET_SECS} s, < 5 MB |`,
  );
  if (cpu.length)
    console.log(
      `| \`strata report derived --against base\`, CPU s (user + sys) | ${fmt(cpu)} | | |`,
    );
  console.log(`| \`strata report base -o report.html\` | ${fmt(alone)} | ${mib(singleBytes)} | |`);
  console.log(
    JSON.stringify({
      bench: 'report',
      againstSecs: median(against),
      cpuSecs: cpu.length ? median(cpu) : null,
      aloneSecs: median(alone),
      bytes,
      singleBytes,
      ok,
    }),
  );
  if (!ok) process.exitCode = 1;
}

main();
