#!/usr/bin/env node
/*
 * Sources benchmark: `strata sources` of a minbase template (`strata template create` of the
 * minbase fixture) from the mirror the tests use, twice into a fresh store: the first run
 * downloads each source package once, the second is served from the store (the figure is
 * yes/no: the second run downloads nothing). Counts come from `strata sources --json` (its
 * `stats`); e2e/sources.test.ts counts the requests on its own, through a loopback proxy.
 *
 *   npm run build && node bench/sources.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/sources; wiped at the start).
 * Prints a Markdown table and one JSON line; exits 1 when the second run downloads anything.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run } = require('./timing');
const { minbaseTar } = require('./fixture');
const { benchSources } = require('./pair');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'packages/cli/bin/strata.js');
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/sources';
const STORE = path.join(DIR, 'store');

const strata = (args) => run(process.execPath, [CLI, '--store', STORE, ...args]);
const MiB = (n) => `${(n / 1048576).toFixed(1)} MiB`;

function main() {
  fs.rmSync(DIR, { recursive: true, force: true });
  fs.mkdirSync(DIR, { recursive: true });
  const sources = benchSources(DIR);
  strata(['-q', 'template', 'create', minbaseTar(), '-t', 'base:bench', '--name', 'bench-base']);
  const once = (n) => {
    const r = strata([
      '--json',
      'sources',
      'base:bench',
      '-o',
      path.join(DIR, `out${n}`),
      '--apt-sources',
      sources,
      '--allow-missing',
    ]);
    return { secs: r.secs, doc: JSON.parse(r.stdout) };
  };
  const first = once(1);
  const second = once(2);
  const files = first.doc.sources.reduce((n, s) => n + s.files.length, 0);
  const binaries = first.doc.sources.reduce((n, s) => n + s.binaries.length, 0);
  const ok = second.doc.stats.downloads === 0;
  console.log(
    `Template: \`strata template create\` of the minbase fixture; ${first.doc.sources.length} source packages ` +
      `(${files} files) for ${binaries} of its binary packages; ${first.doc.missing.length} source packages ` +
      `the mirror lacks in whole or part (listed by name in sources.json). Fresh store; one run each.`,
  );
  console.log('');
  console.log(
    '| run | wall s | files downloaded | bytes downloaded | from the store | Release requests |',
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const [name, r] of [
    ['first', first],
    ['second', second],
  ]) {
    const s = r.doc.stats;
    console.log(
      `| ${name} | ${r.secs.toFixed(2)} | ${s.downloads} | ${MiB(s.downloadedBytes)} | ${s.fromCache} (${MiB(s.cachedBytes)}) | ${s.releaseRequests} |`,
    );
  }
  console.log('');
  console.log(
    `Second run served from the store's cache (downloads nothing): **${ok ? 'yes' : 'no'}**`,
  );
  console.log(
    JSON.stringify({
      bench: 'sources',
      sources: first.doc.sources.length,
      missing: first.doc.missing.length,
      firstSecs: first.secs,
      firstDownloads: first.doc.stats.downloads,
      firstBytes: first.doc.stats.downloadedBytes,
      secondSecs: second.secs,
      secondDownloads: second.doc.stats.downloads,
      ok,
    }),
  );
  if (!ok) process.exitCode = 1;
}

main();
