#!/usr/bin/env node
/*
 * DEBUILD benchmark, in one run:
 *  (a) cross-building the test package e2e/fixtures/debuild/strata-hello for arm64 in an amd64
 *      buildchroot vs building it natively in an arm64 buildchroot under qemu-user. The
 *      buildchroots are kept as Isar keeps them, with the build tools installed in a cached
 *      layer (for the cross one: crossbuild-essential-arm64 and libc6-dev:arm64); each run
 *      changes hello.c, so only the DEBUILD runs again. That is the figure of issue 18.
 *  (b) the same with bare buildchroots, where every DEBUILD installs the tools in its
 *      throwaway layer (`strata build --no-cache`): what a team without a prepared buildchroot
 *      waits for.
 *  (c) an unchanged DEBUILD: the whole `strata build` process of a fully cached Stratafile.
 * All share the store's .deb cache and apt lists, filled by a warm-up build of each.
 *
 *   npm run build && node bench/debuild.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/debuild), STRATA_BENCH_REPS (1).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run, median, fmt } = require('./timing');
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

const strata = (args) => run(process.execPath, [CLI, '--store', STORE, ...args]).secs;

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

/** A case's tag: `bareCross` → `bare-cross:bench`. */
const tagOf = (name) => `${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}:bench`;

/** The tag's Stratafile: a buildchroot stage, then a stage that only runs DEBUILD strata-hello. */
function stratafile(buildchroot, prepare) {
  return (
    `FROM ${buildchroot} AS buildchroot\n${prepare}\n` +
    'FROM base-arm64:bench\nBUILDCHROOT buildchroot\nDEBUILD strata-hello\n'
  );
}

function main() {
  fs.mkdirSync(DIR, { recursive: true });
  fs.writeFileSync(
    SOURCES,
    'deb http://deb.debian.org/debian bookworm main\n' +
      'deb http://deb.debian.org/debian bookworm-updates main\n' +
      'deb http://deb.debian.org/debian-security bookworm-security main\n',
  );
  const have = (tag) =>
    spawnSync(process.execPath, [CLI, '--store', STORE, 'inspect', tag], { stdio: 'ignore' })
      .status === 0;
  for (const [tar, tag] of [
    ['minbase.tar', 'base:bench'],
    ['minbase-arm64.tar', 'base-arm64:bench'],
  ])
    if (!have(tag)) strata(['template', 'create', fixture(tar), '-t', tag, '--name', 'base']);
  const args = (ctx, tag, extra = []) => [
    'build',
    '-q',
    '--apt-sources',
    SOURCES,
    '-t',
    tag,
    ...extra,
    ctx,
  ];
  const TOOLS = 'build-essential dpkg-dev fakeroot debhelper';
  const cases = {
    // Buildchroots as Isar keeps them: the build tools installed once, in a cached layer.
    cross: context(
      'cross',
      stratafile(
        'base:bench',
        `RUN dpkg --add-architecture arm64\nINSTALL ${TOOLS} crossbuild-essential-arm64 libc6-dev:arm64\n`,
      ),
    ),
    native: context('native', stratafile('base-arm64:bench', `INSTALL ${TOOLS}\n`)),
    // Bare buildchroots: DEBUILD installs the tools in its throwaway layer every time.
    bareCross: context('bare-cross', stratafile('base:bench', '')),
    bareNative: context('bare-native', stratafile('base-arm64:bench', '')),
  };
  // Warm-ups: the .deb cache, apt lists and the prepared buildchroots' layers.
  for (const [name, ctx] of Object.entries(cases)) strata(args(ctx, tagOf(name)));

  const hello = (ctx) => path.join(ctx, 'strata-hello', 'hello.c');
  const secs = { cross: [], native: [], bareCross: [], bareNative: [] };
  for (let i = 0; i < REPS; i++) {
    for (const name of ['cross', 'native']) {
      // A changed source: only the DEBUILD runs again, on the cached buildchroot.
      fs.appendFileSync(hello(cases[name]), `/* run ${Date.now()} */\n`);
      secs[name].push(strata(args(cases[name], tagOf(name))));
    }
    for (const name of ['bareCross', 'bareNative'])
      secs[name].push(strata(args(cases[name], tagOf(name), ['--no-cache'])));
  }
  const noop = [];
  for (let i = 0; i < 5; i++) noop.push(strata(args(cases.cross, tagOf('cross'))));

  const speedup = median(secs.native) / median(secs.cross);
  const bare = median(secs.bareNative) / median(secs.bareCross);
  const n = secs.cross.length;
  const lines = [
    '| what | wall s (median (min–max)) |',
    '|---|---|',
    `| cross: \`DEBUILD strata-hello\` for arm64, a changed source, in an amd64 buildchroot with ${TOOLS} crossbuild-essential-arm64 (n=${n}) | ${fmt(secs.cross)} |`,
    `| native: the same in an arm64 buildchroot with ${TOOLS}, under qemu-user (n=${n}) | ${fmt(secs.native)} |`,
    `| cross, bare amd64 buildchroot (tools installed by the DEBUILD), \`strata build --no-cache\` (n=${n}) | ${fmt(secs.bareCross)} |`,
    `| native, bare arm64 buildchroot, \`strata build --no-cache\` (n=${n}) | ${fmt(secs.bareNative)} |`,
    `| unchanged DEBUILD: fully cached rebuild, whole \`strata build\` process (n=5) | ${fmt(noop)} |`,
    '',
    `Ratio: native under emulation / cross = ${speedup.toFixed(2)}× (target ≥ ${CROSS_TARGET}×); with bare buildchroots ${bare.toFixed(2)}×; unchanged DEBUILD ${median(noop).toFixed(2)} s (target < ${NOOP_TARGET} s).`,
  ];
  const missed = [];
  if (speedup < CROSS_TARGET)
    missed.push(`native / cross = ${speedup.toFixed(2)}× (target ≥ ${CROSS_TARGET}×)`);
  if (median(noop) >= NOOP_TARGET)
    missed.push(`unchanged DEBUILD ${median(noop).toFixed(2)} s (target < ${NOOP_TARGET} s)`);
  for (const m of missed) lines.push(`Missed: ${m}.`);
  console.log(lines.join('\n'));
  console.log(JSON.stringify({ ...secs, noop, speedup, bare }));
  if (missed.length) process.exitCode = 1;
}

main();
