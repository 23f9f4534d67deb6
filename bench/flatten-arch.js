#!/usr/bin/env node
/*
 * Flatten by architecture: `strata flatten --rootfs out.tar` of an arm64 minbase template
 * against the amd64 minbase template. Nothing in flatten runs a program of the template, so a
 * foreign architecture must flatten as fast as the native one: the target is an arm64 time per
 * MiB of flat tar within 10% of the amd64 one (the two minbases differ a little in size, so
 * the times are compared per MiB).
 *
 *   npm run build && node bench/flatten-arch.js
 *
 * Inputs: the amd64 minbase of bench/fixture.js, and STRATA_BENCH_MINBASE_ARM64 or the e2e
 * cache's minbase-arm64.tar (`foreignMinbaseTar('arm64')` in e2e/support/fixtures.ts).
 *   STRATA_BENCH_REPS  runs per architecture, alternating (default 5); the median is reported
 *   STRATA_BENCH_OUT   where outputs go (default /dev/shm)
 * Prints a Markdown table and one JSON line; exits 1 if the target is missed.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { minbaseTar } = require('./fixture');

const REPS = Number(process.env.STRATA_BENCH_REPS || 5);
const OUT = process.env.STRATA_BENCH_OUT || (fs.existsSync('/dev/shm') ? '/dev/shm' : '/var/tmp');
const WORK = '/var/tmp/strata-bench/flatten-arch';
const CLI = path.join(__dirname, '..', 'packages', 'cli', 'bin', 'strata.js');
const E2E_CACHE = process.env.STRATA_E2E_CACHE || '/var/tmp/strata-e2e-cache';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function arm64Tar() {
  const given = process.env.STRATA_BENCH_MINBASE_ARM64;
  if (given) return given;
  // The e2e harness writes the stamp only once the tarball is complete.
  const e2e = path.join(E2E_CACHE, 'minbase-arm64.tar');
  if (fs.existsSync(path.join(E2E_CACHE, 'minbase-arm64.json')) && fs.existsSync(e2e)) return e2e;
  throw new Error(
    'no arm64 minbase: set STRATA_BENCH_MINBASE_ARM64, or run e2e/arm64-boot.test.ts once',
  );
}

function strata(store, args) {
  return execFileSync(process.execPath, [CLI, '--store', store, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' },
  }).toString();
}

function main() {
  const store = path.join(WORK, 'store');
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(WORK, { recursive: true });
  const arches = { amd64: minbaseTar(), arm64: arm64Tar() };
  for (const [arch, tar] of Object.entries(arches)) {
    strata(store, ['template', 'create', tar, '-t', `bench:${arch}`, '--name', `minbase-${arch}`]);
  }
  const times = { amd64: [], arm64: [] };
  const bytes = {};
  for (let i = 0; i < REPS; i++) {
    for (const arch of Object.keys(arches)) {
      const out = path.join(OUT, `strata-bench-flat-${arch}.tar`);
      fs.rmSync(out, { force: true });
      const t = process.hrtime.bigint();
      strata(store, ['flatten', `bench:${arch}`, '--rootfs', out]);
      times[arch].push(Number(process.hrtime.bigint() - t) / 1e9);
      bytes[arch] = fs.statSync(out).size;
      fs.rmSync(out, { force: true });
    }
  }
  fs.rmSync(WORK, { recursive: true, force: true });
  const perMiB = (a) => median(times[a]) / (bytes[a] / 1048576);
  const ratio = perMiB('arm64') / perMiB('amd64');
  const s = (x) => `${x.toFixed(2)} s`;
  const rows = [
    ['what', 'result'],
    ['---', '---'],
    ...Object.keys(arches).map((a) => [
      `strata flatten --rootfs out.tar, ${a} minbase template (${(bytes[a] / 1048576).toFixed(0)} MiB flat tar, median of ${REPS})`,
      `${s(median(times[a]))} (${times[a].map(s).join(', ')}); ${(perMiB(a) * 1000).toFixed(2)} ms/MiB`,
    ]),
    ['arm64 / amd64 time per MiB (target ≤ 1.10)', `${ratio.toFixed(2)}`],
  ];
  console.log(rows.map((r) => `| ${r.join(' | ')} |`).join('\n'));
  console.log(JSON.stringify({ bench: 'flatten-arch', times, bytes, ratio }));
  if (ratio > 1.1) process.exitCode = 1;
}

main();
