#!/usr/bin/env node
/*
 * Deep stacks: `strata build` of `FROM base` followed by 10, 50 and 100 one-line RUN steps
 * (`RUN echo … > /etc/step-<i>`), none cached, the base's snapshot already unpacked, then
 * `strata flatten --rootfs` of the deepest result. Reports seconds per step for each depth: the
 * cost of a step must not grow with the number of steps below it (target: seconds per step at
 * 100 steps ≤ 1.25× that at 50 steps).
 *
 *   npm run build && node bench/deep.js
 *
 * Environment: STRATA_BENCH_MINBASE, the minbase tarball the base template is made from
 * (default: the e2e fixture, $STRATA_E2E_CACHE/minbase.tar); STRATA_BENCH_DIR (default
 * /var/tmp/strata-bench/deep); STRATA_BENCH_OUT, where the flattened tar goes (default /dev/shm).
 * Prints a Markdown table and one JSON line; exits 1 on a missed target.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'packages/cli/bin/strata.js');
const CACHE = process.env.STRATA_E2E_CACHE || '/var/tmp/strata-e2e-cache';
const MINBASE = process.env.STRATA_BENCH_MINBASE || path.join(CACHE, 'minbase.tar');
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/deep';
const OUT = process.env.STRATA_BENCH_OUT || (fs.existsSync('/dev/shm') ? '/dev/shm' : DIR);
const STORE = path.join(DIR, 'store');
const DEPTHS = [10, 50, 100];

function strata(args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CLI, '--store', STORE, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0)
    throw new Error(
      `strata ${args.join(' ')} exited ${r.status}\n${String(r.stderr).slice(-3000)}`,
    );
  return { secs, stdout: String(r.stdout) };
}

/** A build context whose steps no earlier run has cached (the run's stamp is in each step). */
function context(name, steps, stamp) {
  const ctx = path.join(DIR, name);
  fs.mkdirSync(ctx, { recursive: true });
  const lines = ['FROM base:deep'];
  for (let i = 1; i <= steps; i++) lines.push(`RUN echo ${stamp}:${i} > /etc/step-${i}`);
  fs.writeFileSync(path.join(ctx, 'Stratafile'), `${lines.join('\n')}\n`);
  return ctx;
}

function main() {
  if (!fs.existsSync(MINBASE))
    throw new Error(`no minbase tarball at ${MINBASE}: run an e2e test once (it builds it)`);
  fs.rmSync(DIR, { recursive: true, force: true });
  fs.mkdirSync(DIR, { recursive: true });
  strata(['template', 'create', MINBASE, '-t', 'base:deep', '--name', 'base']);
  const stamp = Date.now().toString(36);
  // Warm-up: unpacks the base's snapshot, which every depth below then shares.
  strata(['build', '-q', '-t', 'warm:1', context('warm', 1, `${stamp}w`)]);

  const lines = [
    `Base: \`strata template create\` of the e2e minbase fixture; steps \`RUN echo <stamp>:<i> > /etc/step-<i>\`, none cached; store under ${DIR}.`,
    '',
    '| RUN steps | build wall s | s per step |',
    '|---:|---:|---:|',
  ];
  const json = { perStep: {} };
  let deepest;
  for (const n of DEPTHS) {
    const r = strata([
      'build',
      '-q',
      '--json',
      '-t',
      `deep${n}:1`,
      context(`d${n}`, n, `${stamp}${n}`),
    ]);
    const b = JSON.parse(r.stdout);
    if (b.stepsRun !== n) throw new Error(`${n} steps: ${b.stepsRun} ran`);
    json.perStep[n] = r.secs / n;
    lines.push(`| ${n} | ${r.secs.toFixed(2)} | ${(r.secs / n).toFixed(3)} |`);
    deepest = n;
  }
  const tar = path.join(OUT, `strata-deep-${process.pid}.tar`);
  try {
    const f = strata(['flatten', `deep${deepest}:1`, '--rootfs', tar]);
    json.flatten = f.secs;
    lines.push(
      '',
      `\`strata flatten --rootfs\` of the ${deepest}-step image (${deepest + 1} layers): ${f.secs.toFixed(2)} s.`,
    );
  } finally {
    fs.rmSync(tar, { force: true });
  }
  // Below MERGE_DEPTH (48) lower dirs no chain is merged yet: 10 steps stack on a shallow
  // overlay, while 50 and 100 steps both average a half-deep one. Linear growth shows as an
  // equal cost per step at 50 and 100 steps.
  const [p10, p50, p100] = DEPTHS.map((n) => json.perStep[n]);
  json.ratio100to50 = p100 / p50;
  json.ratio100to10 = p100 / p10;
  lines.push(
    '',
    `Seconds per step, 100 steps / 50 steps: ${json.ratio100to50.toFixed(2)}× (target ≤ 1.25×); 100 steps / 10 steps: ${json.ratio100to10.toFixed(2)}×.`,
  );
  if (json.ratio100to50 > 1.25) {
    lines.push(
      `Missed: seconds per step grow with the number of steps (${json.ratio100to50.toFixed(2)}×).`,
    );
    process.exitCode = 1;
  }
  console.log(lines.join('\n'));
  console.log(JSON.stringify(json));
  fs.rmSync(DIR, { recursive: true, force: true });
}

main();
