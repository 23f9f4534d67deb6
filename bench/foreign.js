#!/usr/bin/env node
/*
 * Foreign architecture benchmark (arm64 on this host, through qemu-user), in one run:
 *  (a) `strata build --no-cache` of `FROM arm64 minbase / INSTALL curl openssh-server python3`
 *      vs `mmdebstrap --architecture=arm64 --variant=minbase --include=curl,openssh-server,python3
 *      bookworm` from scratch;
 *  (b) a no-op (fully cached) rebuild of that Stratafile, wall time of the whole `strata` process;
 *  (c) the same build with `--no-native-dpkg`: dpkg unpacks under emulation too, the baseline
 *      that the host's dpkg unpacking (the default) is measured against.
 * Package access is the same for both: strata's .deb cache is filled by a warm-up build, and
 * mmdebstrap gets the same cache through setup hooks (as the engine's BOOTSTRAP does), after a
 * warm-up of its own that adds the essential set. Both still run `apt-get update` against
 * deb.debian.org. The arm64 minbase template is made with `strata template create` from the
 * e2e fixture's `minbase-arm64.tar` (or from its own mmdebstrap run, once).
 *
 *   npm run build && node bench/foreign.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/foreign), STRATA_BENCH_REPS (1:
 * every emulated run takes minutes).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run, median, fmt } = require('./timing');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'packages/cli/bin/strata.js');
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/foreign';
const REPS = Number(process.env.STRATA_BENCH_REPS || 1);
const STORE = path.join(DIR, 'store');
const DEBS = path.join(DIR, 'debs');
const PKGS = ['curl', 'openssh-server', 'python3'];
const ARCH = 'arm64';
const SOURCES = path.join(DIR, 'sources.list');
const MIRROR_LINES =
  'deb http://deb.debian.org/debian bookworm main\n' +
  'deb http://deb.debian.org/debian bookworm-updates main\n' +
  'deb http://deb.debian.org/debian-security bookworm-security main\n';
const E2E_CACHE = process.env.STRATA_E2E_CACHE || '/var/tmp/strata-e2e-cache';
/** Both targets of issue 17 for a foreign architecture. */
const SPEEDUP_TARGET = 5;
const NOOP_TARGET = 0.5;

const strata = (args) => run(process.execPath, [CLI, '--store', STORE, ...args]);

/** The arm64 minbase tarball: the e2e fixture's when it is complete, else one made here. */
function minbaseTar() {
  const e2e = path.join(E2E_CACHE, `minbase-${ARCH}.tar`);
  if (fs.existsSync(path.join(E2E_CACHE, `minbase-${ARCH}.json`)) && fs.existsSync(e2e)) return e2e;
  const own = path.join(DIR, `minbase-${ARCH}.tar`);
  if (!fs.existsSync(own)) {
    const partial = path.join(DIR, `minbase-${ARCH}.partial-${process.pid}.tar`);
    try {
      run('mmdebstrap', [
        '--variant=minbase',
        '--mode=root',
        '--format=tar',
        `--architectures=${ARCH}`,
        'bookworm',
        partial,
        SOURCES,
      ]);
      fs.renameSync(partial, own);
    } finally {
      fs.rmSync(partial, { force: true });
    }
  }
  return own;
}

function main() {
  fs.mkdirSync(DEBS, { recursive: true });
  fs.writeFileSync(SOURCES, MIRROR_LINES);
  const haveBase =
    spawnSync(process.execPath, [CLI, '--store', STORE, 'inspect', 'base-arm64:bench'], {
      stdio: 'ignore',
    }).status === 0;
  if (!haveBase)
    strata(['template', 'create', minbaseTar(), '-t', 'base-arm64:bench', '--name', 'base-arm64']);
  const ctx = path.join(DIR, 'derived');
  fs.mkdirSync(ctx, { recursive: true });
  fs.writeFileSync(
    path.join(ctx, 'Stratafile'),
    `FROM base-arm64:bench\nINSTALL ${PKGS.join(' ')}\n`,
  );
  const buildArgs = [
    'build',
    '-q',
    '--json',
    '--apt-sources',
    SOURCES,
    '-t',
    'derived-arm64:bench',
    ctx,
  ];

  // Warm-ups: strata's .deb cache, then mmdebstrap's (which adds the essential set), shared.
  strata([...buildArgs, '--no-cache']);
  const storeDebs = path.join(STORE, '.strata/apt/archives');
  run('sh', ['-c', `cp -an '${storeDebs}'/*.deb '${DEBS}'/`]);
  const mmTarget = path.join(DIR, 'mm-root');
  const mmArgs = [
    '--mode=root',
    '--format=directory',
    '--variant=minbase',
    `--architectures=${ARCH}`,
    `--include=${PKGS.join(',')}`,
    '--skip=download/empty',
    '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
    `--setup-hook=sync-in ${DEBS} /var/cache/apt/archives/`,
    `--customize-hook=sync-out /var/cache/apt/archives/ ${DEBS}`,
    'bookworm',
    mmTarget,
    SOURCES,
  ];
  fs.rmSync(mmTarget, { recursive: true, force: true });
  run('mmdebstrap', mmArgs);
  run('sh', ['-c', `cp -an '${DEBS}'/*.deb '${storeDebs}'/`]);

  const ours = [];
  const mm = [];
  const emulated = [];
  for (let i = 0; i < REPS; i++) {
    ours.push(strata([...buildArgs, '--no-cache']).secs);
    emulated.push(strata([...buildArgs, '--no-cache', '--no-native-dpkg']).secs);
    fs.rmSync(mmTarget, { recursive: true, force: true });
    mm.push(run('mmdebstrap', mmArgs).secs);
  }
  fs.rmSync(mmTarget, { recursive: true, force: true });

  strata(buildArgs);
  const noop = [];
  for (let i = 0; i < 5; i++) noop.push(strata(buildArgs).secs);

  const speedup = median(mm) / median(ours);
  const lines = [
    '| what | wall s (median (min–max)) |',
    '|---|---|',
    `| arm64 derived build, base present: \`strata build --no-cache\` (FROM arm64 minbase, INSTALL ${PKGS.join(' ')}) (n=${ours.length}) | ${fmt(ours)} |`,
    `| the same with dpkg unpacking under emulation too: \`strata build --no-cache --no-native-dpkg\` (n=${emulated.length}) | ${fmt(emulated)} |`,
    `| \`mmdebstrap --architectures=${ARCH} --variant=minbase --include=${PKGS.join(',')} bookworm\` from scratch (n=${mm.length}) | ${fmt(mm)} |`,
    `| arm64 no-op rebuild (all steps cached), whole \`strata build\` process (n=5) | ${fmt(noop)} |`,
    '',
    `Ratio: mmdebstrap / strata = ${speedup.toFixed(2)}× (target ≥ ${SPEEDUP_TARGET}×); no-op rebuild ${median(noop).toFixed(2)} s (target < ${NOOP_TARGET} s).`,
    `Unpacking with the host's dpkg: ${median(ours).toFixed(1)} s against ${median(emulated).toFixed(1)} s with dpkg emulated throughout (${(median(emulated) / median(ours)).toFixed(2)}×; mmdebstrap / strata --no-native-dpkg = ${(median(mm) / median(emulated)).toFixed(2)}×).`,
  ];
  const missed = [];
  if (speedup < SPEEDUP_TARGET)
    missed.push(`mmdebstrap / strata = ${speedup.toFixed(2)}× (target ≥ ${SPEEDUP_TARGET}×)`);
  if (median(noop) >= NOOP_TARGET)
    missed.push(`no-op rebuild ${median(noop).toFixed(2)} s (target < ${NOOP_TARGET} s)`);
  for (const m of missed) lines.push(`Missed: ${m}.`);
  console.log(lines.join('\n'));
  console.log(JSON.stringify({ derived: ours, emulated, mmdebstrap: mm, noop, speedup }));
  if (missed.length) process.exitCode = 1;
}

main();
