#!/usr/bin/env node
/*
 * DEBUILD benchmark, in one run:
 *  (a) cross-building the test package e2e/fixtures/debuild/strata-hello for arm64 in an amd64
 *      buildchroot vs building it natively in an arm64 buildchroot under qemu-user, each a
 *      `strata build --no-cache` of a Stratafile whose only work is that DEBUILD (the build
 *      tools and Build-Depends are installed in the throwaway layer each time, as in any build);
 *  (b) an unchanged DEBUILD: the whole `strata build` process of a fully cached Stratafile.
 * Both share the store's .deb cache, filled by a warm-up build of each.
 *
 *   npm run build && node bench/debuild.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/debuild), STRATA_BENCH_REPS (1).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'packages/cli/bin/strata.js');
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/debuild';
const REPS = Number(process.env.STRATA_BENCH_REPS || 1);
const STORE = path.join(DIR, 'store');
const SOURCES = path.join(DIR, 'sources.list');
const E2E_CACHE = process.env.STRATA_E2E_CACHE || '/var/tmp/strata-e2e-cache';
const FIXTURES = path.join(ROOT, 'e2e/fixtures/debuild');
/** The targets of issue 18. */
const CROSS_TARGET = 3;
const NOOP_TARGET = 1;

function run(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.status}\n${String(r.stderr).slice(-3000)}`,
    );
  return secs;
}
const strata = (args) => run(process.execPath, [CLI, '--store', STORE, ...args]);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs) =>
  xs.length === 1
    ? xs[0].toFixed(2)
    : `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;

/** A minbase tarball of the e2e fixture cache (the e2e tests or bench/foreign.js make them). */
function fixture(name) {
  const tar = path.join(E2E_CACHE, name);
  if (!fs.existsSync(tar))
    throw new Error(`${tar} is missing: run the e2e tests (or bench/foreign.js) once to make it`);
  return tar;
}

/** A build context with the test sources and this Stratafile. */
function context(name, stratafile) {
  const dir = path.join(DIR, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.cpSync(FIXTURES, dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Stratafile'), stratafile);
  return dir;
}

function main() {
  fs.mkdirSync(DIR, { recursive: true });
  fs.writeFileSync(
    SOURCES,
    'deb http://deb.debian.org/debian bookworm main\n' +
      'deb http://deb.debian.org/debian bookworm-updates main\n' +
      'deb http://deb.debian.org/debian-security bookworm-security main\n',
  );
  fs.rmSync(STORE, { recursive: true, force: true });
  strata(['template', 'create', fixture('minbase.tar'), '-t', 'base:bench', '--name', 'base']);
  strata([
    'template',
    'create',
    fixture('minbase-arm64.tar'),
    '-t',
    'base-arm64:bench',
    '--name',
    'base',
  ]);
  const stratafile = (buildchroot) =>
    `FROM ${buildchroot} AS buildchroot\n\nFROM base-arm64:bench\nBUILDCHROOT buildchroot\nDEBUILD strata-hello\n`;
  const cross = context('cross', stratafile('base:bench'));
  const native = context('native', stratafile('base-arm64:bench'));
  const args = (ctx, tag) => ['build', '-q', '--apt-sources', SOURCES, '-t', tag, ctx];

  // Warm-ups: the .deb cache and apt lists of both buildchroots.
  strata(args(cross, 'cross:bench'));
  strata(args(native, 'native:bench'));
  const crossSecs = [];
  const nativeSecs = [];
  for (let i = 0; i < REPS; i++) {
    crossSecs.push(strata([...args(cross, 'cross:bench'), '--no-cache']));
    nativeSecs.push(strata([...args(native, 'native:bench'), '--no-cache']));
  }
  const noop = [];
  for (let i = 0; i < 5; i++) noop.push(strata(args(cross, 'cross:bench')));

  const speedup = median(nativeSecs) / median(crossSecs);
  const lines = [
    '| what | wall s (median (min–max)) |',
    '|---|---|',
    `| cross: \`DEBUILD strata-hello\` for arm64 in an amd64 buildchroot, \`strata build --no-cache\` (n=${crossSecs.length}) | ${fmt(crossSecs)} |`,
    `| native: the same in an arm64 buildchroot under qemu-user (n=${nativeSecs.length}) | ${fmt(nativeSecs)} |`,
    `| unchanged DEBUILD: fully cached rebuild, whole \`strata build\` process (n=5) | ${fmt(noop)} |`,
    '',
    `Ratio: native under emulation / cross = ${speedup.toFixed(2)}× (target ≥ ${CROSS_TARGET}×); unchanged DEBUILD ${median(noop).toFixed(2)} s (target < ${NOOP_TARGET} s).`,
  ];
  const missed = [];
  if (speedup < CROSS_TARGET)
    missed.push(`native / cross = ${speedup.toFixed(2)}× (target ≥ ${CROSS_TARGET}×)`);
  if (median(noop) >= NOOP_TARGET)
    missed.push(`unchanged DEBUILD ${median(noop).toFixed(2)} s (target < ${NOOP_TARGET} s)`);
  for (const m of missed) lines.push(`Missed: ${m}.`);
  console.log(lines.join('\n'));
  console.log(JSON.stringify({ cross: crossSecs, native: nativeSecs, noop, speedup }));
  if (missed.length) process.exitCode = 1;
}

main();
