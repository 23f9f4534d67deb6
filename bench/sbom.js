#!/usr/bin/env node
/*
 * SBOM benchmark: `strata sbom` of a template of about 100 packages: a minbase template
 * (`strata template create` of the minbase fixture) and one built FROM it with three small
 * packages (`INSTALL sensible-utils runit-helper ucf`), in the local store. Timed: the whole
 * `strata` process, as a user runs it, for SPDX and CycloneDX made from the layers (`--compute`:
 * the dpkg status, md5sums and copyright files streamed out of every layer), and reading the
 * SBOM the build attached; with the CPU time alongside.
 *
 *   npm run build && node bench/sbom.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/sbom; the templates are kept
 * there between runs), STRATA_BENCH_REPS (default 5; the median is reported).
 * Prints a Markdown table and one JSON line; exits 1 when the median SBOM made from the layers
 * takes 2 s or more.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { runTimed, median, fmt } = require('./timing');
const { CLI, PKGS, setUpPair } = require('./pair');

const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/sbom';
const REPS = Number(process.env.STRATA_BENCH_REPS || 5);
const STORE = path.join(DIR, 'store');
const TARGET = 2;
const CPU_FILE = path.join(DIR, 'cpu.txt');
const OUT = path.join(DIR, 'out.json');

const setUp = () => setUpPair(DIR, STORE);

/** One `strata sbom`, timed with its CPU seconds (user + sys, children included). */
function sbom(extra) {
  const args = [CLI, '--store', STORE, 'sbom', 'derived:bench', '-o', OUT, ...extra];
  return runTimed(process.execPath, args, CPU_FILE);
}

function main() {
  setUp();
  sbom(['--compute']); // warm-up: page cache
  const rows = [
    ['SPDX, made from the layers', ['--compute']],
    ['CycloneDX, made from the layers', ['--compute', '--format', 'cyclonedx']],
    ['SPDX, the one the build attached', []],
  ];
  const results = rows.map(([name, extra]) => {
    const wall = [];
    const cpu = [];
    for (let i = 0; i < REPS; i++) {
      const t = sbom(extra);
      wall.push(t.secs);
      if (t.cpu !== undefined) cpu.push(t.cpu);
    }
    return { name, extra, wall, cpu };
  });
  const doc = JSON.parse(fs.readFileSync(OUT, 'utf8'));
  const pkgs = doc.packages.filter((p) => p.primaryPackagePurpose === 'INSTALL').length;
  const computed = results.slice(0, 2);
  const ok = computed.every((r) => median(r.wall) < TARGET);
  console.log(
    `Template: \`FROM\` a minbase template + \`INSTALL ${PKGS.join(' ')}\`: ${pkgs} packages, ` +
      `2 layers. \`strata sbom derived:bench -o FILE\`, the whole process; median of ${REPS} runs (min–max), seconds. ` +
      'CPU is user + sys of the process and its children, which the machine’s load does not inflate as it does the wall time.',
  );
  console.log('');
  console.log('| strata sbom | wall s | CPU s | target |');
  console.log('| --- | --- | --- | --- |');
  for (const r of results) {
    const target = computed.includes(r) ? `< ${TARGET} s` : '';
    console.log(
      `| ${r.name} (\`${['sbom', ...r.extra].join(' ')}\`) | ${fmt(r.wall)} | ${r.cpu.length ? fmt(r.cpu) : ''} | ${target} |`,
    );
  }
  console.log(
    JSON.stringify({
      bench: 'sbom',
      packages: pkgs,
      results: results.map((r) => ({
        name: r.name,
        wallSecs: median(r.wall),
        cpuSecs: r.cpu.length ? median(r.cpu) : null,
      })),
      ok,
    }),
  );
  if (!ok) process.exitCode = 1;
}

main();
