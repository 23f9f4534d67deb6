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
const fs = require('node:fs');
const path = require('node:path');
const { run, median, fmt } = require('./timing');
const { minbaseTar } = require('./fixture');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'packages/cli/bin/strata.js');
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/diff';
const REPS = Number(process.env.STRATA_BENCH_REPS || 5);
const STORE = path.join(DIR, 'store');
const PKGS = ['sensible-utils', 'runit-helper', 'ucf'];
const TARGET = 1;

const strata = (args, opts) => run(process.execPath, [CLI, '--store', STORE, ...args], opts);

function hasTag(tag) {
  return strata(['ls'])
    .stdout.split('\n')
    .some((l) => l.split(/\s+/)[0] === tag);
}

function setUp() {
  fs.mkdirSync(DIR, { recursive: true });
  if (!hasTag('base:bench')) {
    strata(['template', 'create', minbaseTar(), '-t', 'base:bench', '--name', 'bench-base']);
  }
  if (!hasTag('derived:bench')) {
    const ctx = path.join(DIR, 'derived');
    fs.mkdirSync(ctx, { recursive: true });
    fs.writeFileSync(path.join(ctx, 'Stratafile'), `FROM base:bench\nINSTALL ${PKGS.join(' ')}\n`);
    const sources = path.join(DIR, 'sources.list');
    fs.writeFileSync(
      sources,
      'deb http://deb.debian.org/debian bookworm main\n' +
        'deb http://deb.debian.org/debian bookworm-updates main\n' +
        'deb http://deb.debian.org/debian-security bookworm-security main\n',
    );
    strata(['build', '-q', '--apt-sources', sources, '-t', 'derived:bench', ctx]);
  }
}

const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const CPU_FILE = path.join(DIR, 'cpu.txt');

/**
 * `strata diff` (which exits 1 when the two differ, as here): wall seconds, and the CPU seconds
 * (user + system, its zstd child included) when GNU time is there, which the machine's load
 * does not inflate as it does the wall time.
 */
function diff(extra) {
  const args = [CLI, '--store', STORE, ...extra, 'diff', 'base:bench', 'derived:bench'];
  const [cmd, argv] = TIME
    ? [TIME, ['-f', '%U %S', '-o', CPU_FILE, process.execPath, ...args]]
    : [process.execPath, args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 1) throw new Error(`strata diff exited ${r.status}\n${String(r.stderr)}`);
  let cpu;
  if (TIME) {
    const line = fs.readFileSync(CPU_FILE, 'utf8').trim().split('\n').pop() ?? '';
    const [u, sys] = line.split(' ').map(Number);
    cpu = (u ?? 0) + (sys ?? 0);
  }
  return { secs, cpu, stdout: String(r.stdout) };
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
