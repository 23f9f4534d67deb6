#!/usr/bin/env node
/*
 * Reproducibility figure (yes/no): does one Stratafile, built twice in two fresh stores against
 * one mirror state, give one digest? The Stratafile has two stages and every kind of layer step:
 * BOOTSTRAP (mmdebstrap minbase), INSTALL (with an ldconfig trigger and Python byte-compiling),
 * REMOVE, RUN, COPY, and a bundled buildchroot. It is built once with SOURCE_DATE_EPOCH set and
 * once without (dated by the mirror state, the newest Release `Date:`), two fresh stores each,
 * all four builds side by side so that they see one mirror state. Where two builds differ, the
 * layers and paths that do are printed (compareBuilds from @strata/imager).
 *
 *   npm run build && node bench/repro.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/repro; emptied at the start).
 * Prints a Markdown table and one JSON line; exits 1 when a pair of builds differs.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Store } = require('../packages/store/dist');
const { compareBuilds, describeReproReport } = require('../packages/imager/dist');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'packages/cli/bin/strata.js');
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/repro';
const TAG = 'repro:bench';
const STRATAFILE = `FROM scratch AS base
BOOTSTRAP --variant=minbase bookworm
INSTALL less libexpat1

FROM base AS buildchroot
RUN echo buildchroot > /etc/strata-role

FROM base
BUILDCHROOT buildchroot
INSTALL python3-minimal
REMOVE less
RUN echo product > /etc/strata-role && ldconfig
COPY app.conf /etc/app/app.conf
`;

/** Build the Stratafile into a fresh store `name`: the build's seconds and digest. */
function build(name, env) {
  const store = path.join(DIR, name, 'store');
  const ctx = path.join(DIR, name, 'ctx');
  fs.mkdirSync(ctx, { recursive: true });
  fs.writeFileSync(path.join(ctx, 'Stratafile'), STRATAFILE);
  fs.writeFileSync(path.join(ctx, 'app.conf'), 'level = 3\n');
  const t0 = process.hrtime.bigint();
  const child = spawn(
    process.execPath,
    [CLI, '--store', store, '--json', 'build', '-q', '-t', TAG, ctx],
    { env: { ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (err += b));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`build ${name} exited ${code}\n${err.slice(-3000)}`));
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      resolve({ store, secs, digest: JSON.parse(out).digest });
    });
  });
}

async function differences(a, b) {
  const side = async (root) => {
    const s = await Store.open(root);
    return { descriptor: await s.resolve(TAG), image: s.image.bind(s), index: s.index.bind(s) };
  };
  return compareBuilds(await side(a.store), await side(b.store));
}

async function main() {
  fs.rmSync(DIR, { recursive: true, force: true });
  const unset = { ...process.env };
  delete unset.SOURCE_DATE_EPOCH;
  const epoch = { ...unset, SOURCE_DATE_EPOCH: '1700000000' };
  const cases = [
    { label: 'SOURCE_DATE_EPOCH=1700000000', env: epoch, names: ['epoch-a', 'epoch-b'] },
    {
      label: 'no SOURCE_DATE_EPOCH (the mirror date)',
      env: unset,
      names: ['mirror-a', 'mirror-b'],
    },
  ];
  const built = await Promise.all(
    cases.map((c) => Promise.all(c.names.map((n) => build(n, c.env)))),
  );
  const rows = [];
  for (const [i, c] of cases.entries()) {
    const [a, b] = built[i];
    const r = await differences(a, b);
    rows.push({ label: c.label, same: r.same, a, b, report: r });
  }
  console.log(
    'Stratafile: two stages, `BOOTSTRAP --variant=minbase bookworm`, `INSTALL less libexpat1`; ' +
      'a buildchroot stage (`RUN`); `INSTALL python3-minimal`, `REMOVE less`, `RUN … && ldconfig`, ' +
      '`COPY`. Each pair: two fresh stores, the four builds side by side against one mirror state.',
  );
  console.log('');
  console.log('| build date | two fresh builds give identical digests | digest | build s (each) |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${r.same ? 'yes' : '**no**'} | ${r.same ? r.a.digest.slice(0, 19) : `${r.a.digest.slice(0, 19)} / ${r.b.digest.slice(0, 19)}`} | ${r.a.secs.toFixed(0)}, ${r.b.secs.toFixed(0)} |`,
    );
  for (const r of rows)
    if (!r.same)
      console.log(
        `\n${r.label}:\n\n    ${describeReproReport(r.report).split('\n').join('\n    ')}`,
      );
  const ok = rows.every((r) => r.same);
  console.log(
    JSON.stringify({
      bench: 'repro',
      identical: Object.fromEntries(rows.map((r) => [r.label, r.same])),
      ok,
    }),
  );
  if (!ok) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 2;
});
