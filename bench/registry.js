#!/usr/bin/env node
/*
 * Registry benchmark: `strata push` / `strata pull` of a minbase template against `skopeo copy`
 * of the same image, in the same run, each against its own fresh docker-registry on 127.0.0.1.
 *
 *   npm run build && node bench/registry.js
 *
 * Environment: STRATA_BENCH_REPS (default 25), STRATA_BENCH_COMPRESSION (default gzip, as in the
 * peer figures), STRATA_BENCH_DIR (default /var/tmp/strata-bench-registry; the template is made
 * once from /var/tmp/strata-bench/rootfs, or else the minbase tarball of bench/fixture.js, and reused).
 * Both tools are timed as whole processes, strata through the package's bin (bin/strata.js) in
 * the environment this runs in. Prints a Markdown table
 * and one JSON line; exits 1 if strata takes more than 1.25x skopeo's time (median) for push or
 * pull: at this size (one 61 MB layer) the start of a process weighs on both tools' times.
 */
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const http = require('node:http');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { minbaseTar } = require('./fixture');

// On a 2-core machine one push varies by ±10% from run to run (most of it in docker-registry), a
// median of 7 moved by as much as 0.05 s between runs, and with 15 pairs the push ratio still
// ranged over 0.91-1.05 in one session's runs; 25 pairs take about 100 s.
const REPS = Number(process.env.STRATA_BENCH_REPS || 25);
const COMPRESSION = process.env.STRATA_BENCH_COMPRESSION || 'gzip';
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench-registry';
// What a user runs: the package's bin.
const STRATA = path.join(__dirname, '..', 'packages', 'cli', 'bin', 'strata.js');
const ROOTFS = '/var/tmp/strata-bench/rootfs';
const TAG = `minbase-${COMPRESSION}`;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function run(cmd, args, env) {
  return execFileSync(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
    ...(env ? { env: { ...process.env, ...env } } : {}),
  }).toString();
}
function timed(cmd, args, env) {
  const t = process.hrtime.bigint();
  run(cmd, args, env);
  return Number(process.hrtime.bigint() - t) / 1e9;
}
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRegistry() {
  const dir = fs.mkdtempSync(path.join(DIR, 'registry-'));
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      http
        .get(`http://${host}/v2/`, (res) => (res.resume(), resolve(true)))
        .on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host,
    stop: async () => {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main() {
  fs.mkdirSync(DIR, { recursive: true });
  const store = path.join(DIR, 'store');
  const ls = fs.existsSync(store) ? run(STRATA, ['--store', store, 'ls']) : '';
  if (!ls.includes(`${TAG}:latest`)) {
    const src = fs.existsSync(ROOTFS) ? ROOTFS : minbaseTar();
    process.stderr.write(`making template ${TAG} from ${src}\n`);
    run(STRATA, [
      '--store',
      store,
      'template',
      'create',
      src,
      '-t',
      TAG,
      '--name',
      'minbase',
      '--compression',
      COMPRESSION,
    ]);
  }
  const t = {
    strataPush: [],
    skopeoPush: [],
    strataPull: [],
    skopeoPull: [],
    rePush: [],
    mount: [],
    libPush: [],
    libPull: [],
    startup: [],
  };
  const { Store } = require('../packages/store/dist');
  const { push, pull } = require('../packages/registry/dist');
  const { parseReference } = require('../packages/oci/dist');
  const lib = await Store.open(store);
  const clock = async (fn) => {
    const t0 = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  for (let rep = 0; rep < REPS; rep++) {
    const a = await startRegistry();
    const b = await startRegistry();
    try {
      // Alternate who goes first, so neither always gets a warm page cache.
      const pushes = [
        () =>
          t.strataPush.push(timed(STRATA, ['--store', store, 'push', TAG, `${a.host}/bench:1`])),
        () =>
          t.skopeoPush.push(
            timed('skopeo', [
              'copy',
              '-q',
              '--dest-tls-verify=false',
              `oci:${store}:${TAG}:latest`,
              `docker://${b.host}/bench:1`,
            ]),
          ),
      ];
      if (rep % 2) pushes.reverse();
      for (const p of pushes) p();
      t.rePush.push(timed(STRATA, ['--store', store, 'push', TAG, `${a.host}/bench:1`]));
      t.mount.push(timed(STRATA, ['--store', store, 'push', TAG, `${a.host}/other:1`]));
      const s1 = fs.mkdtempSync(path.join(DIR, 'pull-strata-'));
      const s2 = fs.mkdtempSync(path.join(DIR, 'pull-skopeo-'));
      const pulls = [
        () => t.strataPull.push(timed(STRATA, ['--store', s1, 'pull', `${a.host}/bench:1`])),
        () =>
          t.skopeoPull.push(
            timed('skopeo', [
              'copy',
              '-q',
              '--src-tls-verify=false',
              `docker://${b.host}/bench:1`,
              `oci:${s2}:bench`,
            ]),
          ),
      ];
      if (rep % 2) pulls.reverse();
      for (const p of pulls) p();
      fs.rmSync(s1, { recursive: true, force: true });
      fs.rmSync(s2, { recursive: true, force: true });
      // The same work as library calls, without starting a process.
      const c = await startRegistry();
      try {
        t.libPush.push(await clock(() => push(lib, TAG, parseReference(`${c.host}/lib:1`))));
        const s3 = fs.mkdtempSync(path.join(DIR, 'pull-lib-'));
        const st3 = await Store.open(s3);
        t.libPull.push(await clock(() => pull(st3, parseReference(`${c.host}/lib:1`))));
        fs.rmSync(s3, { recursive: true, force: true });
      } finally {
        await c.stop();
      }
      t.startup.push(timed(STRATA, ['--help']));
    } finally {
      await a.stop();
      await b.stop();
    }
  }
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
  const f = (x) => x.toFixed(2);
  const range = (xs) => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;
  console.log(
    `\n### Registry: minbase template (${COMPRESSION} layer), docker-registry on loopback, median of ${REPS}\n`,
  );
  console.log('| operation | strata s | skopeo copy s | strata / skopeo |');
  console.log('|---|---|---|---|');
  console.log(
    `| push to an empty registry | ${f(m.strataPush)} (${range(t.strataPush)}) | ${f(m.skopeoPush)} (${range(t.skopeoPush)}) | ${(m.strataPush / m.skopeoPush).toFixed(2)}× |`,
  );
  console.log(
    `| pull into an empty store / OCI layout | ${f(m.strataPull)} (${range(t.strataPull)}) | ${f(m.skopeoPull)} (${range(t.skopeoPull)}) | ${(m.strataPull / m.skopeoPull).toFixed(2)}× |`,
  );
  console.log(`| identical re-push (HEAD skips) | ${f(m.rePush)} | | |`);
  console.log(`| push to another repo (cross-repo mount) | ${f(m.mount)} | | |`);
  console.log(`| push, library call (no process start) | ${f(m.libPush)} | | |`);
  console.log(`| pull, library call (no process start) | ${f(m.libPull)} | | |`);
  console.log(`| \`strata --help\` (process start alone) | ${f(m.startup)} | | |`);
  console.log(
    `\nload average at the end: ${require('node:os')
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  console.log(
    JSON.stringify({
      bench: 'registry',
      compression: COMPRESSION,
      reps: REPS,
      medians: m,
      samples: t,
    }),
  );
  const LIMIT = 1.25;
  const missed = [];
  if (m.strataPush > LIMIT * m.skopeoPush) missed.push('push');
  if (m.strataPull > LIMIT * m.skopeoPull) missed.push('pull');
  for (const what of missed)
    console.log(`Missed: ${what} takes more than ${LIMIT}× skopeo's time (median).`);
  if (missed.length) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
